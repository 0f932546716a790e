import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { configError, signatureError } from '../errors/index.js';
import { stateDirFrom } from '../store/state-dir.js';
import { loadPublicKey } from './keys.js';
import { readableTrustFiles, REVOKED_FILE, trustStoreFix, unsafeTrustPaths } from './permissions.js';
import { TrustState } from './root/trust-state.js';
import { checkSigners, type OutsideKey, type RoleKey, type SignedBy } from './signers.js';
import { isSshPublicKeyText, parseSshPublicKey } from './ssh-keys.js';
import { sshsigCheckForEd25519, sshVerifierKey } from './ssh-verifier.js';
import { ed25519VerifierKey, type SignatureRecord, type VerifierKey } from './verifier-key.js';
import { bundleTargetOf, releaseRolesOf } from './root/release-roles.js';

export const DEFAULT_TRUST_DIR = '/etc/airlock/trusted.d';

export function trustDirFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.AIRLOCK_TRUST_DIR ?? DEFAULT_TRUST_DIR;
}

/** Where a key was revoked: the list and the line that names it; or the trust metadata it is no longer in. */
export interface Revocation {
  file: string;
  line?: number;
}

export interface TrustedKey {
  keyId: string;
  path: string;
  key: VerifierKey;
}

/** A public key file of trusted.d: PEM (airlock's own) or an OpenSSH key line (ssh-ed25519, sk-ssh-ed25519). */
export async function loadVerifierKey(path: string): Promise<VerifierKey> {
  const text = await readFile(path, 'utf8').catch(() => '');
  if (isSshPublicKeyText(text)) return sshVerifierKey(parseSshPublicKey(text, path));
  const key = await loadPublicKey(path);
  return ed25519VerifierKey(key, sshsigCheckForEd25519(key));
}

/** What a bundle says it is, read from its manifest before its signatures are counted (a role is chosen by it). */
export interface BundleIdentity {
  name: string;
  version: string;
  engine?: unknown;
}

/**
 * The keys a host accepts bundles from. Several can be trusted at once, so a
 * vendor can rotate keys; a revoked id is refused even if its file remains.
 */
export class TrustStore {
  private constructor(
    readonly dir: string,
    private readonly keys: Map<string, TrustedKey>,
    private readonly revoked: Map<string, Revocation>,
    /** The root of trust and the metadata taken since, on a host installed with a root (docs/trust.md). */
    readonly root: TrustState | undefined,
  ) {}

  /** `stateDir`: where a host with a root keeps the metadata it took (its `trust/` folder). */
  static async load(dir: string, opts: { stateDir?: string } = {}): Promise<TrustStore> {
    // A file, a folder named like a key, an entry this user cannot read: refused by name, wherever it is loaded.
    const files = readableTrustFiles(dir);
    if (files === undefined) {
      throw configError(`trust store not found: ${dir}`, {
        reason: 'no-trust-store',
        subject: dir,
        hint: 'put the vendor public keys (*.pub) there, or point --trust / AIRLOCK_TRUST_DIR at the folder that has them',
      });
    }
    const unsafe = await unsafeTrustPaths(dir);
    if (unsafe.length > 0) {
      throw configError(`trust store ${dir} is not safe to trust: ${unsafe.map((u) => u.problem).join('; ')}`, {
        reason: 'trust-store-unsafe',
        subject: unsafe[0]!.path,
        hint: `whoever can write there can make this host run anything, so nothing is imported, planned or applied until it is fixed: ${trustStoreFix(dir, unsafe)}`,
      });
    }
    const keys = new Map<string, TrustedKey>();
    for (const name of files.filter((n) => n.endsWith('.pub'))) {
      const path = join(dir, name);
      const key = await loadVerifierKey(path);
      keys.set(key.keyId, { keyId: key.keyId, path, key });
    }
    const root = TrustState.installedIn(dir) ? TrustState.load(dir, stateDirFrom(opts.stateDir)) : undefined;
    return new TrustStore(dir, keys, await readRevoked(join(dir, REVOKED_FILE)), root);
  }

  get mode(): 'simple' | 'root' {
    return this.root ? 'root' : 'simple';
  }

  get trustedIds(): string[] {
    return [...this.keys.keys()].filter((id) => !this.revoked.has(id));
  }

  get revokedIds(): string[] {
    return [...this.revoked.keys()];
  }

  /** Where `keyId` is revoked, or undefined while it is not. With a root: a key no longer among the release keys. */
  revocation(keyId: string): Revocation | undefined {
    if (this.root) {
      // The newest targets held decide, expired or not: a rollback must not wait for the vendor.
      const targets = this.root.held.targets;
      if (!targets) return undefined;
      return releaseRolesOf(targets.meta.md, targets.source).keys.has(keyId) ? undefined : { file: targets.source };
    }
    return this.revoked.get(keyId);
  }

