import { open, readFile, stat } from 'node:fs/promises';
import { configError, integrityError, notFound, signatureError, usageError } from '../errors/index.js';
import type { TrustStore } from '../trust/trust-store.js';
import { canonicalBytes } from './canonical-json.js';
import { MANIFEST_ENTRY, baseLabel, isReceiptBase, parseManifest, parseSignatures, type BaseRef, type Manifest } from './manifest.js';
import { readReceipt } from './receipt.js';
import { loadPublicKey } from '../trust/keys.js';
import { checkNotAFolder } from '../config/paths.js';
import { checkSignature, openBundleFile, readBundleHead, sha256Hex } from './reader.js';
import { DEFAULT_LIMITS } from './limits.js';
import { isPartsIndex } from './parts.js';

/** What a delta is built against: the base bundle's name (or the site's receipt) and every blob a host that took it holds. */
export interface DeltaBase {
  ref: BaseRef;
  /** Every blob the base manifest names, carried or (if it is a delta itself) relied on; or every blob the receipt lists. */
  blobs: Map<string, { size: number }>;
  /** Where it came from: a bundle file (its head), a manifest file, or a site's receipt. */
  source: 'bundle' | 'manifest' | 'receipt';
  /** Whether the base's signature was checked: against a trust store, or (always, for a receipt) the site's key. */
  signatureChecked: boolean;
}

/**
 * Reads the base of a delta from `path`: an old bundle (only its head, the
 * manifest and signature entries, is read) or a file holding its manifest
 * JSON, as `airlock bundle inspect OLD --manifest` prints it. Either must
 * parse as a manifest. With `trust`, the base bundle's signature must check
 * out against it; a manifest file carries no signature, so that needs the bundle.
 *
 * The base is the vendor's own earlier output, and trusting it is safe: it
 * only decides which blobs the new bundle leaves out. The new manifest still
 * names every blob by digest and size under the new signature, and a host
 * that lacks one refuses the delta.
 */
export async function loadDeltaBase(path: string, trust?: TrustStore): Promise<DeltaBase> {
  let first: Buffer;
  try {
    if (!(await stat(path)).isFile()) throw notFound(`--since ${path} is not a regular file`, { subject: path, reason: 'no-such-bundle' });
    const fd = await open(path, 'r');
    try {
      first = Buffer.alloc(1);
      await fd.read(first, 0, 1, 0);
    } finally {
      await fd.close();
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw notFound(`base bundle or manifest not found: ${path}`, { subject: path, reason: 'no-such-bundle', hint: '--since takes the earlier bundle, or its manifest from airlock bundle inspect OLD --manifest' });
    }
    throw e;
  }
  // A tar stream starts with an entry name; a manifest file with JSON. A split bundle's index is JSON, but stands for the bundle.
  const isJson = !isPartsIndex(path) && /^[\s{]$/.test(first.toString('latin1'));
  if (isJson) {
    if (trust) {
      throw usageError(`--trust checks a base bundle's signature, but ${path} is a manifest, which carries none`, {
        hint: 'give the earlier bundle itself to --since, or leave out --trust',
      });
    }
    const manifestBytes = await manifestFromFile(path);
    return baseOf(parseManifest(manifestBytes), manifestBytes, 'manifest', false);
  }
  const head = await readBundleHead(await openBundleFile(path));
  if (head.signatureBytes === null) {
    throw signatureError(`base bundle ${path} is unsigned: ${MANIFEST_ENTRY} is not followed by manifest.sig`, { reason: 'unsigned', subject: path });
  }
  if (trust) checkSignature(head, trust);
  else parseSignatures(head.signatureBytes);
  return baseOf(parseManifest(head.manifestBytes), head.manifestBytes, 'bundle', trust !== undefined);
}

/**
 * The exact signed manifest bytes from a file holding the manifest as JSON.
 * Canonical form is unique, so a pretty-printed copy (or `bundle inspect
 * --json` output, which holds it under `manifest`) gives back the same bytes.
 */
async function manifestFromFile(path: string): Promise<Buffer> {
  if ((await stat(path)).size > DEFAULT_LIMITS.maxManifestBytes * 4) {
    throw integrityError(`${path} is too large to be a bundle manifest`, { reason: 'oversized-entry', subject: path });
  }
  const text = await readFile(path, 'utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw integrityError(`${path} is neither a bundle nor a manifest JSON file: ${(e as Error).message}`, { reason: 'manifest-malformed', subject: path });
  }
  const wrapped = value !== null && typeof value === 'object' && 'manifest' in value && !('format' in value);
  const manifest = wrapped ? (value as { manifest: unknown }).manifest : value;
  let bytes: Buffer;
  try {
    bytes = canonicalBytes(manifest);
  } catch (e) {
    throw integrityError(`${path}: ${(e as Error).message}`, { reason: 'manifest-invalid', subject: path });
  }
  const claimed = wrapped ? (value as { manifestDigest?: unknown }).manifestDigest : undefined;
  if (typeof claimed === 'string' && claimed !== `sha256:${sha256Hex(bytes)}`) {
    throw integrityError(`${path}: the manifest it holds does not hash to the manifestDigest it gives (${claimed})`, { reason: 'hash-mismatch', subject: path });
  }
  return bytes;
}

function baseOf(m: Manifest, manifestBytes: Buffer, source: DeltaBase['source'], signatureChecked: boolean): DeltaBase {
  return {
    ref: { name: m.name, version: m.version, manifestDigest: `sha256:${sha256Hex(manifestBytes)}` },
    blobs: new Map(m.blobs.map((b) => [b.digest, { size: b.size }])),
    source,
    signatureChecked,
  };
}

/**
 * Reads a site's receipt as the base of a delta: the receipt must check out
 * against the site's public key (`keyPath`) before any of it is used. Unlike
 * a --since base, which is the vendor's own earlier output, a receipt comes
 * from outside through any channel, so its signature is always checked.
 */
export async function loadReceiptBase(path: string, keyPath: string): Promise<DeltaBase> {
  checkNotAFolder(keyPath, 'site key (--receipt-key)', "give the site's public key file (SITE.pub) itself");
  const siteKey = await loadPublicKey(keyPath);
  const { receipt, ref } = await readReceipt(path, siteKey, keyPath);
  return { ref: { receipt: ref }, blobs: new Map(receipt.blobs.map((b) => [b.digest, { size: b.size }])), source: 'receipt', signatureChecked: true };
}

/** The base and the new build disagree about a blob's size: one of them is not what it claims. */
export function baseSizeMismatch(digest: string, size: number, baseSize: number, base: BaseRef) {
  return configError(`blob ${digest} is ${size} bytes here, but the base ${baseLabel(base)} lists it with ${baseSize}`, {
    reason: 'bad-base',
    subject: digest,
    hint: isReceiptBase(base)
      ? 'the site holds a blob of that digest at another size, which a sound store never does; build a full bundle for that site'
      : 'the base manifest is damaged or was edited; use the earlier bundle itself, or its manifest from bundle inspect --manifest',
  });
}
