/**
 * Whether a host with a root of trust still hears from its vendor: the newest timestamp's age.
 * A channel held back (a freeze) looks like silence; this makes the silence visible, in
 * `doctor`, `trust status` and the agent's daily log, before the timestamp expires and every
 * bundle is refused.
 */
import { durationText } from '../../units/duration.js';
import type { TrustState } from './trust-state.js';

export const DEFAULT_FRESHNESS_WARN_MS = 72 * 3600_000;

export interface Freshness {
  status: 'fresh' | 'stale' | 'expired' | 'none';
  /** A sentence for people; for `fresh`, the timestamp's facts. */
  says: string;
  issued?: string;
  ageMs?: number;
}

const whole = (ms: number): string => durationText(ms >= 2 * 3600_000 ? Math.round(ms / 3600_000) * 3600_000 : Math.max(60_000, Math.round(ms / 60_000) * 60_000));

export function freshnessOf(state: TrustState, warnMs: number, now: Date = new Date()): Freshness {
  const t = state.freshness();
  if (!t) return { status: 'none', says: 'no timestamp held: bundles are not checked against what the vendor says is current, so a replayed old release or a freeze would not be seen' };
  const ageMs = now.getTime() - Date.parse(t.issued);
  const facts = `timestamp v${t.version} issued ${t.issued} (${whole(ageMs)} ago), expires ${t.expires}`;
  if (Date.parse(t.expires) <= now.getTime()) return { status: 'expired', says: `${facts}: expired, every new bundle is refused until a newer timestamp arrives`, issued: t.issued, ageMs };
  if (ageMs > warnMs) return { status: 'stale', says: `${facts}: older than ${durationText(warnMs)}; the channel may be held back (a freeze)`, issued: t.issued, ageMs };
  return { status: 'fresh', says: facts, issued: t.issued, ageMs };
}