  /** The key for `keyId`, or a signature error that says why it cannot be used. With a root: any release key. */
  keyFor(keyId: string): TrustedKey {
    if (this.root) {
      const release = this.root.releaseRoles().keys.get(keyId);
      if (release) return { keyId, path: this.root.held.targets!.source, key: release.key };
      const local = this.keys.get(keyId);
      throw signatureError(`bundle is signed by key ${keyId}, which is not a release key of this host's trust metadata${local ? ` (only ${local.path} lists it)` : ''}`, {
        reason: local ? 'not-in-root' : 'unknown-key',
        subject: keyId,
        hint: local ? 'a host with a root of trust takes release keys from the vendor\'s targets metadata only; trusted.d keys are the simple mode' : 'the vendor must delegate that key in its targets metadata',
      });
    }
    const revoked = this.revoked.get(keyId);
    if (revoked) {
      throw signatureError(`bundle is signed by revoked key ${keyId} (${describeRevocation(revoked)})`, {
        reason: 'revoked-key',
        subject: keyId,
        hint: 'ask the vendor for a bundle signed with a current key',
      });
    }
    const key = this.keys.get(keyId);
    if (!key) {
      throw signatureError(`bundle is signed by unknown key ${keyId}`, {
        reason: 'unknown-key',
        subject: keyId,
        hint: `add the vendor's public key (with that id, see 'airlock key id FILE') to ${this.dir}`,
      });
    }
    return key;
  }

  /**
   * Counts a bundle's signatures over its manifest bytes: in the simple mode one valid signature
   * by a trusted key is enough; with a root, the threshold of the release role that covers the
   * bundle. Returns the signers that count.
   */
  checkBundle(manifestBytes: Buffer, records: SignatureRecord[], bundle: BundleIdentity, now: Date = new Date()): SignedBy {
    if (this.root) {
      const m = bundle;
      const roles = this.root.releaseRoles(now);
      const role = roles.roleFor(bundleTargetOf(m));
      return checkSigners(`bundle ${m.name} ${m.version}`, manifestBytes, records, role, (id) => roles.outside(role, id) ?? this.onlyLocal(id));
    }
    if (records.length === 1) return { signers: [this.checkOne(manifestBytes, records[0]!)] };
    const keys = new Map<string, RoleKey>([...this.keys].filter(([id]) => !this.revoked.has(id)).map(([id, k]) => [id, { key: k.key }]));
    return checkSigners('bundle', manifestBytes, records, { label: `the trust store ${this.dir}`, threshold: 1, keys }, (id) => this.revokedKey(id));
  }

  /** One signature, as every bundle carried before several could sign: the same refusals as ever. */
  private checkOne(data: Buffer, record: SignatureRecord): string {
    const { key } = this.keyFor(record.keyId);
    if (!key.verify(data, record)) {
      throw signatureError(`signature by key ${record.keyId} does not match manifest.json`, {
        reason: 'bad-signature',
        subject: record.keyId,
        hint: 'the manifest or its signature was changed after signing; get a fresh copy from the vendor',
      });
    }
    return record.keyId;
  }

  private revokedKey(keyId: string): OutsideKey | undefined {
    const r = this.revoked.get(keyId);
    return r ? { reason: 'revoked-key', says: `is ${describeRevocation(r)}`, ...(this.keys.get(keyId) ? { key: this.keys.get(keyId)!.key } : {}) } : undefined;
  }

  private onlyLocal(keyId: string): OutsideKey | undefined {
    const local = this.keys.get(keyId);
    return local ? { reason: 'not-in-root', says: `is listed only in ${local.path}, and a host with a root of trust takes release keys from its trust metadata alone`, key: local.key } : undefined;
  }
}

export const describeRevocation = (r: Revocation): string => (r.line === undefined ? `no longer a release key in ${r.file}` : `revoked in ${r.file}, line ${r.line}`);

/** A key id as 'airlock key id' prints it: 16 hex digits. */
const KEY_ID = /^[0-9a-f]{16}$/i;

/**
 * The revocation list: one key id per line; blank lines and `#` comments
 * are allowed. Anything else stops every import (and every deploy) with an
 * error naming the file and line: a list that silently skipped a mistyped
 * line would leave that key trusted. A key id in upper case is the same id
 * (hex digits carry no case), so it is taken in lower case, as ids are
 * printed and compared: refusing it would stop the host over a spelling
 * that leaves no doubt which key is meant.
 */
export function parseRevocationList(text: string, file: string): Map<string, Revocation> {
  const revoked = new Map<string, Revocation>();
  for (const [i, raw] of text.split('\n').entries()) {
    const entry = raw.replace(/#.*/, '').trim();
    if (entry.length === 0) continue;
    if (!KEY_ID.test(entry)) {
      throw configError(`${file}, line ${i + 1}: "${entry}" is not a key id`, {
        reason: 'bad-revocation-list',
        subject: file,
        hint: "each line holds one key id, 16 hex digits as 'airlock key id FILE' prints it, and may end in a # comment; nothing is imported or deployed until the list reads cleanly",
      });
    }
    const id = entry.toLowerCase();
    if (!revoked.has(id)) revoked.set(id, { file, line: i + 1 });
  }
  return revoked;
}

async function readRevoked(path: string): Promise<Map<string, Revocation>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw e;
  }
  return parseRevocationList(text, path);
}
