import { DEFAULT_FRESHNESS_WARN_MS } from '../trust/root/freshness.js';
import { DurationError, durationText, parseDuration } from '../units/duration.js';
import { DEFAULT_CERT_WARN_MS } from '../cluster/certificates.js';
import { DEFAULT_NODE_CERT_EXPIRY_MS, MIN_NODE_CERT_EXPIRY_MS } from '../cluster/swarm-ca.js';
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
  /** The longest value taken, and why (default MAX_WAIT_MS, the most airlock waits). */
  max?: { ms: number; why: string };
}

/**
 * A duration option (`--timeout 2m`, `--wait 90s`) in milliseconds, in the
 * grammar of compose durations (`1m30s`, `500ms`, `1.5h`), at most
 * MAX_WAIT_MS; `fallback` when the option was not given. Anything else is a
 * usage error that names the option, the value and what it takes.
 */
export function durationOption(option: string, value: unknown, fallback: number, bounds: DurationBounds = {}): number {
  if (typeof value !== 'string') return fallback;
  const min = bounds.min?.ms ?? 0;
  const max = bounds.max ?? { ms: MAX_WAIT_MS, why: 'the most airlock waits' };
  const tooLong = `longer than ${durationText(max.ms)}, ${max.why}`;
  const refuse = (why: string) =>
    usageError(`--${option} ${value}: ${why}`, {
      hint: `give a duration from ${min === 0 ? '0s' : durationText(min)} to ${durationText(max.ms)}: a number with a unit (ms, s, m, h), e.g. --${option} 90s or --${option} 5m`,
    });
  let ns: number;
  try {
    ns = parseDuration(value);
  } catch (e) {
    if (!(e instanceof DurationError)) throw e;
    throw refuse(/out of range/.test(e.message) ? tooLong : 'not a duration');
  }
  const ms = ns / 1e6;
  if (ms > max.ms) throw refuse(tooLong);
  if (ms < 0) throw refuse('a negative duration');
  if (ms < min) throw refuse(`shorter than ${durationText(min)}, ${bounds.min!.why}`);
  return ms;
}

/** `--timeout`: the health gate of a deploy, rollback or recovery. */
export const timeoutOption = (value: unknown): number =>
  durationOption('timeout', value, DEFAULT_TIMEOUT_MS, { min: { ms: DEFAULT_STABLE_MS, why: 'the time services must run steadily before they count as converged' } });

/** `--wait`: how long to wait for another apply to let go of the host's lock. */
export const waitOption = (value: unknown): number => durationOption('wait', value, DEFAULT_LOCK_WAIT_MS);

/** `--cert-warn 720h`: how long before a swarm certificate's end `cluster status` and `doctor` warn. */
export const certWarnOption = (value: unknown): number =>
  durationOption('cert-warn', value, DEFAULT_CERT_WARN_MS, { max: { ms: 87_600 * 3600_000, why: 'ten years, longer than any swarm certificate lives' } });

/** `cluster certs --expiry 2160h`: the node certificate lifetime, refused below the engine's minimum before the engine is asked. */
export const certExpiryOption = (value: unknown): number =>
  durationOption('expiry', value, DEFAULT_NODE_CERT_EXPIRY_MS, {
    min: { ms: MIN_NODE_CERT_EXPIRY_MS, why: 'the shortest node certificate lifetime the engine takes' },
    max: { ms: 87_600 * 3600_000, why: 'ten years' },
  });

/** How old the newest trust timestamp may be before it is warned of (`doctor --trust-warn-age`, `trust status --warn-age`). */
export const freshnessWarnOption = (option: string, value: unknown): number =>
  durationOption(option, value, DEFAULT_FRESHNESS_WARN_MS, { max: { ms: 87_600 * 3600_000, why: 'ten years' } });
