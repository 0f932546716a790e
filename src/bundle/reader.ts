import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { AirlockError, integrityError, notFound, policyError, signatureError, unsafeEntry } from '../errors/index.js';
import type { TrustStore } from '../trust/trust-store.js';
import { verifyBytes } from '../trust/keys.js';
import { createDecoder, isDecodeError } from './encodings.js';
import { checkDeclaredSizes, withLimits, type Limits } from './limits.js';
import { isPartsIndex, refuseLonePart } from './parts.js';
import { checkPartsHead, checkPartsSignature, explainPartsFailure, openParts } from './parts-stream.js';
import {
  BLOB_PREFIX,
  MANIFEST_ENTRY,
  SIGNATURE_ENTRY,
  blobEntryName,
  carriedBlobs,
  parseManifest,
  parseSignature,
  type CarriedBlob,
  type Manifest,
  type SignatureRecord,
} from './manifest.js';
import { unsafePathReason } from './manifest-checks.js';

/** Where verified blob content goes; `null` means the store has it already, so only hash it. */
export interface BlobSink {
  open(blob: CarriedBlob): Promise<Writable | null>;
}

export interface ReadOptions {
  trust: TrustStore;
  limits?: Partial<Limits>;
  now?: Date;
  /** Runs after the signature and policy checks pass, before any blob is read. */
  beforePayload?: (verified: VerifiedHead) => Promise<void> | void;
  sink?: BlobSink;
}

export interface VerifiedHead {
  manifest: Manifest;
  manifestDigest: string;
  keyId: string;
  manifestBytes: Buffer;
  signatureBytes: Buffer;
}

export interface VerifiedBundle extends VerifiedHead {
  /** Bytes of blob entries read from the bundle. */
  payloadBytes: number;
}

type Entry = tar.Extract extends AsyncIterable<infer E> ? E : never;

/**
 * Opens a bundle file for one sequential pass with large reads. A split
 * bundle's index (`NAME.airlock.parts`) opens as the stream of its parts,
 * once all are there (see parts.ts).
 */
export async function openBundleFile(path: string): Promise<Readable> {
  if (isPartsIndex(path)) return openParts(path);
  refuseLonePart(path);
  try {
    const s = await stat(path);
    if (!s.isFile()) throw notFound(`${path} is not a regular file`, { subject: path });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw notFound(`bundle not found: ${path}`, { subject: path, reason: 'no-such-bundle' });
    }
    throw e;
  }
  return createReadStream(path, { highWaterMark: 1024 * 1024 });
}

/**
 * Walks the tar entries of a bundle in order. Owns the extract stream, maps
 * tar-stream's failures to integrity errors and checks each header for
 * unsafe entries before anything reads its data.
 */
class EntryWalker {
  private readonly extract = tar.extract();
  private readonly iterator: AsyncIterator<Entry>;
  private readonly feeding: Promise<void>;
  private index = -1;
  /** Bytes fed to the tar parser, and the last few of them: to tell trailing garbage from a cut. */
  private fed = 0;
  private tail: Buffer = Buffer.alloc(0);

  constructor(private readonly input: Readable) {
    this.iterator = this.extract[Symbol.asyncIterator]() as AsyncIterator<Entry>;
    const watch = async function* (this: EntryWalker, source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        this.fed += chunk.length;
        this.tail = chunk.length >= TAIL_BYTES ? chunk.subarray(chunk.length - TAIL_BYTES) : Buffer.concat([this.tail, chunk]).subarray(-TAIL_BYTES);
        yield chunk;
      }
    }.bind(this);
    this.feeding = pipe(input, watch, this.extract);
    // Failures surface through the iterator; keep this promise from going unhandled.
    this.feeding.catch(() => undefined);
  }

  /** The next entry with a safe header, or null at a clean end of the archive. */
  async next(): Promise<Entry | null> {
    let r: IteratorResult<Entry>;
    try {
      r = await this.iterator.next();
    } catch (e) {
      throw tarError(e);
    }
    if (r.done) return null;
    this.index += 1;
    checkHeader(r.value.header, this.index);
    return r.value;
  }

  async end(): Promise<void> {
    try {
      await this.feeding;
    } catch (e) {
      throw tarError(e);
    }
  }

  /**
   * What really went wrong when reading an entry's data failed. A tar-level
   * failure (the file ends inside the entry, say) reaches the entry stream
   * only as streamx's "Stream was destroyed"; the parser has the cause.
   */
  async explain(e: unknown): Promise<unknown> {
    // Wait for the parser's outcome only when it is going down, so this always settles.
    if (e instanceof AirlockError || !(this.extract as unknown as { destroying: boolean }).destroying) return explainPartsFailure(this.input, e);
    const cause = await this.feeding.then(
      () => undefined,
      (f: unknown) => f,
    );
    return explainPartsFailure(this.input, isTarStreamFailure(cause) ? tarError(cause) : cause instanceof AirlockError ? cause : e);
  }

  /**
   * After every listed entry was read: a parse failure here is about bytes
   * behind the archive's last entry, not about a damaged entry.
   */
  trailing(e: AirlockError): AirlockError {
    const partial = this.fed % BLOCK;
    const t = this.tail;
    const strayAfterEnd =
      e.reason === 'truncated' &&
      partial > 0 &&
      t.length >= partial + BLOCK &&
      t.subarray(t.length - partial - BLOCK, t.length - partial).every((b) => b === 0) &&
      t.subarray(t.length - partial).some((b) => b !== 0);
    if (e.reason === 'corrupt-tar' || strayAfterEnd) {
      return integrityError(
        strayAfterEnd ? `bundle has ${partial} stray bytes after its last entry` : 'bundle has bytes after its last entry that are not a tar entry',
        { reason: 'extra-entry', hint: 'something was appended to the bundle after signing; get a fresh copy' },
      );
    }
    return e;
  }

  close(): void {
    this.input.destroy();
    this.extract.destroy();
  }
}

