import { DurationError, parseDuration } from '../units/duration.js';
import { usageError } from '../errors/index.js';
import { DEFAULT_STABLE_MS } from '../stack/converge.js';
import { DEFAULT_TIMEOUT_MS } from '../stack/deploy.js';

/** How long a command waits for the apply lock unless told otherwise. */
export const DEFAULT_LOCK_WAIT_MS = 60_000;

/**
 * The longest `--timeout` or `--wait` airlock takes. A health gate or a lock
 * wait of more than a day is a typo, and Node's timers cannot wait beyond
 * 24.8 days at all: past that they fire at once.
 */
export const MAX_WAIT_MS = 24 * 3600_000;

export interface DurationBounds {
  /** The shortest value that makes sense, and why (said when a shorter one is given). */
  min?: { ms: number; why: string };
}

const seconds = (ms: number): string => `${ms / 1000}s`;

/**
 * A duration option (`--timeout 2m`, `--wait 90s`) in milliseconds, in the
 * grammar of compose durations (`1m30s`, `500ms`, `1.5h`), at most
 * MAX_WAIT_MS; `fallback` when the option was not given. Anything else is a
 * usage error that names the option, the value and what it takes.
 */
export function durationOption(option: string, value: unknown, fallback: number, bounds: DurationBounds = {}): number {
  if (typeof value !== 'string') return fallback;
  const min = bounds.min?.ms ?? 0;
  const refuse = (why: string) =>
    usageError(`--${option} ${value}: ${why}`, {
      hint: `give a duration from ${seconds(min)} to 24h: a number with a unit (ms, s, m, h), e.g. --${option} 90s or --${option} 5m`,
    });
  let ns: number;
  try {
    ns = parseDuration(value);
  } catch (e) {
    if (!(e instanceof DurationError)) throw e;
    throw refuse(/out of range/.test(e.message) ? 'longer than 24h, the most airlock waits' : 'not a duration');
  }
  const ms = ns / 1e6;
  if (ms > MAX_WAIT_MS) throw refuse('longer than 24h, the most airlock waits');
  if (ms < 0) throw refuse('a negative duration');
  if (ms < min) throw refuse(`shorter than ${seconds(min)}, ${bounds.min!.why}`);
  return ms;
}

/** `--timeout`: the health gate of a deploy, rollback or recovery. */
export const timeoutOption = (value: unknown): number =>
  durationOption('timeout', value, DEFAULT_TIMEOUT_MS, { min: { ms: DEFAULT_STABLE_MS, why: 'the time services must run steadily before they count as converged' } });

/** `--wait`: how long to wait for another apply to let go of the host's lock. */
export const waitOption = (value: unknown): number => durationOption('wait', value, DEFAULT_LOCK_WAIT_MS);
