/**
 * What a host's commands and agent are told about sealed secrets: where its
 * site identities are, and whether a secret may arrive in clear.
 */
import { DEFAULT_SITE_KEYS_DIR, HostKeys } from './host-keys.js';

export interface SealingOptions {
  /** Identity files or folders; each must exist. None: DEFAULT_SITE_KEYS_DIR, when it holds identities. */
  identities?: readonly string[];
  /** Refuse a bundle that carries a secret in clear (`unsealed-secret`). */
  requireSealed?: boolean;
}

/** The keys a host holds under these options; nothing is read until a value or name needs them. */
export const hostKeysOf = (stateDir: string, sealing: SealingOptions | undefined): HostKeys =>
  new HostKeys({ given: sealing?.identities ?? [], fallback: DEFAULT_SITE_KEYS_DIR, stateDir });
