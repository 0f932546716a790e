import { spawn } from 'node:child_process';
import { createHash, verify } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signatureError } from '../errors/index.js';
import {
  decodeSshPublicKeyBlob,
  decodeStrictBase64,
  SK_SSH_ED25519,
  sshEd25519KeyObject,
  sshFingerprint,
  SshPublicKey,
  sshString,
  SshWireFormatError,
  SshWireReader,
  UnsupportedSshKeyTypeError,
} from './ssh-keys.js';

/**
 * OpenSSH signatures (`ssh-keygen -Y sign`, PROTOCOL.sshsig) made with
 * Ed25519 keys, plain or hardware-backed (PROTOCOL.u2f). Airlock signs in
 * its own namespace so that a signature made for git or for login can never
 * pass for a bundle signature, nor the other way round.
 */
export const AIRLOCK_NAMESPACE = 'airlock';

const MAGIC = Buffer.from('SSHSIG');
const SSHSIG_VERSION = 1;
const BEGIN = '-----BEGIN SSH SIGNATURE-----';
const END = '-----END SSH SIGNATURE-----';
const HASH_ALGORITHMS = ['sha256', 'sha512'] as const;
const ED25519_SIGNATURE_BYTES = 64;
/** The FIDO flag that says the user touched the token (PROTOCOL.u2f, sk-api.h). */
const SK_USER_PRESENCE = 0x01;

export interface ParsedSshsig {
  publicKey: SshPublicKey;
  namespace: string;
  hashAlgorithm: 'sha256' | 'sha512';
  signatureType: string;
}

/** What verification needs beyond the parsed fields: the raw signature and, for sk keys, the token's flags and counter. */
interface DecodedSshsig extends ParsedSshsig {
  ed25519Signature: Buffer;
  sk?: { flags: number; counter: number };
}

const signHint = `sign with: ssh-keygen -Y sign -n ${AIRLOCK_NAMESPACE} -f KEY FILE (the -----BEGIN SSH SIGNATURE----- text it writes to FILE.sig)`;

