import { readFileSync } from 'node:fs';

/**
 * What tells one process from another that later gets the same pid: pids
 * are reused, after a reboot soon and always. These read /proc, and give
 * undefined where it hides what is asked (systemd's ProcSubset=pid hides
 * /proc/sys; ProtectProc=invisible hides other users' processes).
 */

/** This boot's id: the kernel makes a new random one at every boot. */
export function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** When process `pid` started, in clock ticks after boot: field 22 of /proc/PID/stat. */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 is the command name in parentheses, which may itself hold spaces and ')': count from the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest[22 - 3];
}
