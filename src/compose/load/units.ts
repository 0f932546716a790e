/**
 * The small value grammars docker/cli relies on while loading: Go's
 * time.ParseDuration (durations), go-units' RAMInBytes (memory sizes) and
 * subnet notation.
 */
import { isIP } from 'node:net';

// Go: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+ with a known unit after every number, or a bare "0".
const DURATION = /^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;

/** True when Go's time.ParseDuration accepts `s`. */
export function isGoDuration(s: string): boolean {
  return /^[-+]?0$/.test(s) || DURATION.test(s);
}

/** True for a duration that is zero (`0`, `0s`, `0m0s`); assumes isGoDuration. */
export function isZeroDuration(s: string): boolean {
  return !/[1-9]/.test(s);
}

const SIZE = /^(\d+(?:\.\d+)*) ?([kmgtp])?i?b?$/i;
const BINARY: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * go-units RAMInBytes: `512M`, `1g`, `1.5GiB`, `100` (bytes). Units are
 * binary (k = 1024) and case-insensitive; the `b` is optional. Returns
 * undefined when docker would reject the string.
 */
export function ramInBytes(s: string): number | undefined {
  const m = SIZE.exec(s);
  if (m === null) return undefined;
  const digits = m[1] ?? '';
  if ((digits.match(/\./g) ?? []).length > 1) return undefined; // strconv.ParseFloat rejects 1.2.3
  const n = Number(digits);
  const unit = (m[2] ?? '').toLowerCase();
  return Math.trunc(n * (BINARY[unit] ?? 1));
}

/** `10.0.0.0/24` or `fd00::/64`. */
export function isSubnet(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash < 0) return false;
  const ip = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  const family = isIP(ip);
  if (family === 0 || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}
