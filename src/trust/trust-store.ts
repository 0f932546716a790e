import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { configError, signatureError } from '../errors/index.js';
import { keyIdOf, loadPublicKey } from './keys.js';

export const DEFAULT_TRUST_DIR = '/etc/airlock/trusted.d';
/** File inside the trust dir that lists revoked key ids, one per line. */
export const REVOKED_FILE = 'revoked';

export function trustDirFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.AIRLOCK_TRUST_DIR ?? DEFAULT_TRUST_DIR;
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
    private readonly revoked: Set<string>,
  ) {}

  static async load(dir: string): Promise<TrustStore> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw configError(`trust store not found: ${dir}`, {
          reason: 'no-trust-store',
          subject: dir,
          hint: 'put the vendor public keys (*.pub) there, or point --trust / AIRLOCK_TRUST_DIR at the folder that has them',
        });
      }
      throw e;
    }
    const keys = new Map<string, TrustedKey>();
    for (const name of names.filter((n) => n.endsWith('.pub')).sort()) {
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
    return [...this.revoked];
  }

  /** The key for `keyId`, or a signature error that says why it cannot be used. */
  keyFor(keyId: string): TrustedKey {
    if (this.revoked.has(keyId)) {
      throw signatureError(`bundle is signed by revoked key ${keyId}`, {
        reason: 'revoked-key',
        subject: keyId,
        hint: `ask the vendor for a bundle signed with a current key; revocations are listed in ${join(this.dir, REVOKED_FILE)}`,
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

async function readRevoked(path: string): Promise<Set<string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw e;
  }
  const ids = text
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((line) => line.length > 0);
  return new Set(ids);
}