function malformed(why: string, cause?: unknown) {
  return signatureError(`SSH signature is malformed: ${why}`, {
    reason: 'malformed-signature',
    hint: signHint,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** The binary blob inside the armor; the bare base64 body is accepted too. */
function dearmor(text: string): Buffer {
  let body = text.trim();
  if (body.startsWith(BEGIN)) {
    if (!body.endsWith(END)) throw malformed(`no ${END} line at the end`);
    body = body.slice(BEGIN.length, body.length - END.length);
    // The armor lines are lines of their own, as ssh-keygen requires.
    if (!/^\r?\n/.test(body) || !body.endsWith('\n')) throw malformed('the armor lines are not lines of their own');
  } else if (body.includes('-----')) {
    throw malformed(`it does not start with ${BEGIN}`);
  }
  const blob = decodeStrictBase64(body.replace(/\s+/g, ''));
  if (blob === null) throw malformed('the text between the armor lines is not base64');
  return blob;
}

/** The signature field: string type, string Ed25519 signature, and for sk keys byte flags, uint32 counter. */
function decodeSignatureField(field: Buffer, key: SshPublicKey): Pick<DecodedSshsig, 'signatureType' | 'ed25519Signature' | 'sk'> {
  const reader = new SshWireReader(field);
  const signatureType = reader.text('signature type');
  if (signatureType !== key.type) throw malformed(`a ${signatureType} signature does not belong to a ${key.type} key`);
  const ed25519Signature = Buffer.from(reader.string('Ed25519 signature'));
  if (ed25519Signature.length !== ED25519_SIGNATURE_BYTES) {
    throw malformed(`the Ed25519 signature is ${ed25519Signature.length} bytes, not ${ED25519_SIGNATURE_BYTES}`);
  }
  const sk = key.type === SK_SSH_ED25519 ? { flags: reader.byte('FIDO flags'), counter: reader.uint32('FIDO counter') } : undefined;
  reader.end('signature field');
  return { signatureType, ed25519Signature, ...(sk === undefined ? {} : { sk }) };
}

function decodeSshsig(text: string): DecodedSshsig {
  const reader = new SshWireReader(dearmor(text));
  try {
    if (!reader.bytes(MAGIC.length, 'magic').equals(MAGIC)) throw malformed('it does not start with the SSHSIG magic');
    const version = reader.uint32('version');
    if (version !== SSHSIG_VERSION) throw malformed(`version ${version}; airlock reads version ${SSHSIG_VERSION}`);
    const publicKey = decodeSshPublicKeyBlob(Buffer.from(reader.string('public key')));
    const namespace = reader.text('namespace');
    if (namespace === '') throw malformed('the namespace is empty');
    reader.string('reserved'); // PROTOCOL.sshsig: ignored, as ssh-keygen does
    const hashAlgorithm = reader.text('hash algorithm');
    if (!(HASH_ALGORITHMS as readonly string[]).includes(hashAlgorithm)) {
      throw malformed(`unknown hash algorithm "${hashAlgorithm.slice(0, 40)}"; SSHSIG uses ${HASH_ALGORITHMS.join(' or ')}`);
    }
    const field = decodeSignatureField(Buffer.from(reader.string('signature')), publicKey);
    reader.end('SSHSIG blob');
    return { publicKey, namespace, hashAlgorithm: hashAlgorithm as ParsedSshsig['hashAlgorithm'], ...field };
  } catch (e) {
    if (e instanceof UnsupportedSshKeyTypeError) {
      throw malformed(`it was made with an ${e.keyType} key; airlock accepts ssh-ed25519 and ${SK_SSH_ED25519} keys`, e);
    }
    if (e instanceof SshWireFormatError) throw malformed(e.message, e);
    throw e;
  }
}

/** Parses an armored SSHSIG (or its base64 body without armor); malformed-signature on anything not well-formed. */
export function parseSshsig(text: string): ParsedSshsig {
  const { publicKey, namespace, hashAlgorithm, signatureType } = decodeSshsig(text);
  return { publicKey, namespace, hashAlgorithm, signatureType };
}

/**
 * The bytes the key signs (PROTOCOL.sshsig §3). The reserved field is signed
 * empty whatever the signature carries, as ssh-keygen verifies it.
 */
function signedData(message: Buffer, namespace: string, hashAlgorithm: ParsedSshsig['hashAlgorithm']): Buffer {
  return Buffer.concat([
    MAGIC,
    sshString(namespace),
    sshString(Buffer.alloc(0)),
    sshString(hashAlgorithm),
    sshString(createHash(hashAlgorithm).update(message).digest()),
  ]);
}

/**
 * What a FIDO token signs for sk-ssh-ed25519 (PROTOCOL.u2f, ssh-ed25519-sk.c):
 * SHA256(application) || flags || counter (uint32 BE) || SHA256(data).
 */
export function skSignedData(application: string, flags: number, counter: number, data: Buffer): Buffer {
  const flagsAndCounter = Buffer.alloc(5);
  flagsAndCounter.writeUInt8(flags, 0);
  flagsAndCounter.writeUInt32BE(counter, 1);
  const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();
  return Buffer.concat([sha256(application), flagsAndCounter, sha256(data)]);
}

/**
 * Verifies an SSHSIG over `message` by `key` in `namespace`. False for a
 * signature that does not verify, made by another key, or (sk) made
 * without the user touching the token; throws for malformed input
 * (malformed-signature) or another namespace (wrong-namespace).
 */
export function verifySshsig(message: Buffer, text: string, key: SshPublicKey, namespace: string = AIRLOCK_NAMESPACE): boolean {
  const sig = decodeSshsig(text);
  if (sig.namespace !== namespace) {
    throw signatureError(`SSH signature is for namespace "${sig.namespace}", not "${namespace}"`, {
      reason: 'wrong-namespace',
      subject: sshFingerprint(sig.publicKey),
      hint: `sign with: ssh-keygen -Y sign -n ${namespace} -f KEY FILE`,
    });
  }
  if (!sig.publicKey.blob.equals(key.blob)) return false;
  let data = signedData(message, sig.namespace, sig.hashAlgorithm);
  if (sig.sk !== undefined) {
    if ((sig.sk.flags & SK_USER_PRESENCE) === 0) return false;
    data = skSignedData(key.application ?? '', sig.sk.flags, sig.sk.counter, data);
  }
  return verify(null, data, sshEd25519KeyObject(key), sig.ed25519Signature);
}

function signFailed(message: string, cause?: unknown) {
  return signatureError(message, {
    reason: 'ssh-sign-failed',
    hint: 'check the key file (ssh-keygen -y -f KEY prints its public key), and touch the security key when it blinks',
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Runs `ssh-keygen -Y sign` on the message written to a private temporary
 * file. Its stderr goes to ours as it comes (a hardware key's "Confirm user
 * presence" prompt must be seen) and is kept for the error message.
 */
function runSshKeygenSign(keyFile: string, messageFile: string, namespace: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh-keygen', ['-Y', 'sign', '-n', namespace, '-f', keyFile, messageFile], {
      stdio: ['inherit', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      process.stderr.write(d);
      stderr += d.toString();
    });
    child.on('error', (e) => reject(signFailed(`cannot run ssh-keygen: ${e.message}`, e)));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve();
      const why = signal === null ? `exit ${code}` : `signal ${signal}`;
      reject(signFailed(`ssh-keygen -Y sign with ${keyFile} failed (${why}): ${stderr.trim() || 'no message'}`));
    });
  });
}

/** Signs `message` with the real `ssh-keygen -Y sign -n NAMESPACE -f KEYFILE`; returns the armored signature text. */
export async function signWithSshKeygen(keyFile: string, message: Buffer, namespace: string = AIRLOCK_NAMESPACE): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-sshsig-'));
  try {
    const messageFile = join(dir, 'message');
    await writeFile(messageFile, message, { mode: 0o600, flag: 'wx' });
    await runSshKeygenSign(keyFile, messageFile, namespace);
    return await readFile(`${messageFile}.sig`, 'utf8');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
