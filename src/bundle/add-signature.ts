/**
 * Adding signatures to a built bundle (`airlock bundle sign`): manifest.sig is
 * rewritten with the new records beside the ones it held; every other byte of
 * the bundle (the manifest.json entry, every blob entry, the end of the
 * archive) is copied as it stands, so the signed manifest bytes and the
 * payload cannot change. The file is replaced by rename, never edited in place.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { integrityError, signatureError, usageError } from '../errors/index.js';
import { syncDir } from '../store/durable.js';
import { ed25519VerifierKey } from '../trust/verifier-key.js';
import { sshVerifierKey } from '../trust/ssh-verifier.js';
import { signWithSshKeygen } from '../trust/sshsig.js';
import type { SshPublicKey } from '../trust/ssh-keys.js';
import { withLimits } from './limits.js';
import { MANIFEST_ENTRY, SIGNATURE_ENTRY, parseManifest, parseSignatures, signatureEntryBytes, signatureRecord, type Manifest, type SignatureRecord } from './manifest.js';
import { isPartsIndex } from './parts.js';
import { openBundleFile, readBundleHead } from './reader.js';

/** One key that signs: how it makes a record over the manifest bytes, and how that record is checked. */
export interface ManifestSigner {
  /** The key id its records carry, known before it signs. */
  keyId: string;
  /** The key file, for messages. */
  label: string;
  sign(manifestBytes: Buffer): Promise<SignatureRecord>;
  /** Whether a record is a valid signature by this key (a wrong agent key or passphrase makes one that is not). */
  verify(manifestBytes: Buffer, record: SignatureRecord): boolean;
}

/** A PEM Ed25519 private key: an `ed25519` record, as `bundle build --key` makes. */
export function ed25519Signer(key: KeyObject, label: string): ManifestSigner {
  const verifier = ed25519VerifierKey(key);
  return { keyId: verifier.keyId, label, sign: async (bytes) => signatureRecord(bytes, key), verify: (bytes, record) => verifier.verify(bytes, record) };
}

/**
 * An OpenSSH key through the real `ssh-keygen -Y sign -n airlock`: `keyFile` is the private key
 * file, or the public key of a key ssh-agent holds (a hardware key, an agent-held key); `publicKey`
 * is that key. The record carries the SSHSIG blob: the armored text's body, joined.
 */
export function sshSigner(keyFile: string, publicKey: SshPublicKey): ManifestSigner {
  const verifier = sshVerifierKey(publicKey);
  return {
    keyId: verifier.keyId,
    label: keyFile,
    async sign(bytes) {
      const armored = await signWithSshKeygen(keyFile, bytes);
      const body = armored.split(/\r?\n/).filter((l) => !l.startsWith('-----')).join('').replace(/\s+/g, '');
      return { algorithm: 'sshsig', keyId: verifier.keyId, signature: body };
    },
    verify: (bytes, record) => verifier.verify(bytes, record),
  };
}

export interface AddSignaturesResult {
  manifest: Manifest;
  /** The records manifest.sig now holds: the earlier ones first, then the new ones. */
  records: SignatureRecord[];
}

/** manifest.sig reads at most this many records (parseSignatures). */
const MAX_RECORDS = 32;
const BLOCK = 512;
const padded = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

/**
 * Signs the bundle at `path` with each signer and writes it back with the new
 * records (a key that signed already has its record replaced). A split
 * bundle's parts index is refused: the parts would no longer match it.
 */
export async function addSignatures(path: string, signers: ManifestSigner[]): Promise<AddSignaturesResult> {
  if (isPartsIndex(path)) {
    throw usageError(`${path} is the index of a split bundle; its parts cannot be signed again`, {
      subject: path,
      hint: 'sign the bundle before splitting it: airlock bundle sign BUNDLE --key KEY, then airlock bundle split',
    });
  }
  const head = await readBundleHead(await openBundleFile(path));
  const manifest = parseManifest(head.manifestBytes);
  const records = head.signatureBytes === null ? [] : parseSignatures(head.signatureBytes);
  for (const signer of signers) {
    const record = await signer.sign(head.manifestBytes);
    if (record.keyId !== signer.keyId || !signer.verify(head.manifestBytes, record)) {
      throw signatureError(`the signature made with ${signer.label} does not verify as key ${signer.keyId} over ${MANIFEST_ENTRY}`, {
        reason: 'bad-signature',
        subject: signer.label,
        hint: 'the key that signed is not the one the public key names: check the .pub file beside the key, or which key ssh-agent holds',
      });
    }
    const own = records.findIndex((r) => r.keyId === record.keyId);
    if (own >= 0) records[own] = record;
    else records.push(record);
  }
  if (records.length > MAX_RECORDS) {
    throw usageError(`${path} would carry ${records.length} signatures; a bundle carries at most ${MAX_RECORDS}`, { subject: path });
  }
  const signatureBytes = signatureEntryBytes(records);
  if (signatureBytes.length > withLimits().maxSignatureBytes) {
    throw usageError(`${SIGNATURE_ENTRY} would be ${signatureBytes.length} bytes, over what a reader takes`, { subject: path });
  }
  await rewriteSignatureEntry(path, head.manifestBytes, head.signatureBytes, await signatureEntry(signatureBytes, manifest));
  return { manifest, records };
}

