/**
 * A site's age keys (X25519): the identity (`AGE-SECRET-KEY-1…`) that stays
 * on the site's hosts, root-only, and the recipient (`age1…`) the vendor
 * seals to. Both are read from files in age's own format, so `age-keygen`
 * and `age -d -i` work with the same files (docs/sealed-secrets.md).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Encrypter, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { checkNotAFolder, checkPrivateKeyFile, denied, kindOf, unreadable } from '../config/paths.js';
import { configError, notFound } from '../errors/index.js';
import { IDENTITY_SUFFIX, RECIPIENT_SUFFIX } from './key-files.js';

/** An identity held by this host, with the recipient it opens and where it was read. */
export interface SiteIdentity {
  identity: string;
  recipient: string;
  keyId: string;
  /** The file it came from (for messages); `generated` for a new one. */
  source: string;
}

export interface SiteRecipient {
  recipient: string;
  keyId: string;
}

/** X25519 only: 32 bytes in bech32 are 52 characters, then 6 of checksum. */
const RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;
const IDENTITY = /^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$/;
/** In a folder of identities, the files read (others, a README, are left alone). */
export { IDENTITY_SUFFIX, RECIPIENT_SUFFIX };

/**
 * A site key's id: the first 16 hex digits of the SHA-256 of its recipient
 * string (`age1…`, lower case). The recipient is the one public form every
 * party already holds, so anyone can recompute the id without airlock
 * (`printf %s age1… | sha256sum`); it is a hash of public data, so it tells
 * nothing about the identity; 64 bits tell a site's keys apart as the signing
 * keys' ids do (src/trust/keys.ts). It names a key in messages and, later, in
 * the manifest, since age's X25519 stanzas do not say whom they are for.
 */
export function siteKeyId(recipient: string): string {
  return createHash('sha256').update(recipient.toLowerCase()).digest('hex').slice(0, 16);
}

/** A new identity and its recipient; nothing is written. */
export async function generateSiteIdentity(): Promise<SiteIdentity> {
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  return { identity, recipient, keyId: siteKeyId(recipient), source: 'generated' };
}

export interface SiteKeyFiles {
  keyId: string;
  recipient: string;
  identityPath: string;
  recipientPath: string;
}

/**
 * Writes NAME.identity (0600, in age-keygen's layout, so `age -d -i` takes it)
 * and NAME.recipient (0644, to give the vendor); refuses to overwrite either,
 * as the signing key pair does.
 */
export async function writeSiteKeyPair(outBase: string): Promise<SiteKeyFiles> {
  const site = await generateSiteIdentity();
  const identityPath = `${outBase}${IDENTITY_SUFFIX}`;
  const recipientPath = `${outBase}${RECIPIENT_SUFFIX}`;
  const created = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  let wroteIdentity = false;
  try {
    await writeFile(identityPath, `# created: ${created}\n# public key: ${site.recipient}\n# key id: ${site.keyId}\n${site.identity}\n`, { mode: 0o600, flag: 'wx' });
    wroteIdentity = true;
    await writeFile(recipientPath, `# airlock site key ${site.keyId}: seal to this with bundle build --seal-to\n${site.recipient}\n`, { mode: 0o644, flag: 'wx' });
  } catch (e) {
    // No identity is left behind without its recipient file.
    if (wroteIdentity) await rm(identityPath, { force: true });
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw configError(`key file already exists: ${(e as NodeJS.ErrnoException).path}`, {
        reason: 'key-exists',
        hint: 'choose another --out name, or remove the old pair first (a site identity still sealed to must be kept)',
      });
    }
    throw e;
  }
  return { keyId: site.keyId, recipient: site.recipient, identityPath, recipientPath };
}

/** The lines of an age key file that are not blank or `#` comments, with their line numbers. */
function keyLines(text: string): { line: number; text: string }[] {
  return text
    .split('\n')
    .map((t, i) => ({ line: i + 1, text: t.trim() }))
    .filter((l) => l.text !== '' && !l.text.startsWith('#'));
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if (denied(e)) throw unreadable(path, what);
    throw e;
  }
}

const badIdentityFile = (path: string, why: string) =>
  configError(`site identity ${path} ${why}`, {
    reason: 'bad-identity-file',
    subject: path,
    hint: 'give a file made by `airlock key generate --kind site` or `age-keygen`: one AGE-SECRET-KEY-1… line per identity, # comments allowed',
  });

/**
 * A credential systemd handed the service (LoadCredential=): a file directly
 * in $CREDENTIALS_DIRECTORY, root's, read-only, readable by group root and
 * by the service's user through an ACL (systemd 257 makes it 0440). The
 * owner-only rule does not fit it; what may not be is write access, or read
 * access for others.
 */
function isSystemdCredential(path: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const dir = env.CREDENTIALS_DIRECTORY;
  if (!dir || resolve(dirname(path)) !== resolve(dir)) return false;
  const st = statSync(path);
  return st.uid === 0 && st.gid === 0 && (st.mode & 0o227) === 0;
}

