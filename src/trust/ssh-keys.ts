import { createHash, createPublicKey, KeyObject } from 'node:crypto';
import { configError } from '../errors/index.js';

/**
 * OpenSSH public keys for airlock's signatures: plain `ssh-ed25519` keys and
 * hardware-backed `sk-ssh-ed25519@openssh.com` keys (PROTOCOL.u2f). Both
 * carry a raw Ed25519 key, so node:crypto verifies them without new
 * dependencies.
 */
export type SshKeyType = 'ssh-ed25519' | 'sk-ssh-ed25519@openssh.com';

export interface SshPublicKey {
  type: SshKeyType;
  /** The raw 32-byte Ed25519 public key. */
  ed25519: Buffer;
  /** FIDO application string, sk keys only (usually "ssh:"). */
  application?: string;
  /** The SSH wire-format public key blob. */
  blob: Buffer;
  comment: string;
}

export const SSH_ED25519 = 'ssh-ed25519';
export const SK_SSH_ED25519 = 'sk-ssh-ed25519@openssh.com';
const SUPPORTED_TYPES: readonly string[] = [SSH_ED25519, SK_SSH_ED25519];
const ED25519_KEY_BYTES = 32;

/** Names that OpenSSH uses for key types: plain, ECDSA, FIDO and certificate forms. */
const SSH_KEY_TYPE_NAME = /^(?:ssh-|ecdsa-sha2-|sk-|x509v3-)[A-Za-z0-9@._-]+$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** SSH wire data that is not well-formed; each caller turns it into the error class of its context. */
export class SshWireFormatError extends Error {}

/** A key blob of a type airlock does not verify (RSA, ECDSA, certificates). */
export class UnsupportedSshKeyTypeError extends Error {
  constructor(readonly keyType: string) {
    super(`unsupported SSH key type ${keyType}`);
  }
}

/** Reads the RFC 4251 encodings (uint32, byte, string) from a buffer, refusing to run past its end. */
export class SshWireReader {
  private offset = 0;

  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.offset;
  }

  bytes(n: number, what: string): Buffer {
    if (n > this.remaining) throw new SshWireFormatError(`${what} runs past the end of the data`);
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  byte(what: string): number {
    return this.bytes(1, what)[0] as number;
  }

  uint32(what: string): number {
    return this.bytes(4, what).readUInt32BE(0);
  }

  string(what: string): Buffer {
    return this.bytes(this.uint32(`length of ${what}`), what);
  }

  /** A string that OpenSSH reads as a C string: valid UTF-8, no NUL bytes. */
  text(what: string): string {
    const raw = this.string(what);
    if (raw.includes(0)) throw new SshWireFormatError(`${what} contains a NUL byte`);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      throw new SshWireFormatError(`${what} is not valid UTF-8`);
    }
  }

  /** Trailing bytes are refused: they would be data nobody checked. */
  end(what: string): void {
    if (this.remaining !== 0) throw new SshWireFormatError(`${what} has ${this.remaining} trailing bytes`);
  }
}