/** The tar entry of manifest.sig as the builder writes it: mode 0644, owner 0, mtime the manifest's `created`. */
async function signatureEntry(data: Buffer, manifest: Manifest): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collecting = (async () => {
    for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  })();
  await new Promise<void>((res, rej) =>
    pack.entry({ name: SIGNATURE_ENTRY, size: data.length, mode: 0o644, mtime: new Date(manifest.created), uid: 0, gid: 0, uname: '', gname: '', type: 'file' }, data, (e) => (e ? rej(e) : res())),
  );
  pack.finalize();
  await collecting;
  // What comes after the entry is the end-of-archive marker, which the copied tail carries already.
  return Buffer.concat(chunks).subarray(0, BLOCK + padded(data.length));
}

/** Where one tar entry lies in the file: its first header (extension headers included) to the end of its padded data. */
interface EntrySpan {
  start: number;
  dataStart: number;
  size: number;
  end: number;
  typeflag: string;
}

/** Tar header types that describe the entry after them (pax, GNU long names). */
const EXTENSION_TYPES = new Set(['x', 'g', 'L', 'K']);

function octalField(block: Buffer, offset: number, length: number): number | null {
  const text = block.subarray(offset, offset + length).toString('latin1').replace(/[\0 ]+$/, '').trim();
  return /^[0-7]+$/.test(text) ? parseInt(text, 8) : null;
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, position);
  return buf.subarray(0, bytesRead);
}

async function entrySpan(fh: FileHandle, start: number): Promise<EntrySpan> {
  let at = start;
  for (;;) {
    const header = await readAt(fh, at, BLOCK);
    const size = header.length === BLOCK ? octalField(header, 124, 12) : null;
    if (size === null) throw layoutChanged(`the tar header at byte ${at} cannot be read`);
    const typeflag = String.fromCharCode(header[156]!);
    const end = at + BLOCK + padded(size);
    if (!EXTENSION_TYPES.has(typeflag)) return { start, dataStart: at + BLOCK, size, end, typeflag };
    at = end;
  }
}

function layoutChanged(why: string) {
  return integrityError(`bundle cannot be signed in place: ${why}`, {
    reason: 'corrupt-tar',
    hint: 'the file changed while it was read, or it was not written by airlock; build it again',
  });
}

/** Checks that an entry found by its headers holds exactly `expected`, as the tar reader saw it. */
async function checkEntryData(fh: FileHandle, span: EntrySpan, expected: Buffer, name: string): Promise<void> {
  const ok = (span.typeflag === '0' || span.typeflag === '\0') && span.size === expected.length && (await readAt(fh, span.dataStart, span.size)).equals(expected);
  if (!ok) throw layoutChanged(`the bytes of ${name} at byte ${span.start} are not the ones read`);
}

/**
 * Writes `.NAME.sign-tmp` beside the bundle: its bytes up to the end of
 * manifest.json, the new manifest.sig entry, then every byte after the old
 * manifest.sig entry (or after manifest.json, for an unsigned bundle); syncs
 * it and renames it over the bundle.
 */
async function rewriteSignatureEntry(path: string, manifestBytes: Buffer, oldSignature: Buffer | null, newEntry: Buffer): Promise<void> {
  const fh = await open(path, 'r');
  let keepTo: number;
  let resumeAt: number;
  try {
    const first = await entrySpan(fh, 0);
    await checkEntryData(fh, first, manifestBytes, MANIFEST_ENTRY);
    keepTo = first.end;
    resumeAt = first.end;
    if (oldSignature !== null) {
      const second = await entrySpan(fh, first.end);
      await checkEntryData(fh, second, oldSignature, SIGNATURE_ENTRY);
      resumeAt = second.end;
    }
  } finally {
    await fh.close();
  }
  const { mode } = await stat(path);
  const tmp = join(dirname(path), `.${basename(path)}.sign-tmp`);
  try {
    // Made new: never written through something left in its place.
    await rm(tmp, { force: true });
    const out = createWriteStream(tmp, { mode: mode & 0o7777, flush: true, flags: 'wx' });
    await pipeline(
      async function* () {
        if (keepTo > 0) yield* createReadStream(path, { start: 0, end: keepTo - 1, highWaterMark: 1024 * 1024 });
        yield newEntry;
        yield* createReadStream(path, { start: resumeAt, highWaterMark: 1024 * 1024 });
      },
      out,
    );
    // The umask may have narrowed the mode at creation.
    await chmod(tmp, mode & 0o7777);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dirname(path));
}
