/**
 * The trust store and key files a command is given, looked at before they
 * are read: a folder where a key belongs or a key that others can read is
 * refused by name, with the fix (the trust store checks its own entries).
 */
import type { KeyObject } from 'node:crypto';
import { checkNotAFolder, checkPrivateKeyFile } from '../config/paths.js';
import { loadPrivateKey, loadPublicKey } from '../trust/keys.js';
import { TrustStore, trustDirFrom } from '../trust/trust-store.js';

const flag = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * The trust store of --trust, else AIRLOCK_TRUST_DIR, else the default; on a host with a root of
 * trust, with the metadata held in the state dir of --state (else AIRLOCK_STATE_DIR, else the default).
 */
export function trustStoreOption(values: { trust?: unknown; state?: unknown }): Promise<TrustStore> {
  const state = flag(values.state);
  return TrustStore.load(trustDirFrom(flag(values.trust)), state === undefined ? {} : { stateDir: state });
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
