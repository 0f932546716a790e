/**
 * The agent's freshness check on a host with a root of trust: at start and on its schedule
 * (daily by default), a warning in the log and the journal when the newest timestamp is older
 * than the configured age or has expired, so that a channel held back (a freeze) is seen.
 */
import { asAirlockError } from '../errors/index.js';
import { Journal } from '../journal/journal.js';
import { freshnessOf, type Freshness } from '../trust/root/freshness.js';
import { TrustState } from '../trust/root/trust-state.js';
import type { AgentConfig } from './config.js';
import type { Logger } from './log.js';

/** Returns what it found; undefined on a host in the simple mode (no root of trust). */
export async function checkTrustFreshness(config: Pick<AgentConfig, 'trustDir' | 'stateDir' | 'trust'>, log: Logger, now: Date = new Date()): Promise<Freshness | undefined> {
  if (!TrustState.installedIn(config.trustDir)) return undefined;
  let f: Freshness;
  try {
    f = freshnessOf(TrustState.load(config.trustDir, config.stateDir), config.trust.warnAgeMs, now);
  } catch (e) {
    const err = asAirlockError(e);
    log.error('trust metadata could not be read', { reason: err.reason, error: err.message });
    return undefined;
  }
  if (f.status === 'fresh') {
    log.debug('trust freshness checked', { says: f.says });
    return f;
  }
  log.warn(`trust freshness: ${f.says}`, { status: f.status, hint: 'ask the vendor for a current timestamp; see docs/trust.md' });
  const journal = Journal.open(config.stateDir);
  try {
    journal.record({ kind: 'trust.freshness', outcome: 'info', subject: config.trustDir, reason: `timestamp-${f.status}`, message: f.says, details: { status: f.status, ...(f.issued ? { issued: f.issued, ageMs: f.ageMs } : {}) } }, now);
  } finally {
    journal.close();
  }
  return f;
}