const BLOCK = 512;
const TAIL_BYTES = 2 * BLOCK;

function isTarStreamFailure(e: unknown): e is Error {
  if (!(e instanceof Error)) return false;
  const msg = e.message;
  return msg === 'Unexpected end of data' || msg === 'Header exceeds max size' || msg === 'Invalid header' || msg.startsWith('Invalid tar header');
}

function tarError(e: unknown): AirlockError {
  if (e instanceof AirlockError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (msg === 'Unexpected end of data') {
    return integrityError('bundle is truncated: the file ends inside an entry', {
      reason: 'truncated',
      hint: 'the transfer was cut short; copy the bundle again',
    });
  }
  if (msg === 'Header exceeds max size') {
    return unsafeEntry('bundle has an oversized extended tar header', { reason: 'oversized-entry' });
  }
  if (msg.startsWith('Invalid tar header') || msg === 'Invalid header') {
    return integrityError('bundle is not a valid tar stream (corrupt header)', {
      reason: 'corrupt-tar',
      hint: 'the file is damaged, or it is not an airlock bundle',
    });
  }
  return integrityError(`cannot read bundle: ${msg}`, { reason: 'corrupt-tar', cause: e });
}

const ENTRY_TYPE_NAMES: Record<string, string> = {
  symlink: 'a symbolic link',
  link: 'a hard link',
  'character-device': 'a character device',
  'block-device': 'a block device',
  fifo: 'a FIFO',
  directory: 'a directory',
  'contiguous-file': 'a contiguous file',
};

function checkHeader(h: tar.Header, index: number): void {
  if (h.type !== 'file') {
    const what = (h.type && ENTRY_TYPE_NAMES[h.type]) ?? 'an entry of an unknown tar type';
    throw unsafeEntry(`entry ${index + 1} "${h.name}" is ${what}; bundles hold regular files only`, {
      reason: h.type === 'symlink' || h.type === 'link' ? 'link-entry' : h.type === 'directory' ? 'directory-entry' : 'device-entry',
      subject: h.name,
    });
  }
  const why = unsafePathReason(h.name);
  if (why) {
    throw unsafeEntry(`entry ${index + 1} "${h.name}" ${why}`, { reason: 'path-traversal', subject: h.name });
  }
}

async function readSmall(entry: Entry, max: number, name: string): Promise<Buffer> {
  if (entry.header.size > max) {
    throw unsafeEntry(`${name} is ${entry.header.size} bytes, over the ${max} byte limit`, { reason: 'oversized-entry', subject: name });
  }
  const chunks: Buffer[] = [];
  for await (const c of entry) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export interface BundleHead {
  manifestBytes: Buffer;
  signatureBytes: Buffer | null;
}

async function readHeadEntries(walker: EntryWalker, limits: Limits): Promise<BundleHead> {
  const first = await walker.next();
  if (!first) throw integrityError('bundle is empty: it holds no entries', { reason: 'missing-entry', subject: MANIFEST_ENTRY });
  if (first.header.name !== MANIFEST_ENTRY) {
    throw integrityError(`first entry is "${first.header.name}", expected ${MANIFEST_ENTRY}`, {
      reason: first.header.name === SIGNATURE_ENTRY ? 'out-of-order' : 'missing-entry',
      subject: MANIFEST_ENTRY,
      hint: 'this is not an airlock bundle, or its entries were reordered',
    });
  }
  const manifestBytes = await readSmall(first, limits.maxManifestBytes, MANIFEST_ENTRY);
  const second = await walker.next();
  if (!second || second.header.name !== SIGNATURE_ENTRY) {
    return { manifestBytes, signatureBytes: null };
  }
  return { manifestBytes, signatureBytes: await readSmall(second, limits.maxSignatureBytes, SIGNATURE_ENTRY) };
}

/** Checks the signature over the manifest bytes; returns the signer's key id. */
export function checkSignature(head: BundleHead, trust: TrustStore): SignatureRecord {
  if (head.signatureBytes === null) {
    throw signatureError(`bundle is unsigned: ${MANIFEST_ENTRY} is not followed by ${SIGNATURE_ENTRY}`, {
      reason: 'unsigned',
      hint: 'sign it on the vendor side: airlock bundle build --key KEY',
    });
  }
  const sig = parseSignature(head.signatureBytes);
  const { key } = trust.keyFor(sig.keyId);
  if (!verifyBytes(head.manifestBytes, Buffer.from(sig.signature, 'base64'), key)) {
    throw signatureError(`signature by key ${sig.keyId} does not match ${MANIFEST_ENTRY}`, {
      reason: 'bad-signature',
      subject: sig.keyId,
      hint: 'the manifest or its signature was changed after signing; get a fresh copy from the vendor',
    });
  }
  return sig;
}

export function checkExpiry(m: Manifest, now: Date): void {
  if (m.expires !== null && Date.parse(m.expires) <= now.getTime()) {
    throw policyError(`bundle ${m.name} ${m.version} expired at ${m.expires}`, {
      reason: 'expired',
      hint: 'ask the vendor for a current bundle; expired bundles are never applied',
    });
  }
}

export const sha256Hex = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * Verifies a bundle in one streaming pass: signature first, then policy,
 * then every blob against its hash, in manifest order. Verified content goes
 * to the sink as it streams; nothing is committed by the reader itself.
 */
export async function readBundle(input: Readable, opts: ReadOptions): Promise<VerifiedBundle> {
  const limits = withLimits(opts.limits);
  const walker = new EntryWalker(input);
  try {
    checkPartsSignature(input, opts.trust);
    const headEntries = await readHeadEntries(walker, limits);
    const sig = checkSignature(headEntries, opts.trust);
    const manifest = parseManifest(headEntries.manifestBytes);
    checkDeclaredSizes(manifest, limits);
    checkExpiry(manifest, opts.now ?? new Date());
    const head: VerifiedHead = {
      manifest,
      manifestDigest: `sha256:${sha256Hex(headEntries.manifestBytes)}`,
      keyId: sig.keyId,
      manifestBytes: headEntries.manifestBytes,
      signatureBytes: headEntries.signatureBytes as Buffer,
    };
    checkPartsHead(input, { name: manifest.name, version: manifest.version, manifestDigest: head.manifestDigest });
    await opts.beforePayload?.(head);

    // A delta lists blobs it does not carry: only the carried ones have entries, in list order.
    const carried = carriedBlobs(manifest);
    const position = new Map(carried.map((b, i) => [blobEntryName(b.digest), i]));
    const notCarried = new Set(manifest.blobs.filter((b) => b.carried === false).map((b) => blobEntryName(b.digest)));
    let payloadBytes = 0;
    for (const [i, blob] of carried.entries()) {
      const entry = await walker.next();
      if (!entry) {
        throw integrityError(`bundle ends before ${blobEntryName(blob.digest)}: ${carried.length - i} of ${carried.length} blobs are missing`, {
          reason: 'missing-entry',
          subject: blobEntryName(blob.digest),
          hint: 'the transfer was cut short; copy the bundle again',
        });
      }
      if (entry.header.name !== blobEntryName(blob.digest)) throw misplaced(entry.header.name, i, position, notCarried);
      payloadBytes += await copyBlob(entry, blob, opts.sink);
    }
    try {
      const extra = await walker.next();
      if (extra) throw misplaced(extra.header.name, carried.length, position, notCarried);
      await walker.end();
    } catch (e) {
      throw e instanceof AirlockError && e.kind === 'integrity' ? walker.trailing(e) : e;
    }
    return { ...head, payloadBytes };
  } catch (e) {
    throw await walker.explain(e);
  } finally {
    walker.close();
  }
}

/** Reads only the manifest and signature entries (for inspect). */
export async function readBundleHead(input: Readable, limits: Partial<Limits> = {}): Promise<BundleHead> {
  const walker = new EntryWalker(input);
  try {
    return await readHeadEntries(walker, withLimits(limits));
  } catch (e) {
    throw await walker.explain(e);
  } finally {
    walker.close();
  }
}

function misplaced(name: string, expectedIndex: number, position: Map<string, number>, notCarried: Set<string>): AirlockError {
  const at = position.get(name);
  if (notCarried.has(name)) {
    return integrityError(`entry "${name}" is a blob the manifest says this delta bundle does not carry`, {
      reason: 'extra-entry',
      subject: name,
      hint: 'a blob was added after signing',
    });
  }
  if (name === MANIFEST_ENTRY || name === SIGNATURE_ENTRY || (at !== undefined && at < expectedIndex)) {
    return integrityError(`entry "${name}" appears twice`, { reason: 'duplicate-entry', subject: name });
  }
  if (at !== undefined) {
    return integrityError(`entry "${name}" is out of order: the manifest lists it at position ${at + 1}, found at ${expectedIndex + 1}`, {
      reason: 'out-of-order',
      subject: name,
    });
  }
  return integrityError(`entry "${name}" is not listed in the manifest`, {
    reason: 'extra-entry',
    subject: name,
    hint: name.startsWith(BLOB_PREFIX) ? 'a blob was added after signing' : 'something was appended to the bundle after signing',
  });
}

/** Counts and hashes what passes through; refuses more than `max` bytes. */
function hashStep(hash: Hash, max: number, onOver: () => AirlockError) {
  const state = { bytes: 0 };
  const step = async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      state.bytes += chunk.length;
      if (state.bytes > max) throw onOver();
      hash.update(chunk);
      yield chunk;
    }
  };
  return { step, state };
}

