/**
 * Split parts: a bundle cut into `<stem>.airlock.part-NNNN` files, for FTP
 * channels with a per-file size limit, plus a small signed index
 * `<stem>.airlock.parts` that names each part's size and SHA-256.
 *
 * Parts may arrive in any order and over days. A reader takes the index in
 * place of the bundle (openBundleFile) and gets one stream of the parts in
 * order, each part checked against the index as it passes (parts-stream.ts).
 * The joined bundle is never written to disk. Refusals, for scripts and the agent:
 * - a part that is not there yet: integrity `missing-part`, and a part
 *   shorter than listed: integrity `truncated` (both "incomplete": try
 *   again when more has arrived, see PARTS_INCOMPLETE_REASONS);
 * - a part longer than listed (`size-mismatch`) or with another hash
 *   (`hash-mismatch`): damaged, named as the subject;
 * - an index that does not parse, is not canonical or breaks the rules:
 *   `bad-parts-index`; one whose signature does not check out: the
 *   signature class, as for a manifest.
 */
import type { KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Ajv } from 'ajv';
import { AirlockError, integrityError, notFound, signatureError, usageError } from '../errors/index.js';
import type { TrustStore } from '../trust/trust-store.js';
import { canonicalBytes, canonicalJson } from './canonical-json.js';
import { signatureRecordSchema } from './manifest-schema.js';
import { signatureRecord, type SignatureRecord } from './manifest.js';

export const PARTS_FORMAT = 'airlock.parts.v1';
export const PARTS_SUFFIX = '.airlock.parts';
const PART_INFIX = '.airlock.part-';
/** `<stem>.airlock.part-0001`: four digits, more once there are 10000 parts or more. */
const PART_NAME = /^(.+)\.airlock\.part-(\d{4,})$/;
/** An index for a 100 GiB bundle in 1 MiB parts is about 13 MiB. */
const MAX_INDEX_BYTES = 32 * 1024 * 1024;

/** Refusal reasons that mean "not all there yet": try again once more parts have arrived. */
export const PARTS_INCOMPLETE_REASONS: readonly string[] = ['missing-part', 'truncated'];

export interface PartRecord {
  /** File name of the part, beside the index: `<stem>.airlock.part-NNNN`. */
  name: string;
  size: number;
  /** Lowercase hex SHA-256 of the part's bytes. */
  sha256: string;
}

/** What the index says (the signed part). */
export interface PartsIndexBody {
  format: typeof PARTS_FORMAT;
  /** File name of the whole bundle the parts join into. */
  file: string;
  name: string;
  version: string;
  /** `sha256:<hex>` of the bundle's manifest.json entry bytes, as hosts journal it. */
  manifestDigest: string;
  /** Size and lowercase hex SHA-256 of the whole bundle. */
  size: number;
  sha256: string;
  parts: PartRecord[];
}

/** The index file: `{index, signature}`, canonical JSON; the signature is over canonical JSON of `index`. */
export interface PartsIndex {
  index: PartsIndexBody;
  signature: SignatureRecord;
  /** Set by readPartsIndex: whether the signature was checked against a trust store. */
  signatureChecked?: boolean;
}

export const isPartsIndex = (path: string): boolean => basename(path).endsWith(PARTS_SUFFIX) && basename(path).length > PARTS_SUFFIX.length;

/** `<stem>.airlock.part-0007` → its number and the index it belongs to (beside it). */
export function partNameOf(path: string): { number: number; stem: string; index: string } | null {
  const m = PART_NAME.exec(basename(path));
  if (!m) return null;
  const stem = m[1]!;
  return { number: Number(m[2]), stem, index: join(dirname(path), stem + PARTS_SUFFIX) };
}

/** The stem the parts and index of a bundle file take: its name without `.airlock`. */
export const stemOf = (bundlePath: string): string => basename(bundlePath).replace(/\.airlock$/, '');

export const partFileName = (stem: string, n: number): string => `${stem}${PART_INFIX}${String(n).padStart(4, '0')}`;
export const indexFileName = (stem: string): string => stem + PARTS_SUFFIX;

/** Signs an index body with the vendor key: the file's exact bytes. */
export function signedIndexBytes(body: PartsIndexBody, key: KeyObject): Buffer {
  return canonicalBytes({ index: body, signature: signatureRecord(canonicalBytes(body), key) });
}