/** The RFC 4251 `string` encoding: uint32 length, then the bytes. */
export function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** Decodes strict base64 (no stray characters, canonical padding); null if it is not. */
export function decodeStrictBase64(text: string): Buffer | null {
  if (text.length === 0 || text.length % 4 !== 0 || !BASE64.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : null;
}

/**
 * Decodes a public key blob (PROTOCOL.u2f for the sk form). Throws
 * SshWireFormatError for a malformed blob, UnsupportedSshKeyTypeError for
 * a well-formed one of another type.
 */
export function decodeSshPublicKeyBlob(blob: Buffer, comment = ''): SshPublicKey {
  const reader = new SshWireReader(blob);
  const type = reader.text('key type');
  if (!SUPPORTED_TYPES.includes(type)) throw new UnsupportedSshKeyTypeError(type);
  const ed25519 = Buffer.from(reader.string('Ed25519 public key'));
  if (ed25519.length !== ED25519_KEY_BYTES) {
    throw new SshWireFormatError(`Ed25519 public key is ${ed25519.length} bytes, not ${ED25519_KEY_BYTES}`);
  }
  const application = type === SK_SSH_ED25519 ? reader.text('FIDO application') : undefined;
  reader.end('public key blob');
  return {
    type: type as SshKeyType,
    ed25519,
    ...(application === undefined ? {} : { application }),
    blob: Buffer.from(blob),
    comment,
  };
}

/** The first line that is neither empty nor a # comment. */
function firstKeyLine(text: string): string | undefined {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'));
}

/** True if the text looks like an OpenSSH public key line (authorized_keys form). */
export function isSshPublicKeyText(text: string): boolean {
  const [type, base64] = firstKeyLine(text)?.split(/\s+/) ?? [];
  return type !== undefined && base64 !== undefined && SSH_KEY_TYPE_NAME.test(type) && BASE64.test(base64);
}

const NEW_KEY_HINT = 'make one with: ssh-keygen -t ed25519 (or -t ed25519-sk for a hardware key), and give its .pub file';

function wrongKeyType(type: string, source: string) {
  return configError(`${source} is an OpenSSH ${type} key; airlock accepts ${SUPPORTED_TYPES.join(' and ')} keys only`, {
    reason: 'wrong-key-type',
    subject: source,
    hint: NEW_KEY_HINT,
  });
}

function badKeyFile(why: string, source: string, cause?: unknown) {
  return configError(`${source} is not an OpenSSH public key: ${why}`, {
    reason: 'bad-key-file',
    subject: source,
    hint: 'give the one-line .pub file ssh-keygen wrote ("ssh-ed25519 AAAA... comment")',
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Parses "TYPE BASE64 [comment]" (first non-empty, non-# line). Other key
 * types are refused as wrong-key-type, malformed input as bad-key-file.
 */
export function parseSshPublicKey(text: string, source: string): SshPublicKey {
  const line = firstKeyLine(text);
  if (line === undefined) throw badKeyFile('it has no key line', source);
  const [type = '', base64, ...commentWords] = line.split(/\s+/);
  if (!SUPPORTED_TYPES.includes(type)) {
    if (SSH_KEY_TYPE_NAME.test(type)) throw wrongKeyType(type, source);
    throw badKeyFile(`"${type.slice(0, 40)}" is not a key type`, source);
  }
  const blob = base64 === undefined ? null : decodeStrictBase64(base64);
  if (blob === null) throw badKeyFile(`the key after ${type} is missing or not base64`, source);
  let key: SshPublicKey;
  try {
    key = decodeSshPublicKeyBlob(blob, commentWords.join(' '));
  } catch (e) {
    if (e instanceof UnsupportedSshKeyTypeError) throw badKeyFile(`the line says ${type} but the key inside is ${e.keyType}`, source, e);
    if (e instanceof SshWireFormatError) throw badKeyFile(e.message, source, e);
    throw e;
  }
  if (key.type !== type) throw badKeyFile(`the line says ${type} but the key inside is ${key.type}`, source);
  return key;
}

/** The key as a node:crypto KeyObject (Ed25519), for ssh-ed25519 and the sk key's inner Ed25519 key alike. */
export function sshEd25519KeyObject(key: SshPublicKey): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: key.ed25519.toString('base64url') }, format: 'jwk' });
}

/** Serialises back to "TYPE BASE64" (no comment). */
export function formatSshPublicKey(key: SshPublicKey): string {
  return `${key.type} ${key.blob.toString('base64')}`;
}

/** The fingerprint `ssh-keygen -l` prints: SHA256 of the blob, unpadded base64. */
export function sshFingerprint(key: SshPublicKey): string {
  return `SHA256:${createHash('sha256').update(key.blob).digest('base64').replace(/=+$/, '')}`;
}

/** True if a private key file's text is an OpenSSH private key ("-----BEGIN OPENSSH PRIVATE KEY-----"). */
export function isOpenSshPrivateKeyText(text: string): boolean {
  return text.trimStart().startsWith('-----BEGIN OPENSSH PRIVATE KEY-----');
}
