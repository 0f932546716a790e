/**
 * Keys as TUF metadata holds them, in securesystemslib's convention so standard TUF tooling
 * reads them: an Ed25519 key is {keytype: ed25519, scheme: ed25519, keyval: {public: hex of its
 * 32 raw bytes}}, its keyid the hex SHA-256 of that object's canonical JSON. An OpenSSH
 * ssh-ed25519 key is the same Ed25519 key, so it is written the same way (one person's key is one
 * key); only a hardware-backed sk key, whose signatures carry more than Ed25519, keeps the sshsig form.
 */
import { createHash, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { canonicalize } from '@tufjs/canonical-json';
import { Signature } from '@tufjs/models';
import { configError, notFound } from '../../errors/index.js';
import { checkNotAFolder } from '../../config/paths.js';
import { loadPublicKey } from '../keys.js';
import { formatSshPublicKey, isSshPublicKeyText, parseSshPublicKey, SSH_ED25519, sshEd25519KeyObject } from '../ssh-keys.js';
import { TUF_SSH_SCHEME } from '../ssh-verifier.js';

/** A key's JSON in TUF metadata (before any unrecognized fields such as x-airlock-name). */
export interface TufKeyJson {
  keytype: string;
  scheme: string;
  keyval: { public: string };
}

export interface TufPublicKey {
  keyId: string;
  json: TufKeyJson;
  /** The file it was read from, for messages. */
  source: string;
}

/** securesystemslib's keyid: hex SHA-256 of the key object's canonical JSON. */
export const tufKeyIdOf = (json: TufKeyJson): string => createHash('sha256').update(canonicalize(json)).digest('hex');

const tufKey = (json: TufKeyJson, source: string): TufPublicKey => ({ keyId: tufKeyIdOf(json), json, source });

/** An Ed25519 public key (or the public half of a private one) as a TUF ed25519 key. */
export function ed25519TufKey(key: KeyObject, source: string): TufPublicKey {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const raw = Buffer.from(pub.export({ format: 'jwk' }).x!, 'base64url');
  return tufKey({ keytype: 'ed25519', scheme: 'ed25519', keyval: { public: raw.toString('hex') } }, source);
}

/**
 * A public key file: PEM (NAME.pub, or the public half of NAME.key) or an OpenSSH public key line.
 * `sshsig: false` refuses an sk key: top-level TUF roles are checked by standard TUF clients, which
 * know no SSHSIG signatures.
 */
export async function readTufPublicKey(path: string, opts: { sshsig: boolean }): Promise<TufPublicKey> {
  checkNotAFolder(path, 'public key file', 'give the key file (NAME.pub, or an OpenSSH .pub) itself');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`key file not found: ${path}`, { subject: path });
    throw e;
  }
  if (!isSshPublicKeyText(text)) return ed25519TufKey(await loadPublicKey(path), path);
  const ssh = parseSshPublicKey(text, path);
  if (ssh.type === SSH_ED25519) return ed25519TufKey(sshEd25519KeyObject(ssh), path);
  if (!opts.sshsig) {
    throw configError(`${path} is an OpenSSH ${ssh.type} key: TUF clients cannot check its signatures on trust metadata`, {
      reason: 'wrong-key-type',
      subject: path,
      hint: 'give an Ed25519 key (airlock key generate, or ssh-keygen -t ed25519) for root, targets, snapshot and timestamp; sk keys may sign bundles as release keys',
    });
  }
  return tufKey({ keytype: ssh.type, scheme: TUF_SSH_SCHEME, keyval: { public: formatSshPublicKey(ssh) } }, path);
}

export interface TufSigner {
  keyId: string;
  /** For Metadata.sign: signs the canonical bytes of `signed`. */
  sign: (data: Buffer) => Signature;
  source: string;
}

/** A signer for Metadata.sign from an Ed25519 private key. */
export function tufSigner(privateKey: KeyObject, source: string): TufSigner {
  const { keyId } = ed25519TufKey(privateKey, source);
  return { keyId, source, sign: (data) => new Signature({ keyID: keyId, sig: sign(null, data, privateKey).toString('hex') }) };
}
