/**
 * Crash points for the fault tests: with AIRLOCK_CRASH_AT=<point>, the
 * process kills itself with SIGKILL there, as a power loss would stop it.
 * Points are each apply step (just after the step was journaled, before its
 * side effect) and a few named moments inside steps. The crash tests type
 * their tables with CrashPoint, so a point that no code arms fails to build.
 */
import type { ApplyStep } from '../journal/deployments.js';

/** Moments inside steps: after the first service change; after the commit; with one blob of an import staged. */
export const INNER_CRASH_POINTS = ['services-mid', 'after-commit', 'import-mid'] as const;

export type CrashPoint = Exclude<ApplyStep, 'done'> | (typeof INNER_CRASH_POINTS)[number];

export function crashPoint(point: CrashPoint): void {
  if (process.env.AIRLOCK_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}

/** Whether the process is set to kill itself at `point`. */
export const crashArmed = (point: CrashPoint): boolean => process.env.AIRLOCK_CRASH_AT === point;
