/**
 * The trust store and key files a command is given, looked at before they
 * are read: a folder where a key belongs, a key that others can read, or a
 * trust store entry that cannot be read is refused by name, with the fix.
 */
import type { KeyObject } from 'node:crypto';
import { checkNotAFolder, checkPrivateKeyFile, checkTrustDir } from '../config/paths.js';
import { loadPrivateKey, loadPublicKey } from '../trust/keys.js';
import { TrustStore, trustDirFrom } from '../trust/trust-store.js';

/** The trust store of --trust, else AIRLOCK_TRUST_DIR, else the default. */
export async function trustStoreOption(flag: string | undefined): Promise<TrustStore> {
  const dir = trustDirFrom(flag);
  checkTrustDir(dir);
  return TrustStore.load(dir);
}

/** A private key that signs (a bundle, a split index, a receipt). */
export async function signingKeyFile(path: string): Promise<KeyObject> {
  checkPrivateKeyFile(path, 'signing key');
  return loadPrivateKey(path);
}

/** A public key (or the public half of a private key file), as `key id` and `--receipt-key` take it. */
export async function publicKeyFile(path: string, what = 'key file'): Promise<KeyObject> {
  checkNotAFolder(path, what, 'give the key file (NAME.pub or NAME.key) itself');
  return loadPublicKey(path);
}
