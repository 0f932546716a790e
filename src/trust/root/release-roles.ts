/**
 * Who may sign which bundle, from the targets metadata's delegations: each delegated role names
 * release keys, a threshold and the bundle paths it covers (`stacks/*`, `engine/*`, `stacks/demo-*`;
 * TUF's path patterns). A bundle's path is `<kind>/<name>`; the first role whose paths match
 * decides, as TUF's preorder walk over terminating delegations would.
 */
import { createPublicKey } from 'node:crypto';
import type { Key, Metadata, Targets } from '@tufjs/models';
import { trustError } from '../../errors/index.js';
import type { OutsideKey, RoleKey, SignerRole } from '../signers.js';
import { ed25519VerifierKey, type VerifierKey } from '../verifier-key.js';
import { sshsigCheckForEd25519, sshVerifierFromTufKey } from '../ssh-verifier.js';

export const KEY_NAME_FIELD = 'x-airlock-name';

/** What a bundle is, for the delegations: `stacks/demo`, `engine/docker-engine`. */
export interface BundleTarget {
  kind: 'stacks' | 'engine';
  name: string;
}

export const targetPath = (t: BundleTarget): string => `${t.kind}/${t.name}`;

/** The bundle kind and name from manifest bytes, read before the signatures are (a role is chosen by them). */
export function bundleTargetOf(manifest: { name: string; engine?: unknown }): BundleTarget {
  return { kind: manifest.engine === undefined ? 'stacks' : 'engine', name: manifest.name };
}

/** A TUF key as something that checks signature records; undefined for a key type airlock does not know. */
export function verifierOfTufKey(key: Key): VerifierKey | undefined {
  if (key.keyType === 'ed25519' && key.scheme === 'ed25519' && /^[0-9a-f]{64}$/.test(key.keyVal.public ?? '')) {
    const raw = Buffer.from(key.keyVal.public!, 'hex');
    const ko = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
    return ed25519VerifierKey(ko, sshsigCheckForEd25519(ko));
  }
  return sshVerifierFromTufKey(key);
}

const nameOf = (key: Key): string | undefined => {
  const n = key.unrecognizedFields?.[KEY_NAME_FIELD];
  return typeof n === 'string' ? n : undefined;
};

export interface ReleaseRoles {
  /** The role that decides for `target`, or a trust error saying no role covers it. */
  roleFor(target: BundleTarget): SignerRole;
  /** Why a key not in `role` cannot count: it belongs to another role. */
  outside(role: SignerRole, keyId: string): OutsideKey | undefined;
  /** Every release key, by airlock key id. */
  keys: Map<string, RoleKey & { roles: string[] }>;
}

/**
 * The release roles of targets metadata. Called when the metadata is taken, so a delegation that
 * names a missing key, a threshold above its keys or a key type airlock cannot check is refused
 * then, not at the first bundle.
 */
export function releaseRolesOf(targets: Metadata<Targets>, source: string): ReleaseRoles {
  const label = `targets v${targets.signed.version}`;
  const delegations = targets.signed.delegations;
  const roles = Object.values(delegations?.roles ?? {});
  const bad = (detail: string) =>
    trustError(`${label} (${source}): ${detail}`, { reason: 'metadata-malformed', subject: source, hint: 'fix the delegations and sign the targets metadata again; nothing was changed' });
  const keys = new Map<string, RoleKey & { roles: string[] }>();
  const signerRoles = roles.map((r) => {
    if (!r.paths || r.paths.length === 0) throw bad(`role ${r.name} gives no paths (bundle patterns such as stacks/*)`);
    const members = new Map<string, RoleKey>();
    for (const tufId of r.keyIDs) {
      const tufKey = delegations!.keys[tufId];
      if (!tufKey) throw bad(`role ${r.name} names key ${tufId}, which delegations.keys lacks`);
      const key = verifierOfTufKey(tufKey);
      if (!key) throw bad(`key ${tufId} is a ${tufKey.keyType}/${tufKey.scheme} key; airlock checks ed25519 and sk-ssh-ed25519 keys`);
      const name = nameOf(tufKey);
      members.set(key.keyId, { key, ...(name ? { name } : {}) });
      const entry = keys.get(key.keyId) ?? { key, ...(name ? { name } : {}), roles: [] };
      entry.roles.push(r.name);
      keys.set(key.keyId, entry);
    }
    if (r.threshold < 1 || r.threshold > members.size) throw bad(`role ${r.name} needs ${r.threshold} signatures but has ${members.size} distinct keys`);
    return { tuf: r, role: { label: `role ${r.name} (${r.paths.join(', ')}) of ${label}`, threshold: r.threshold, keys: members } satisfies SignerRole };
  });
  return {
    keys,
    roleFor(target) {
      const path = targetPath(target);
      const found = signerRoles.find((r) => r.tuf.isDelegatedPath(path));
      if (!found) {
        throw trustError(`no release role of ${label} covers ${path}: no key may sign bundle ${target.name}`, {
          reason: 'no-delegation',
          subject: path,
          hint: `the vendor's targets metadata must delegate ${path} (e.g. paths: ["${target.kind}/*"]) to the release keys`,
        });
      }
      return found.role;
    },
    outside(role, keyId) {
      const other = keys.get(keyId);
      if (!other) return undefined;
      const elsewhere = signerRoles.filter((r) => r.role !== role && r.role.keys.has(keyId)).map((r) => `${r.tuf.name} (${r.tuf.paths!.join(', ')})`);
      return { reason: 'key-not-delegated', says: `is a release key of ${elsewhere.join(', ') || 'another role'} only, not of this bundle's role`, key: other.key };
    },
  };
}
