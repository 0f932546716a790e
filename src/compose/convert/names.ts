/**
 * Names and labels exactly as `docker stack deploy` makes them: every object
 * of stack `s` named `s_<name>` unless the compose file gives its own name,
 * and labelled with the stack's namespace so `docker stack ls/ps/rm` find it.
 */

import { NAMESPACE_LABEL } from '../labels.js';

/** `<stack>_<name>`, docker's Namespace.Scope. */
export function scoped(stack: string, name: string): string {
  return `${stack}_${name}`;
}

/** A copy of `labels` with the namespace label set (it wins over a user label of that key). */
export function withStackLabel(stack: string, labels: Record<string, string> | undefined): Record<string, string> {
  return { ...labels, [NAMESPACE_LABEL]: stack };
}

/** Go's string order (bytewise on UTF-8), which docker sorts with; JS's default sort compares UTF-16 units. */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Sorted copy by `key`, stable, in Go's string order. */
export function sortedBy<T>(items: readonly T[], key: (t: T) => string): T[] {
  return items
    .map((item, i) => ({ item, i, k: key(item) }))
    .sort((x, y) => byteOrder(x.k, y.k) || x.i - y.i)
    .map((x) => x.item);
}

/** The value when it is set and non-empty; Go's `omitempty` for strings, slices and maps. */
export function nonEmpty<T extends string | readonly unknown[]>(v: T | undefined | null): T | undefined {
  return v === undefined || v === null || v.length === 0 ? undefined : v;
}

export function nonEmptyMap<T extends Record<string, unknown>>(v: T | undefined | null): T | undefined {
  return v === undefined || v === null || Object.keys(v).length === 0 ? undefined : v;
}

/** Drops keys whose value is undefined, so specs compare and serialise like docker's `omitempty`. */
export function compact<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}
