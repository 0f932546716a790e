/**
 * Crash points for the fault tests: with AIRLOCK_CRASH_AT=<point>, the
 * process kills itself with SIGKILL there, as a power loss would stop it.
 *
 * In-process tests simulate the kill instead (simulateCrashAt): the point
 * throws ProcessStop, which the pipeline lets through untouched, so nothing
 * after it runs, as nothing runs after a SIGKILL.
 */

/** Moments inside steps: after the first service change; after the commit; with one blob of an import staged. */
export const INNER_CRASH_POINTS = ['services-mid', 'after-commit', 'import-mid'] as const;

/**
 * Where a kill may land: just after each apply step was journaled, before
 * its side effect (src/apply/pipeline.ts passes its step names here, so a
 * step missing from this list does not build), and the inner moments. The
 * crash tests type their tables with it. The seam imports nothing, so that
 * every layer may call it.
 */
export type CrashPoint = 'verify' | 'store' | 'load' | 'prepare' | 'services' | 'converge' | 'commit' | 'cleanup' | (typeof INNER_CRASH_POINTS)[number] | EngineCrashPoint;

/** Just after an engine change journaled its step (src/engine/engine-change.ts), before the step's side effect. */
export const ENGINE_CRASH_POINTS = ['engine-drain', 'engine-stop', 'engine-switch', 'engine-start', 'engine-check', 'engine-activate'] as const;
export type EngineCrashPoint = (typeof ENGINE_CRASH_POINTS)[number];

/** A simulated kill at a crash point: no failure handling may run on it (no restore, no finish, no step closed). */
export class ProcessStop extends Error {
  constructor(readonly point: CrashPoint) {
    super(`simulated kill at crash point ${point}`);
    this.name = 'ProcessStop';
  }
}

let simulated: CrashPoint | undefined;

/**
 * For in-process tests: the crash at `point` throws ProcessStop instead of
 * killing the process, once (a killed process does not reach it again, so a
 * recovery in the same process runs on); undefined puts back AIRLOCK_CRASH_AT.
 */
export function simulateCrashAt(point: CrashPoint | undefined): void {
  simulated = point;
}

/** Whether the process is set to stop at `point`. */
export const crashArmed = (point: CrashPoint): boolean => (simulated ?? process.env.AIRLOCK_CRASH_AT) === point;

export function crashPoint(point: CrashPoint): void {
  if (!crashArmed(point)) return;
  if (simulated) {
    simulated = undefined;
    throw new ProcessStop(point);
  }
  process.kill(process.pid, 'SIGKILL');
}
