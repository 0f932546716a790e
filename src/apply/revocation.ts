/**
 * Revocation stops every path that deploys a bundle. `bundle apply` and the
 * agent's queue check the stored signature against today's trust store;
 * rollback, drift re-apply and crash recovery deploy recorded specs instead,
 * with no signature to check, so they ask here whether the bundle those
 * specs came from is signed by a key revoked since. An operator who must
 * run such a release anyway says so (--allow-revoked), and the journal
 * records it.
 */
import { signatureError } from '../errors/index.js';
import { BundleRecords } from '../journal/bundles.js';
import type { Journal } from '../journal/journal.js';
import { describeRevocation, type TrustStore } from '../trust/trust-store.js';
import { appliedBy } from './applied-by.js';

export interface RevocationGate {
  /** The trust store whose revocation list decides; loaded only when recorded specs of a bundle are about to be deployed. */
  trust: () => Promise<TrustStore>;
  /** The operator's explicit override: deploy it anyway, journaled. Never set by the agent. */
  allowRevoked?: boolean;
}

/** What is about to be deployed from the record: a rollback's target, a recovery's previous specs. */
export interface RecordedDeploy {
  /** `rollback` (also drift re-apply) or `restore` (crash recovery). */
  action: 'rollback' | 'restore';
  stack: string;
  /** The deployment whose specs would run. */
  deployment: number;
  /** The bundle those specs came from; null for a stack deployed from a compose file, which no key signed. */
  bundleId: number | null;
  /** The deployment being recovered, for `restore`. */
  recovering?: number;
}

/** The bundle and how its key is revoked; undefined when it is not (or no key signed it). */
async function revocationOf(journal: Journal, gate: RevocationGate, bundleId: number | null) {
  if (bundleId === null) return undefined;
  const bundle = new BundleRecords(journal).all().find((b) => b.id === bundleId);
  if (!bundle) return undefined;
  const revoked = (await gate.trust()).revocation(bundle.key_id);
  return revoked ? { bundle, revoked } : undefined;
}

/** Whether the key that signed a recorded bundle is revoked now. */
export async function revokedBundle(journal: Journal, gate: RevocationGate, bundleId: number | null): Promise<boolean> {
  return (await revocationOf(journal, gate, bundleId)) !== undefined;
}

/** Refuses, or with the override records, deploying specs of a bundle whose key is revoked; true when it was revoked and overridden. */
export async function checkRevocation(journal: Journal, gate: RevocationGate, what: RecordedDeploy): Promise<boolean> {
  const found = await revocationOf(journal, gate, what.bundleId);
  if (!found) return false;
  const { bundle, revoked } = found;
  const release = `bundle ${bundle.name} ${bundle.version}, signed by key ${bundle.key_id}, which is ${describeRevocation(revoked)}`;
  const message =
    what.action === 'restore'
      ? `recovering deployment #${what.recovering} of stack ${what.stack} would restore the specs of deployment #${what.deployment}: ${release}`
      : `rollback of stack ${what.stack} to deployment #${what.deployment} would deploy ${release}`;
  const details = { deployment: what.deployment, ...(what.recovering ? { recovering: what.recovering } : {}), bundle: `${bundle.name} ${bundle.version}`, keyId: bundle.key_id, ...revoked };
  const reason = what.action === 'restore' ? 'revoked-restore' : 'revoked-key';
  if (gate.allowRevoked) {
    journal.record({ kind: 'revocation', outcome: 'info', subject: what.stack, reason: 'revoked-allowed', message: `${message}; deployed anyway with --allow-revoked by ${appliedBy()}`, details });
    return true;
  }
  journal.record({ kind: 'revocation', outcome: 'refused', subject: what.stack, reason, message, details });
  const flag = what.action === 'restore' ? "'airlock recover --allow-revoked'" : `'airlock rollback ${what.stack} --to ${what.deployment} --allow-revoked'`;
  throw signatureError(`${message}; refused`, {
    reason,
    subject: bundle.key_id,
    hint:
      what.action === 'restore'
        ? `nothing was changed: deployment #${what.recovering} stays interrupted. To restore those specs anyway, run ${flag} (recorded in the journal); then apply a bundle signed by a current key`
        : `nothing was changed. Roll back to a deployment of a bundle signed by a current key, or, if this release must run anyway, run ${flag} (recorded in the journal)`,
  });
}
