/**
 * Counting a bundle's signatures against what its signers' role demands: valid signatures by
 * distinct keys of the role, at least its threshold. A key that signs twice counts once; a
 * signature that does not check, or by a key outside the role, counts nothing. A refusal names
 * who signed, who is missing, and why each other signature did not count, with the reason of
 * the most telling one.
 */
import { signatureError } from '../errors/index.js';
import type { SignatureRecord, VerifierKey } from './verifier-key.js';

export interface RoleKey {
  key: VerifierKey;
  /** A person's or a key's name, where the trust metadata gives one. */
  name?: string;
}

/** Who may sign a bundle, and how many of them must. */
export interface SignerRole {
  /** `role "stacks" (targets v4)`, or `the trust store /etc/airlock/trusted.d`. */
  label: string;
  threshold: number;
  keys: Map<string, RoleKey>;
}

/** Why a key outside the role cannot count, e.g. revoked, or trusted for other bundles only. */
export interface OutsideKey {
  reason: 'revoked-key' | 'key-not-delegated' | 'not-in-root';
  /** Completes "key K …": `is revoked in …/revoked, line 3`. */
  says: string;
  /** The key, where known, to tell a forged signature from a real one by a key used out of place. */
  key?: VerifierKey;
}

export interface SignedBy {
  /** Key ids of the valid signatures that count, in record order. */
  signers: string[];
}

const describe = (id: string, k: RoleKey | undefined): string => (k?.name ? `${k.name} (${id})` : id);

/**
 * Checks `records` over `data` for `subject` (`bundle demo 1.2.0`); returns the signers that
 * count, or throws a signature error. `outside(keyId)` says what a key not in the role is.
 */
export function checkSigners(subject: string, data: Buffer, records: SignatureRecord[], role: SignerRole, outside: (keyId: string) => OutsideKey | undefined): SignedBy {
  const signers: string[] = [];
  const notes: string[] = [];
  const reasons = new Set<string>();
  for (const record of records) {
    const id = record.keyId;
    const member = role.keys.get(id);
    if (member) {
      if (!member.key.verify(data, record)) {
        notes.push(`the signature said to be by ${describe(id, member)} does not match`);
        reasons.add('bad-signature');
      } else if (signers.includes(id)) {
        notes.push(`${describe(id, member)} signed twice, which counts once`);
        reasons.add('duplicate-signature');
      } else signers.push(id);
      continue;
    }
    const other = outside(id);
    if (other && other.key && !other.key.verify(data, record)) {
      notes.push(`the signature said to be by key ${id} does not match`);
      reasons.add('bad-signature');
    } else if (other) {
      notes.push(`key ${id} ${other.says}`);
      reasons.add(other.reason);
    } else {
      notes.push(`key ${id} is unknown`);
      reasons.add('unknown-key');
    }
  }
  if (signers.length >= role.threshold) return { signers };

  // The reason scripts branch on: what an attacker or a careless signer most likely did.
  const telling = ['duplicate-signature', 'key-not-delegated', 'not-in-root', 'revoked-key'].find((r) => reasons.has(r));
  const reason = telling ?? (signers.length === 0 ? ['bad-signature', 'unknown-key'].find((r) => reasons.has(r)) : undefined) ?? 'below-threshold';
  const missing = [...role.keys].filter(([id]) => !signers.includes(id)).map(([id, k]) => describe(id, k));
  const signed = signers.length > 0 ? `signed by ${signers.map((id) => describe(id, role.keys.get(id))).join(', ')}` : 'no valid signature by its keys';
  const message = `${subject} needs ${role.threshold} signature${role.threshold === 1 ? '' : 's'} of ${role.label}: ${signed}; missing ${role.threshold - signers.length} more of ${missing.join(', ') || 'no key left'}${notes.length > 0 ? `; did not count: ${notes.join('; ')}` : ''}`;
  throw signatureError(message, {
    reason,
    subject: records[0]?.keyId ?? subject,
    hint:
      reason === 'bad-signature'
        ? 'the manifest or its signature was changed after signing; get a fresh copy from the vendor'
        : role.threshold > 1
          ? `have more of the role's keys sign it: airlock bundle sign BUNDLE --key KEY (each adds one signature)`
          : 'ask the vendor for a bundle signed with a current key',
  });
}
