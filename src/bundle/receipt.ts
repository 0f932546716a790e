import type { KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { Ajv } from 'ajv';
import semver from 'semver';
import { integrityError, notFound, signatureError } from '../errors/index.js';
import { keyIdOf, verifyBytes } from '../trust/keys.js';
import { canonicalBytes } from './canonical-json.js';
import { sha256Hex } from './reader.js';
import { bundleRefSchema, receiptRefSchema, signatureRecordSchema } from './manifest-schema.js';
import { isRealTimestamp, signatureRecord, type BundleBaseRef, type ReceiptRef, type SignatureRecord } from './manifest.js';

export type { ReceiptRef } from './manifest.js';

/**
 * A receipt: what a site holds (the bundles it imported, and the blobs its
 * content store really has), signed by the site's own key. The vendor gets
 * it back through whatever channel the site has, and builds deltas against
 * exactly that (`bundle build --since-receipt`). airlock never sends it.
 *
 * The file is JSON `{"receipt": BODY, "signature": SIG}`. SIG is the same
 * record as a bundle's manifest.sig, over the canonical bytes of BODY; the
 * SHA-256 of those bytes is the receipt's digest. The file is written in
 * canonical form, but any JSON spelling of it reads the same, so a channel
 * that re-indents it does no harm.
 */
export const RECEIPT_FORMAT_V1 = 'airlock.receipt.v1';
export const RECEIPT_FORMATS = [RECEIPT_FORMAT_V1] as const;

/** A receipt file is small (about 100 bytes a blob); anything larger is not one. */
export const MAX_RECEIPT_BYTES = 64 * 1024 * 1024;

/** A bundle the site imported and still holds (not pruned). */
export type ReceiptBundle = BundleBaseRef;

export interface Receipt {
  format: typeof RECEIPT_FORMAT_V1;
  /** Who holds these blobs: the host name, unless the site chose another. */
  site: string;
  created: string;
  /** Sorted by name, then version (semver), then manifest digest. */
  bundles: ReceiptBundle[];
  /** Sorted by digest, unique. */
  blobs: { digest: string; size: number }[];
}

export interface SignedReceipt {
  receipt: Receipt;
  signature: SignatureRecord;
  ref: ReceiptRef;
}

const { digest, created: timestamp } = receiptRefSchema.properties;

/** JSON Schema of a receipt's body; docs/bundle-format.md section 9 describes each field. */
export const receiptSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['format', 'site', 'created', 'bundles', 'blobs'],
  properties: {
    format: { const: RECEIPT_FORMAT_V1 },
    site: receiptRefSchema.properties.site,
    created: timestamp,
    bundles: { type: 'array', items: bundleRefSchema },
    blobs: {
      type: 'array',
      items: { type: 'object', additionalProperties: false, required: ['digest', 'size'], properties: { digest, size: { type: 'integer', minimum: 0 } } },
    },
  },
} as const;

const envelopeSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['receipt', 'signature'],
  properties: {
    receipt: { type: 'object' },
    signature: signatureRecordSchema,
  },
} as const;

const ajv = new Ajv({ allErrors: false, strict: true });
const validEnvelope = ajv.compile(envelopeSchema);
const validReceipt = ajv.compile(receiptSchema);

const sha256 = (b: Buffer): string => `sha256:${sha256Hex(b)}`;

/** The order receipts list bundles in: by name, then version, then digest. */
export function compareBundles(a: ReceiptBundle, b: ReceiptBundle): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  const byVersion = semver.valid(a.version) && semver.valid(b.version) ? semver.compare(a.version, b.version) : 0;
  if (byVersion !== 0) return byVersion;
  return a.manifestDigest < b.manifestDigest ? -1 : a.manifestDigest > b.manifestDigest ? 1 : 0;
}

/** Signs a receipt body; returns the file's bytes (canonical JSON and a newline) and its reference. */
export function signReceipt(receipt: Receipt, key: KeyObject): { bytes: Buffer; ref: ReceiptRef; keyId: string } {
  const body = canonicalBytes(receipt);
  const signature = signatureRecord(body, key);
  const bytes = Buffer.concat([canonicalBytes({ receipt, signature }), Buffer.from('\n')]);
  return { bytes, ref: { site: receipt.site, created: receipt.created, digest: sha256(body) }, keyId: signature.keyId };
}

const invalid = (path: string, what: string, hint?: string) =>
  integrityError(`receipt ${path} ${what}`, { reason: 'receipt-invalid', subject: path, ...(hint ? { hint } : {}) });

/**
 * Reads a receipt file and checks it against the site's public key, before
 * anything in it is used: envelope, format, signature (key id first, then
 * the Ed25519 check over the body's canonical bytes), then schema and order.
 */
