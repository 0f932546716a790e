/**
 * The content-versioned suffix of a secret's or config's engine name
 * (`app_dbpass-<10 hex>`), keyed by the site: a changed value gets a new name,
 * an unchanged one keeps its name, yet the name lets no one test guesses of
 * the value. Today's suffix is an unsalted SHA-256 prefix, which anyone who
 * sees `docker secret ls` can brute-force for a short value (a 6-digit PIN in
 * 0.6 s). An HMAC under a key only the site holds has no such shortcut:
 * without the key, every guess needs the key too (docs/sealed-secrets.md).
 */
import { createHmac, hkdfSync } from 'node:crypto';
import type { SiteIdentity } from './site-keys.js';

/** The HKDF label: a key made for names, and for nothing else, from the identity. */
const NAMES_INFO = 'airlock/v1 secret and config names';
const NAMES_SALT = 'airlock sealed secrets';
/** As many hex digits as today's suffix, so names keep their length. */
export const SUFFIX_HEX = 10;

/**
 * The names key of a site identity. Every host holding that identity derives
 * the same key, so the hosts of a site agree on names; a separate HKDF label
 * keeps it apart from any other use of the identity (it never decrypts
 * anything, and knowing it tells nothing about the identity).
 */
export function namesKey(identity: SiteIdentity): Buffer {
  return Buffer.from(hkdfSync('sha256', identity.identity, NAMES_SALT, NAMES_INFO, 32));
}

/**
 * The first 10 hex digits of HMAC-SHA256(namesKey, name NUL value). The
 * object's name (`app_dbpass`, which holds no NUL) is in it so that two
 * objects with the same value do not show it by sharing a suffix.
 */
export function keyedNameSuffix(name: string, value: Uint8Array, key: Buffer): string {
  return createHmac('sha256', key).update(name).update(new Uint8Array([0])).update(value).digest('hex').slice(0, SUFFIX_HEX);
}