const HEX64 = '^[0-9a-f]{64}$';
const ajv = new Ajv({ allErrors: false, strict: true });
const validateIndexFile = ajv.compile({
  type: 'object',
  additionalProperties: false,
  required: ['index', 'signature'],
  properties: {
    signature: signatureRecordSchema,
    index: {
      type: 'object',
      additionalProperties: false,
      required: ['format', 'file', 'name', 'version', 'manifestDigest', 'size', 'sha256', 'parts'],
      properties: {
        format: { const: PARTS_FORMAT },
        file: { type: 'string', minLength: 1, maxLength: 255 },
        name: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' },
        version: { type: 'string', minLength: 1, maxLength: 256 },
        manifestDigest: { type: 'string', pattern: '^sha256:[0-9a-f]{64}$' },
        size: { type: 'integer', minimum: 1 },
        sha256: { type: 'string', pattern: HEX64 },
        parts: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'size', 'sha256'],
            properties: {
              name: { type: 'string', maxLength: 255 },
              size: { type: 'integer', minimum: 1 },
              sha256: { type: 'string', pattern: HEX64 },
            },
          },
        },
      },
    },
  },
});

export const badIndex = (indexPath: string, why: string) =>
  integrityError(`parts index ${basename(indexPath)} ${why}`, {
    reason: 'bad-parts-index',
    subject: indexPath,
    hint: 'the index was damaged or edited; copy it again from the vendor',
  });

/**
 * Reads and checks an index: canonical JSON, the schema, part names that
 * number 1, 2, … under one stem and name no other folder, sizes that add up.
 * With `trust`, the signature must be by a trusted, unrevoked key.
 */
export async function readPartsIndex(indexPath: string, trust?: TrustStore): Promise<PartsIndex> {
  let bytes: Buffer;
  try {
    const s = await stat(indexPath);
    if (!s.isFile()) throw notFound(`${indexPath} is not a regular file`, { subject: indexPath, reason: 'no-such-bundle' });
    if (s.size > MAX_INDEX_BYTES) throw badIndex(indexPath, `is ${s.size} bytes, over the ${MAX_INDEX_BYTES} byte limit`);
    bytes = await readFile(indexPath);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw notFound(`parts index not found: ${indexPath}`, { subject: indexPath, reason: 'no-such-bundle' });
    }
    throw e;
  }
  const text = bytes.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // A cut upload of the index itself: incomplete, like a cut bundle.
    if (text.trim() === '' || endsTooSoon((e as Error).message, text)) {
      throw integrityError(`parts index ${basename(indexPath)} is truncated: it ends before its JSON does`, {
        reason: 'truncated',
        subject: indexPath,
        hint: 'the transfer was cut short; copy the index again',
      });
    }
    throw badIndex(indexPath, `is not valid JSON: ${(e as Error).message}`);
  }
  if (!validateIndexFile(value)) {
    const err = validateIndexFile.errors?.[0];
    throw badIndex(indexPath, `does not match ${PARTS_FORMAT}: ${err?.instancePath || '/'} ${err?.message ?? ''}`.trim());
  }
  let canonical: string;
  try {
    canonical = canonicalJson(value);
  } catch (e) {
    throw badIndex(indexPath, `holds a number that is not a safe integer: ${(e as Error).message}`);
  }
  if (canonical !== text) throw badIndex(indexPath, 'is not in canonical form');
  const parsed = value as unknown as PartsIndex;
  checkPartList(indexPath, parsed.index);
  if (trust) checkIndexSignature(indexPath, parsed, trust);
  return { ...parsed, signatureChecked: trust !== undefined };
}

/** Whether JSON.parse failed because the text stops, not because of a wrong byte inside it. */
function endsTooSoon(message: string, text: string): boolean {
  const at = /at position (\d+)/.exec(message);
  return /end of (JSON )?input/i.test(message) || (at !== null && Number(at[1]) >= text.length);
}

function checkPartList(indexPath: string, body: PartsIndexBody): void {
  const stem = partNameOf(body.parts[0]!.name)?.stem;
  for (const [i, p] of body.parts.entries()) {
    const named = partNameOf(p.name);
    // A bare file name: an index never points into another folder.
    if (p.name !== basename(p.name) || p.name.includes('\\') || !named || named.stem !== stem || named.number !== i + 1 || p.name !== partFileName(named.stem, named.number)) {
      throw badIndex(indexPath, `lists part ${i + 1} as "${p.name}"; expected ${stem ? partFileName(stem, i + 1) : '<stem>.airlock.part-0001'}`);
    }
  }
  const total = body.parts.reduce((n, p) => n + p.size, 0);
  if (total !== body.size) throw badIndex(indexPath, `gives a bundle size of ${body.size} bytes, but its parts add up to ${total}`);
}