/**
 * The identities in one file (age-keygen's format: one per line, `#`
 * comments). Refused: a missing file, one its group or others may read or
 * write (a copy may exist already), one with no identity or with a line that
 * is not an X25519 identity.
 */
export async function readIdentityFile(path: string): Promise<SiteIdentity[]> {
  if (kindOf(path, 'site identity') === 'absent') {
    throw notFound(`site identity ${path} does not exist`, {
      reason: 'identity-not-found',
      subject: path,
      hint: 'make one with `airlock key generate --kind site --out DIR/NAME`, or give the path of the site identity this host holds',
    });
  }
  if (!isSystemdCredential(path)) checkPrivateKeyFile(path, 'site identity');
  const lines = keyLines(readText(path, 'site identity'));
  if (lines.length === 0) throw badIdentityFile(path, 'holds no identity');
  const identities: SiteIdentity[] = [];
  for (const l of lines) {
    if (RECIPIENT.test(l.text.toLowerCase())) throw badIdentityFile(path, `line ${l.line} is a recipient (age1…), the public half: the identity is the AGE-SECRET-KEY-1… file beside it`);
    if (!IDENTITY.test(l.text)) throw badIdentityFile(path, `line ${l.line} is not an age X25519 identity (AGE-SECRET-KEY-1…)`);
    let recipient: string;
    try {
      recipient = await identityToRecipient(l.text);
    } catch {
      // age's message quotes the line, which is (nearly) a secret: it is left out.
      throw badIdentityFile(path, `line ${l.line} is not a valid age identity (its checksum does not match)`);
    }
    identities.push({ identity: l.text, recipient, keyId: siteKeyId(recipient), source: path });
  }
  return identities;
}

/**
 * Every identity this host holds, for rotation: each path is an identity
 * file, or a folder whose `*.identity` files are read (other files, a README,
 * are left alone). The same identity found twice is held once. A folder with
 * no identity is refused: it means the host could open nothing.
 */
export async function readIdentities(paths: readonly string[]): Promise<SiteIdentity[]> {
  const held = new Map<string, SiteIdentity>();
  for (const path of paths) {
    const files =
      kindOf(path, 'site identity folder') === 'folder'
        ? readdirSync(path)
            .filter((f) => f.endsWith(IDENTITY_SUFFIX))
            .sort()
            .map((f) => join(path, f))
        : [path];
    if (files.length === 0) {
      throw configError(`site identity folder ${path} holds no ${IDENTITY_SUFFIX} file`, {
        reason: 'no-identity',
        subject: path,
        hint: `put the site identity there as NAME${IDENTITY_SUFFIX} (mode 0600), or give the file itself`,
      });
    }
    for (const file of files) for (const id of await readIdentityFile(file)) if (!held.has(id.keyId)) held.set(id.keyId, id);
  }
  return [...held.values()];
}

const badRecipientFile = (path: string, why: string, hint?: string) =>
  configError(`recipient file ${path} ${why}`, {
    reason: 'bad-recipient-file',
    subject: path,
    hint: hint ?? 'give the site\'s NAME.recipient file: one age1… line per recipient, # comments allowed',
  });

/** Throws unless `recipient` is an X25519 age recipient whose checksum holds. */
function checkRecipient(recipient: string): void {
  if (!RECIPIENT.test(recipient)) throw new Error('not an age X25519 recipient (age1… of 62 characters)');
  // age's own parser checks the bech32 checksum; the Encrypter is only built to ask it.
  new Encrypter().addRecipient(recipient);
}

/** The recipients in one file (one `age1…` per line, `#` comments), as the vendor was given them. */
export function readRecipientFile(path: string): SiteRecipient[] {
  if (kindOf(path, 'recipient file') === 'absent') {
    throw notFound(`recipient file ${path} does not exist`, { reason: 'not-found', subject: path, hint: 'ask the site for the NAME.recipient file that `airlock key generate --kind site` wrote' });
  }
  checkNotAFolder(path, 'recipient file', 'give the NAME.recipient file itself');
  const lines = keyLines(readText(path, 'recipient file'));
  if (lines.length === 0) throw badRecipientFile(path, 'holds no recipient');
  return lines.map((l) => {
    if (l.text.startsWith('AGE-SECRET-KEY-')) {
      throw badRecipientFile(path, `line ${l.line} is a secret identity, not a recipient`, 'a site identity must never leave the site: give its NAME.recipient instead, and make a new site key if this one was copied');
    }
    const recipient = l.text.toLowerCase();
    try {
      checkRecipient(recipient);
    } catch (e) {
      throw badRecipientFile(path, `line ${l.line} is not a valid recipient: ${(e as Error).message}`);
    }
    return { recipient, keyId: siteKeyId(recipient) };
  });
}

/** The recipients of several files, each once, in the order given. */
export function readRecipients(paths: readonly string[]): SiteRecipient[] {
  const all = new Map<string, SiteRecipient>();
  for (const path of paths) for (const r of readRecipientFile(path)) if (!all.has(r.keyId)) all.set(r.keyId, r);
  return [...all.values()];
}
