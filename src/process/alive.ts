/** Whether `pid` runs, and whether this process may signal it (EPERM: it runs as another user). */
export function probeProcess(pid: number): 'gone' | 'signalable' | 'other-user' {
  try {
    process.kill(pid, 0);
    return 'signalable';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? 'other-user' : 'gone';
  }
}

/** Whether a process with this pid exists (EPERM: it does, owned by someone else). */
export const isProcessAlive = (pid: number): boolean => probeProcess(pid) !== 'gone';
