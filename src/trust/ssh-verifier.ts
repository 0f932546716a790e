/**
 * OpenSSH keys as signers: SSHSIG records (namespace `airlock`) checked for `ssh-ed25519` keys,
 * also when the same key is held as PEM or as a TUF ed25519 key, and for hardware-backed
 * `sk-ssh-ed25519` keys. An `ssh-ed25519` key has the id of the same key in PEM form; an sk key,
 * whose signatures carry more than Ed25519, has an id of its own.
 */
import { createHash, type KeyObject } from 'node:crypto';
import type { Key } from '@tufjs/models';
import { decodeSshPublicKeyBlob, parseSshPublicKey, sshEd25519KeyObject, sshString, SSH_ED25519, type SshPublicKey } from './ssh-keys.js';
import { verifySshsig } from './sshsig.js';
import { ed25519VerifierKey, type SshsigCheck, type VerifierKey } from './verifier-key.js';

/** TUF key type and scheme of an OpenSSH key in trust metadata; its `keyval.public` is the key's authorized_keys line. */
export const TUF_SSH_SCHEME = 'sshsig';

function sshsigCheck(key: SshPublicKey): SshsigCheck {
  return (data, signature) => {
    try {
      return verifySshsig(data, signature, key);
    } catch {
      // Malformed, or made for another namespace: not a signature of this key over a bundle.
      return false;
    }
  };
}

/** SSHSIG checks for a plain Ed25519 key, as the `ssh-ed25519` key it also is. */
export function sshsigCheckForEd25519(key: KeyObject): SshsigCheck {
  const raw = Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url');
  return sshsigCheck(decodeSshPublicKeyBlob(Buffer.concat([sshString(SSH_ED25519), sshString(raw)])));
}

/** An OpenSSH public key as a signer. */
export function sshVerifierKey(key: SshPublicKey): VerifierKey {
  const ed25519 = sshEd25519KeyObject(key);
  if (key.type === SSH_ED25519) return ed25519VerifierKey(ed25519, sshsigCheck(key));
  const check = sshsigCheck(key);
  return {
    keyId: createHash('sha256').update(key.blob).digest('hex').slice(0, 16),
    type: key.type,
    verify: (data, record) => record.algorithm === 'sshsig' && check(data, record.signature),
  };
}

/** The key id `airlock key id` prints for an OpenSSH public key line. */
export const sshKeyId = (text: string, source: string): string => sshVerifierKey(parseSshPublicKey(text, source)).keyId;

/** A TUF key of scheme `sshsig` (an OpenSSH key); undefined for any other. */
export function sshVerifierFromTufKey(key: Key): VerifierKey | undefined {
  if (key.scheme !== TUF_SSH_SCHEME || typeof key.keyVal.public !== 'string') return undefined;
  try {
    const ssh = parseSshPublicKey(key.keyVal.public, `key ${key.keyID}`);
    return ssh.type === key.keyType ? sshVerifierKey(ssh) : undefined;
  } catch {
    return undefined;
  }
}

