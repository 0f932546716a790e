import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, sign, verify } from 'node:crypto';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { configError, notFound } from '../errors/index.js';

/**
 * A key id is the first 16 hex digits of the SHA-256 of the public key's
 * SPKI DER: short enough to read aloud, stable for the key's lifetime.
 */
export function keyIdOf(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const der = pub.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 16);
}

export interface KeyPairFiles {
  keyId: string;
  privatePath: string;
  publicPath: string;
}

/** Writes NAME.key (PKCS#8 PEM, 0600) and NAME.pub (SPKI PEM); refuses to overwrite. */
export async function generateKeyPair(outBase: string): Promise<KeyPairFiles> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privatePath = `${outBase}.key`;
  const publicPath = `${outBase}.pub`;
  await mkdir(dirname(outBase), { recursive: true });
  try {
    await writeFile(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    await writeFile(publicPath, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw configError(`key file already exists: ${(e as NodeJS.ErrnoException).path}`, {
        reason: 'key-exists',
        hint: 'choose another --out name, or remove the old pair first',
      });
    }
    throw e;
  }
  return { keyId: keyIdOf(publicKey), privatePath, publicPath };
}

async function readPem(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`key file not found: ${path}`, { subject: path });
    throw e;
  }
}

function ensureEd25519(key: KeyObject, path: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw configError(`${path} is a ${key.asymmetricKeyType} key; airlock signs with Ed25519 only`, {
      reason: 'wrong-key-type',
      hint: 'make one with: airlock key generate --out DIR/NAME',
    });
  }
  return key;
}

export async function loadPrivateKey(path: string): Promise<KeyObject> {
  const pem = await readPem(path);
  try {
    return ensureEd25519(createPrivateKey(pem), path);
  } catch (e) {
    if (e instanceof Error && 'kind' in e) throw e;
    throw configError(`${path} is not a PKCS#8 PEM private key`, { reason: 'bad-key-file', cause: e });
  }
}

/** Loads a public key from a .pub file, or derives it from a .key file. */
export async function loadPublicKey(path: string): Promise<KeyObject> {
  const pem = await readPem(path);
  try {
    const key = pem.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(pem)) : createPublicKey(pem);
    return ensureEd25519(key, path);
  } catch (e) {
    if (e instanceof Error && 'kind' in e) throw e;
    throw configError(`${path} is not a PEM key`, { reason: 'bad-key-file', cause: e });
  }
}

export function signBytes(data: Buffer, key: KeyObject): Buffer {
  return sign(null, data, key);
}

export function verifyBytes(data: Buffer, signature: Buffer, key: KeyObject): boolean {
  return verify(null, data, key, signature);
}
