import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { configError, signatureError } from '../errors/index.js';
import { keyIdOf, loadPublicKey } from './keys.js';
import { readableTrustFiles, REVOKED_FILE, trustStoreFix, unsafeTrustPaths } from './permissions.js';

export const DEFAULT_TRUST_DIR = '/etc/airlock/trusted.d';

export function trustDirFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.AIRLOCK_TRUST_DIR ?? DEFAULT_TRUST_DIR;
}

/** Where a key was revoked: the list and the line that names it. */
export interface Revocation {
  file: string;
  line: number;
}

export interface TrustedKey {
  keyId: string;
  path: string;
  key: KeyObject;
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
  ) {}

  static async load(dir: string): Promise<TrustStore> {
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
      const key = await loadPublicKey(path);
      keys.set(keyIdOf(key), { keyId: keyIdOf(key), path, key });
    }
    return new TrustStore(dir, keys, await readRevoked(join(dir, REVOKED_FILE)));
  }

  get trustedIds(): string[] {
    return [...this.keys.keys()].filter((id) => !this.revoked.has(id));
  }

  get revokedIds(): string[] {
    return [...this.revoked.keys()];
  }

  /** Where `keyId` is revoked, or undefined while it is not. */
  revocation(keyId: string): Revocation | undefined {
    return this.revoked.get(keyId);
  }

  /** The key for `keyId`, or a signature error that says why it cannot be used. */
  keyFor(keyId: string): TrustedKey {
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
}

export const describeRevocation = (r: Revocation): string => `revoked in ${r.file}, line ${r.line}`;

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
