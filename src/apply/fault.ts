/**
 * Crash points for the fault tests: with AIRLOCK_CRASH_AT=<point>, the
 * process kills itself with SIGKILL there, as a power loss would stop it.
 * Points are `<step>` (just after the step was journaled, before its side
 * effect) and a few named moments inside steps (`services-mid`).
 */
export function crashPoint(point: string): void {
  if (process.env.AIRLOCK_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}

/** Whether the process is set to kill itself at `point`. */
export const crashArmed = (point: string): boolean => process.env.AIRLOCK_CRASH_AT === point;
