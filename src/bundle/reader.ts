import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { AirlockError, integrityError, notFound, policyError, signatureError } from '../errors/index.js';
import type { BundleIdentity, TrustStore } from '../trust/trust-store.js';
import type { SignedBy } from '../trust/signers.js';
import { checkDeclaredSizes, withLimits, type Limits } from './limits.js';
import { isPartsIndex, refuseLonePart } from './parts.js';
import { checkPartsHead, checkPartsSignature, openParts } from './parts-stream.js';
import {
  BLOB_PREFIX,
  MANIFEST_ENTRY,
  SIGNATURE_ENTRY,
  blobEntryName,
  carriedBlobs,
  parseManifest,
  parseSignatures,
  type Manifest,
} from './manifest.js';
import { copyBlob, type BlobSink } from './blob-copy.js';
import { EntryWalker, readSmall } from './tar-entries.js';

export type { BlobSink } from './blob-copy.js';

export interface ReadOptions {
  trust: TrustStore;
  limits?: Partial<Limits>;
  now?: Date;
  /** The operator's explicit downgrade: a release older than the trust metadata's timestamp names is taken (as `--allow-downgrade` takes one older than the journal's). */
  allowOlder?: boolean;
  /** Runs after the signature and policy checks pass, before any blob is read. */
  beforePayload?: (verified: VerifiedHead) => Promise<void> | void;
  sink?: BlobSink;
}

export interface VerifiedHead {
  manifest: Manifest;
  manifestDigest: string;
  /** The first signer that counts: the key id the journal records. */
  keyId: string;
  /** Every signer that counts, where a threshold of keys signed. */
  signers: string[];
  manifestBytes: Buffer;
  signatureBytes: Buffer;
}

export interface VerifiedBundle extends VerifiedHead {
  /** Bytes of blob entries read from the bundle. */
  payloadBytes: number;
}


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

/** What a bundle says it is, for choosing the role whose keys must sign it; the full checks come after the signatures. */
function identityOf(manifestBytes: Buffer): BundleIdentity {
  type Peek = Partial<Record<'name' | 'version' | 'engine', unknown>> | null;
  let v: Peek = null;
  try {
    v = JSON.parse(manifestBytes.toString('utf8')) as Peek;
  } catch {
    // parseManifest says why, below
  }
  if (v === null || typeof v !== 'object' || typeof v.name !== 'string' || typeof v.version !== 'string') {
    parseManifest(manifestBytes);
    throw integrityError(`${MANIFEST_ENTRY} names no bundle`, { reason: 'manifest-invalid', subject: MANIFEST_ENTRY });
  }
  return { name: v.name, version: v.version, ...(v.engine === undefined ? {} : { engine: v.engine }) };
}

/** Checks the signatures over the manifest bytes (a threshold of them, where the trust metadata asks for one); returns who signed. */
export function checkSignature(head: BundleHead, trust: TrustStore, now?: Date): SignedBy & { keyId: string } {
  if (head.signatureBytes === null) {
    throw signatureError(`bundle is unsigned: ${MANIFEST_ENTRY} is not followed by ${SIGNATURE_ENTRY}`, {
      reason: 'unsigned',
      hint: 'sign it on the vendor side: airlock bundle build --key KEY',
    });
  }
  const records = parseSignatures(head.signatureBytes);
  const signed = trust.checkBundle(head.manifestBytes, records, trust.mode === 'root' ? identityOf(head.manifestBytes) : { name: '', version: '' }, now);
  return { ...signed, keyId: signed.signers[0]! };
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
    const sig = checkSignature(headEntries, opts.trust, opts.now);
    const manifest = parseManifest(headEntries.manifestBytes);
    checkDeclaredSizes(manifest, limits);
    checkExpiry(manifest, opts.now ?? new Date());
    opts.trust.root?.checkFresh(manifest, opts.now ?? new Date(), opts.allowOlder ?? false);
    const head: VerifiedHead = {
      manifest,
      manifestDigest: `sha256:${sha256Hex(headEntries.manifestBytes)}`,
      keyId: sig.keyId,
      signers: sig.signers,
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