export async function readReceipt(path: string, siteKey: KeyObject, keyPath: string): Promise<SignedReceipt> {
  const text = await readReceiptText(path);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw integrityError(`receipt ${path} is not JSON: ${(e as Error).message}`, {
      reason: 'receipt-malformed',
      subject: path,
      hint: "a receipt is the file 'airlock bundle receipt' writes; for an earlier bundle or its manifest, use --since",
    });
  }
  if (!validEnvelope(value)) {
    const looksLikeBundle = value !== null && typeof value === 'object' && 'format' in value && String((value as { format: unknown }).format).startsWith('airlock.bundle.');
    const err = validEnvelope.errors?.[0];
    throw integrityError(
      looksLikeBundle ? `${path} is a bundle manifest, not a receipt` : `receipt ${path} is not a signed receipt: ${err?.instancePath || '/'} ${err?.message ?? ''}`.trim(),
      {
        reason: 'receipt-malformed',
        subject: path,
        hint: looksLikeBundle ? 'give an earlier bundle or its manifest to --since, and a receipt to --since-receipt' : "a receipt is the file 'airlock bundle receipt' writes, sent on as it is",
      },
    );
  }
  const { receipt, signature } = value as { receipt: Record<string, unknown>; signature: SignatureRecord };
  checkReceiptFormat(receipt, path);
  let body: Buffer;
  try {
    body = canonicalBytes(receipt);
  } catch (e) {
    throw invalid(path, `holds a number that is not a safe integer: ${(e as Error).message}`);
  }
  checkReceiptSignature(body, signature, siteKey, keyPath, path, typeof receipt.site === 'string' ? receipt.site : undefined);
  if (!validReceipt(receipt)) {
    const err = validReceipt.errors?.[0];
    throw invalid(path, `does not match format ${RECEIPT_FORMAT_V1}: ${err?.instancePath || '/'} ${err?.message ?? ''}`.trim(), 'the site signed a receipt made by an incompatible or broken airlock');
  }
  const r = receipt as unknown as Receipt;
  checkReceiptOrder(r, path);
  return { receipt: r, signature, ref: { site: r.site, created: r.created, digest: sha256(body) } };
}

async function readReceiptText(path: string): Promise<string> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw notFound(`receipt ${path} is not a regular file`, { subject: path, reason: 'no-such-receipt' });
    if (s.size > MAX_RECEIPT_BYTES) {
      throw integrityError(`${path} is ${s.size} bytes, too large to be a receipt (at most ${MAX_RECEIPT_BYTES})`, { reason: 'receipt-malformed', subject: path });
    }
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw notFound(`receipt not found: ${path}`, { subject: path, reason: 'no-such-receipt', hint: "the site writes it with 'airlock bundle receipt'" });
    }
    throw e;
  }
}

/** A format this airlock does not know is named before anything else is read, as with manifests. */
function checkReceiptFormat(receipt: Record<string, unknown>, path: string): void {
  const format = receipt.format;
  if (typeof format === 'string' && !(RECEIPT_FORMATS as readonly string[]).includes(format)) {
    throw invalid(
      path,
      `is in format "${format.slice(0, 64)}", which this airlock does not read (it reads ${RECEIPT_FORMATS.join(', ')})`,
      'a newer airlock wrote it: upgrade airlock here, or have the site write the receipt with the airlock it shipped with',
    );
  }
}

function checkReceiptSignature(body: Buffer, sig: SignatureRecord, siteKey: KeyObject, keyPath: string, path: string, site: string | undefined): void {
  const expected = keyIdOf(siteKey);
  const of = site === undefined ? '' : ` (site ${site.slice(0, 64)})`;
  if (sig.keyId !== expected) {
    throw signatureError(`receipt ${path}${of} is signed by key ${sig.keyId}, not by the site key ${expected} in ${keyPath}`, {
      reason: 'unknown-key',
      subject: path,
      hint: "give --receipt-key the public key of the site that wrote the receipt (see 'airlock key id FILE')",
    });
  }
  if (!verifyBytes(body, Buffer.from(sig.signature, 'base64'), siteKey)) {
    throw signatureError(`receipt ${path}${of} does not match its signature: it was changed after the site signed it`, {
      reason: 'bad-signature',
      subject: path,
      hint: 'ask the site for the receipt again, sent on as it is',
    });
  }
}

/** One spelling per receipt: sorted, unique lists and real timestamps. */
function checkReceiptOrder(r: Receipt, path: string): void {
  if (!isRealTimestamp(r.created)) throw invalid(path, `has created "${r.created}", which is not a valid date`);
  for (const b of r.bundles) {
    if (!semver.valid(b.version)) throw invalid(path, `lists bundle ${b.name} with version "${b.version}", which is not a semantic version`);
  }
  for (let i = 1; i < r.bundles.length; i++) {
    if (compareBundles(r.bundles[i - 1]!, r.bundles[i]!) >= 0) throw invalid(path, `lists its bundles out of order or twice at ${r.bundles[i]!.name} ${r.bundles[i]!.version}`);
  }
  for (let i = 1; i < r.blobs.length; i++) {
    if (r.blobs[i - 1]!.digest >= r.blobs[i]!.digest) throw invalid(path, `lists its blobs out of order or twice at ${r.blobs[i]!.digest}`);
  }
}
