/**
 * Crash points for the fault tests: with AIRLOCK_CRASH_AT=<point>, the
 * process kills itself with SIGKILL there, as a power loss would stop it.
 */

/**
 * Where a kill may land: just after each apply step was journaled, before
 * its side effect (src/apply/pipeline.ts passes its step names here, so a
 * step missing from this list does not build); after the first service
 * change; after the commit; inside an import, with one blob staged. The
 * crash tests type their tables with it.
 */
export type CrashPoint = 'verify' | 'store' | 'load' | 'prepare' | 'services' | 'converge' | 'commit' | 'cleanup' | 'services-mid' | 'after-commit' | 'import-mid';

export function crashPoint(point: CrashPoint): void {
  if (process.env.AIRLOCK_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}

/** Whether the process is set to kill itself at `point`. */
export const crashArmed = (point: CrashPoint): boolean => process.env.AIRLOCK_CRASH_AT === point;