/** Checks the index signature; the same key scheme and trust store as manifest.sig. */
export function checkIndexSignature(indexPath: string, parts: PartsIndex, trust: TrustStore): void {
  const sig = parts.signature;
  let key;
  try {
    key = trust.keyFor(sig.keyId).key;
  } catch (e) {
    if (e instanceof AirlockError) {
      throw signatureError(`parts index ${basename(indexPath)}: ${e.message.replace(/^bundle is /, '')}`, { reason: e.reason, subject: indexPath, ...(e.hint ? { hint: e.hint } : {}) });
    }
    throw e;
  }
  if (!key.verify(canonicalBytes(parts.index), sig)) {
    throw signatureError(`parts index ${basename(indexPath)}: signature by key ${sig.keyId} does not match the index`, {
      reason: 'bad-signature',
      subject: indexPath,
      hint: 'the index or its signature was changed after signing; copy it again from the vendor',
    });
  }
}

export interface PartsCheck {
  missing: string[];
  wrongSize: { name: string; size: number; expected: number }[];
}

/** Which listed parts are not beside the index yet, and which have another size. Names and sizes only: cheap. */
export async function checkParts(indexPath: string, index: PartsIndex): Promise<PartsCheck> {
  const dir = dirname(indexPath);
  const out: PartsCheck = { missing: [], wrongSize: [] };
  for (const p of index.index.parts) {
    try {
      const s = await stat(join(dir, p.name));
      if (!s.isFile()) out.missing.push(p.name);
      else if (s.size !== p.size) out.wrongSize.push({ name: p.name, size: s.size, expected: p.size });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      out.missing.push(p.name);
    }
  }
  return out;
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

/** The refusal for a check that found parts missing or of the wrong size; null when all are there. */
export function partsCheckError(indexPath: string, index: PartsIndex, check: PartsCheck): AirlockError | null {
  const parts = index.index.parts;
  const label = `${index.index.name} ${index.index.version} (${basename(indexPath)})`;
  if (check.missing.length > 0) {
    const missingBytes = parts.filter((p) => check.missing.includes(p.name)).reduce((n, p) => n + p.size, 0);
    return integrityError(
      `${label}: ${check.missing.length} of ${plural(parts.length, 'part')} missing (${missingBytes} bytes): ${check.missing.join(', ')}`,
      {
        reason: 'missing-part',
        subject: check.missing[0]!,
        hint: `parts may arrive in any order; nothing was read or applied. Put the missing parts beside ${basename(indexPath)} and try again`,
      },
    );
  }
  const short = check.wrongSize.filter((w) => w.size < w.expected);
  if (short.length > 0) {
    return integrityError(`${label}: ${short.map((w) => `part ${w.name} is ${w.size} of ${w.expected} bytes`).join(', ')}`, {
      reason: 'truncated',
      subject: short[0]!.name,
      hint: 'the part is still arriving, or its transfer was cut short; copy it again if it does not grow',
    });
  }
  const long = check.wrongSize[0];
  if (long) {
    return integrityError(`${label}: part ${long.name} is damaged: ${long.size} bytes, the index says ${long.expected}`, {
      reason: 'size-mismatch',
      subject: long.name,
      hint: 'copy that part again from the vendor',
    });
  }
  return null;
}

/** A part whose bytes do not hash to what the index says: names it, for the reader and for a check before upload. */
export function damagedPart(p: PartRecord, actualHex: string): AirlockError {
  return integrityError(`part ${p.name} is damaged: its SHA-256 is ${actualHex}, the index says ${p.sha256}`, {
    reason: 'hash-mismatch',
    subject: p.name,
    hint: 'copy that part again from the vendor; the other parts are fine as far as they were read',
  });
}

/** A part given where its index belongs: say which file to give instead. */
export function refuseLonePart(path: string): void {
  const named = partNameOf(path);
  if (named) {
    throw usageError(`${path} is part ${named.number} of a split bundle; give its index ${named.index} instead`, {
      subject: path,
      hint: 'the index reads all parts in order and checks each one',
    });
  }
}