/** pipeline() with stages of mixed kinds (streamx entries, generators, node streams). */
const pipe = pipeline as unknown as (...stages: unknown[]) => Promise<void>;

async function drain(source: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of source);
}

/** Streams one blob through its checks into the sink; returns the stored bytes read. */
async function copyBlob(entry: Entry, blob: CarriedBlob, sink: BlobSink | undefined): Promise<number> {
  const name = blobEntryName(blob.digest);
  const storedSize = blob.stored?.size ?? blob.size;
  if (entry.header.size !== storedSize) {
    throw integrityError(`${name} is ${entry.header.size} bytes, the manifest says ${storedSize}`, { reason: 'size-mismatch', subject: name });
  }
  const storedHash = createHash('sha256');
  const stored = hashStep(storedHash, storedSize, () => integrityError(`${name} is longer than declared`, { reason: 'size-mismatch', subject: name }));
  const decoder = blob.encoding === 'identity' ? undefined : createDecoder(blob.encoding);
  const target = (await sink?.open(blob)) ?? drain;
  try {
    if (!decoder) {
      await pipe(entry, stored.step, target);
    } else {
      const contentHash = createHash('sha256');
      const content = hashStep(contentHash, blob.size, () =>
        unsafeEntry(`${name} inflates beyond its declared ${blob.size} bytes`, { reason: 'decompression-bomb', subject: name }),
      );
      await pipe(entry, stored.step, decoder, content.step, target);
      checkDigest(name, 'decoded content', contentHash.digest('hex'), blob.digest, content.state.bytes, blob.size);
    }
  } catch (e) {
    if (e instanceof AirlockError) throw e;
    const code = (e as { code?: string }).code;
    // A compressed stream that ends before its stored bytes do: the decoder stops reading and the pipeline sees a premature close.
    const endedEarly = code === 'ERR_STREAM_PREMATURE_CLOSE' && decoder?.readableEnded === true;
    if (isDecodeError(e) || endedEarly) {
      const why = endedEarly ? `the ${blob.encoding} stream ends before the entry does` : (e as Error).message;
      throw integrityError(`${name} is corrupt: its ${blob.encoding} data does not decode (${why})`, {
        reason: 'hash-mismatch',
        subject: name,
      });
    }
    throw e;
  }
  checkDigest(name, 'content', storedHash.digest('hex'), blob.stored?.digest ?? blob.digest, stored.state.bytes, storedSize);
  return stored.state.bytes;
}

function checkDigest(name: string, what: string, actualHex: string, expected: string, actualBytes: number, expectedBytes: number): void {
  if (actualBytes !== expectedBytes) {
    throw integrityError(`${name}: ${what} is ${actualBytes} bytes, the manifest says ${expectedBytes}`, { reason: 'size-mismatch', subject: name });
  }
  if (`sha256:${actualHex}` !== expected) {
    throw integrityError(`${name}: ${what} hash is sha256:${actualHex}, the manifest says ${expected}`, {
      reason: 'hash-mismatch',
      subject: name,
      hint: 'the bundle was damaged or altered after signing; get a fresh copy',
    });
  }
}
