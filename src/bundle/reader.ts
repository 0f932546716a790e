import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { AirlockError, integrityError, notFound, policyError, signatureError } from '../errors/index.js';
import type { TrustStore } from '../trust/trust-store.js';
import { verifyBytes } from '../trust/keys.js';
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
  parseSignature,
  type Manifest,
  type SignatureRecord,
} from './manifest.js';
import { copyBlob, type BlobSink } from './blob-copy.js';
import { EntryWalker, readSmall } from './tar-entries.js';

export type { BlobSink } from './blob-copy.js';

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

