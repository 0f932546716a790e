/**
 * Durations (`10s`, `1m30s`, `1.5h`, `300ms`) to nanoseconds, with Go's
 * time.ParseDuration grammar, which docker's compose loader uses; airlock
 * reads its own durations (flags, agent.yaml, the inventory) the same way: a
 * sequence of decimal numbers each with a unit (ns, us, µs, ms, s, m, h);
 * a bare `0` is allowed. Whole parts are exact (BigInt); a fractional part
 * is scaled in floating point and truncated, as Go does it.
 */

const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 micro sign
  'μs': 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const MAX_INT64 = (1n << 63n) - 1n;

export class DurationError extends Error {}

/** Nanoseconds as a JS number (exact up to ±104 days; the API's int64 fields take it). */
export function parseDuration(text: string): number {
  const s = text.trim();
  const m = /^([-+]?)(.*)$/.exec(s)!;
  const negative = m[1] === '-';
  let rest = m[2]!;
  if (rest === '0') return 0;
  if (rest === '') throw new DurationError(`invalid duration "${text}"`);
  let total = 0n;
  const part = /^(\d*)(?:\.(\d*))?([a-zµμ]+)/;
  while (rest !== '') {
    const p = part.exec(rest);
    if (!p || (p[1] === '' && (p[2] === undefined || p[2] === ''))) {
      throw new DurationError(/^[\d.]+$/.test(rest) ? `missing unit in duration "${text}"` : `invalid duration "${text}"`);
    }
    const unit = UNIT_NS[p[3]!];
    if (unit === undefined) throw new DurationError(`unknown unit "${p[3]}" in duration "${text}"`);
    const whole = BigInt(p[1] || '0');
    const fracDigits = p[2] ?? '';
    let value = whole * unit;
    if (fracDigits !== '') {
      const scale = 10 ** fracDigits.length;
      value += BigInt(Math.trunc(Number(fracDigits) * (Number(unit) / scale)));
    }
    total += value;
    if (total > MAX_INT64) throw new DurationError(`duration "${text}" out of range`);
    rest = rest.slice(p[0].length);
  }
  return Number(negative ? -total : total);
}

/** A duration in milliseconds said in the largest whole unit that fits (`720h`, `90s`, `500ms`): what parseDuration reads back. */
export const durationText = (ms: number): string =>
  ms % 3600_000 === 0 ? `${ms / 3600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
