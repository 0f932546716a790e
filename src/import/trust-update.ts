/**
 * New trust metadata for a host with a root of trust, from `airlock trust update FILES` or the
 * agent's inbox: checked and taken (all or nothing) into the state dir's trust folder, and
 * journaled either way, as a bundle's import is. A journal is opened only where one exists or
 * the state dir is the host's own: the trust state lives apart from it.
 */
import { asAirlockError, isAirlockError, trustError } from '../errors/index.js';
import { Journal } from '../journal/journal.js';
import { labelOf, readMetadataFile } from '../trust/root/metadata-file.js';
import { TrustState, type TrustStateOptions } from '../trust/root/trust-state.js';

export interface TrustUpdateResult {
  /** What was taken, e.g. `root v2`, `timestamp v40`. */
  taken: string[];
  unchanged: string[];
  /** The versions held now. */
  held: Record<'root' | 'targets' | 'snapshot' | 'timestamp', number | null>;
}

export async function updateTrust(trustDir: string, stateDir: string, files: string[], opts: TrustStateOptions = {}): Promise<TrustUpdateResult> {
  const subject = files.join(', ');
  const journal = Journal.open(stateDir);
  try {
    try {
      if (!TrustState.installedIn(trustDir)) {
        throw trustError(`${trustDir} holds no root of trust (root.json): trust metadata has nothing to follow from`, {
          reason: 'no-root',
          subject: trustDir,
          hint: 'install the vendor root first: airlock trust install ROOT.json (docs/trust.md); a host without one uses the simple mode (trusted.d keys)',
        });
      }
      const state = TrustState.load(trustDir, stateDir);
      const result = await state.update(files.map(readMetadataFile), opts);
      const h = state.held;
      const summary: TrustUpdateResult = {
        taken: result.taken.map(labelOf),
        unchanged: result.unchanged.map(labelOf),
        held: {
          root: h.root.meta.md.signed.version,
          targets: h.targets?.meta.md.signed.version ?? null,
          snapshot: h.snapshot?.meta.md.signed.version ?? null,
          timestamp: h.timestamp?.meta.md.signed.version ?? null,
        },
      };
      journal.record({
        kind: 'trust.update',
        outcome: 'ok',
        subject,
        message: summary.taken.length > 0 ? `took ${summary.taken.join(', ')}` : 'nothing new: already held',
        details: { files, ...summary },
      });
      return summary;
    } catch (e) {
      const err = asAirlockError(e);
      journal.record({
        kind: 'trust.update',
        outcome: isAirlockError(e) && err.kind === 'trust' && err.reason !== 'trust-state-corrupt' ? 'refused' : 'failed',
        subject,
        reason: err.reason,
        message: err.message,
        details: { files, errorClass: err.kind, ...(err.subject ? { entry: err.subject } : {}) },
      });
      throw err;
    }
  } finally {
    journal.close();
  }
}
