/**
 * A public key that can check a signature record, whatever form the key came in: a PEM Ed25519
 * key (airlock's own), an OpenSSH `ssh-ed25519` key or a hardware-backed `sk-ssh-ed25519` key.
 * One Ed25519 key is one signer, whichever file it was read from: its id is the same.
 */
import type { KeyObject } from 'node:crypto';
import { keyIdOf, verifyBytes } from './keys.js';

/** One signature as a bundle, a parts index or a receipt carries it (docs/bundle-format.md, section 4). */
export interface SignatureRecord {
  /** `ed25519`: raw Ed25519 over the signed bytes; `sshsig`: an OpenSSH SSHSIG (namespace `airlock`) over them, base64 of its binary form. */
  algorithm: 'ed25519' | 'sshsig';
  keyId: string;
  signature: string;
}

export interface VerifierKey {
  /** `airlock key id`: 16 hex digits. */
  keyId: string;
  /** What kind of key, for messages: `ed25519`, `ssh-ed25519`, `sk-ssh-ed25519@openssh.com`. */
  type: string;
  /** The Ed25519 key inside, for the checks that need one (a parts index, a receipt). */
  ed25519?: KeyObject;
  /** Whether `record` is a valid signature by this key over `data`; false for a form this key cannot make. */
  verify(data: Buffer, record: SignatureRecord): boolean;
}

/** An SSHSIG checker for an OpenSSH key, given by src/trust/ssh-verifier.ts. */
export type SshsigCheck = (data: Buffer, sshsigBase64: string) => boolean;

/** A PEM Ed25519 key; with `sshsig`, the same key as an OpenSSH `ssh-ed25519` key also checks SSHSIG records. */
export function ed25519VerifierKey(key: KeyObject, sshsig?: SshsigCheck): VerifierKey {
  return {
    keyId: keyIdOf(key),
    type: 'ed25519',
    ed25519: key,
    verify(data, record) {
      if (record.algorithm === 'ed25519') return verifyBytes(data, Buffer.from(record.signature, 'base64'), key);
      return sshsig !== undefined && sshsig(data, record.signature);
    },
  };
}
