import { Ajv } from 'ajv';
import semver from 'semver';
import { integrityError, signatureError, unsafeEntry } from '../errors/index.js';
import type { KeyObject } from 'node:crypto';
import { keyIdOf, signBytes } from '../trust/keys.js';
import { PLATFORM_PATTERN, isCanonicalPlatform } from '../images/platform.js';
import { canonicalJson } from './canonical-json.js';

/**
 * Format identifiers. A full bundle is written as v1, which every airlock
 * reads; v2 is v1 plus what an older reader cannot use safely, each named
 * in the manifest's `requires` (`delta`; `receipt` for a delta built
 * against a site's receipt rather than one bundle; `zstd`; `platforms` for
 * images recorded per platform, several variants under one ref). A reader refuses a
 * format or a requirement it does not know, before it looks at anything else.
 */
export const FORMAT_V1 = 'airlock.bundle.v1';
export const FORMAT_V2 = 'airlock.bundle.v2';
/** The format of a full bundle. */
export const FORMAT = FORMAT_V1;
export const FORMATS = [FORMAT_V1, FORMAT_V2] as const;
export type Format = (typeof FORMATS)[number];

/** What a v2 manifest may require of its reader. */
export const REQUIREMENTS = ['delta', 'platforms', 'receipt', 'zstd'] as const;
export type Requirement = (typeof REQUIREMENTS)[number];
export const MANIFEST_ENTRY = 'manifest.json';
export const SIGNATURE_ENTRY = 'manifest.sig';
export const BLOB_PREFIX = 'blobs/sha256/';

export type BlobKind = 'layer' | 'image-config' | 'image-manifest' | 'stack-file' | 'env-file' | 'file';
/** `zstd` is v2 only, with `requires: ["zstd"]`: a v1 reader cannot decode it. */
export type BlobEncoding = 'identity' | 'gzip' | 'zstd';

/**
 * One blob the bundle needs, named by the SHA-256 of its content. Most are
 * carried in the bundle; a delta bundle also lists blobs it relies on but
 * does not carry (`carried: false`), which the host must already hold.
 */
export interface BlobRecord {
  digest: string;
  size: number;
  kind: BlobKind;
  /** How a carried blob is stored in the bundle; absent exactly when it is not carried. */
  encoding?: BlobEncoding;
  /** For encoded blobs: hash and size of the bytes as they stand in the bundle. */
  stored?: { digest: string; size: number };
  /** `false` on a blob a delta bundle relies on but does not carry; absent otherwise. */
  carried?: false;
}

/** A blob with a tar entry in the bundle. */
export type CarriedBlob = BlobRecord & { encoding: BlobEncoding; carried?: undefined };

export const isCarried = (b: BlobRecord): b is CarriedBlob => b.carried !== false;

/** The blobs that have an entry in the bundle, in bundle order. */
export const carriedBlobs = (m: Pick<Manifest, 'blobs'>): CarriedBlob[] => m.blobs.filter(isCarried);

/** The blobs a delta relies on without carrying them. */
export const baseBlobs = (m: Pick<Manifest, 'blobs'>): BlobRecord[] => m.blobs.filter((b) => !isCarried(b));

/** The bundle a delta was built against. */
export interface BundleBaseRef {
  name: string;
  version: string;
  /** sha256 of the base bundle's `manifest.json` bytes: what its hosts journal as its manifest digest. */
  manifestDigest: string;
}

/** The site receipt a delta was built against (src/bundle/receipt.ts). */
export interface ReceiptRef {
  site: string;
  created: string;
  /** sha256 of the receipt's canonical body: the bytes the site signed. */
  digest: string;
}

/** What a delta was built against: one earlier bundle, or what a site said it held (`requires` has `receipt`). */
export type BaseRef = BundleBaseRef | { receipt: ReceiptRef };

export const isReceiptBase = (b: BaseRef): b is { receipt: ReceiptRef } => 'receipt' in b;

/** How messages name a delta's base: `demo 1.0.0`, or `receipt of site1 (2026-…Z)`. */
export const baseLabel = (b: BaseRef): string => (isReceiptBase(b) ? `receipt of ${b.receipt.site} (${b.receipt.created})` : `${b.name} ${b.version}`);

export interface FileRef {
  name: string;
  digest: string;
}

export interface StackRecord {
  name: string;
  composeFiles: FileRef[];
  envFiles: FileRef[];
}

export interface LayerRecord {
  digest: string;
  size: number;
  mediaType: string;
  diffId: string;
}

export interface ImageRecord {
  /** Repository tags, e.g. `demo/web:1.0`. */
  refs: string[];
  /** The image id Docker reports: the digest of the config blob. */
  id: string;
  config: { digest: string; size: number };
  /** An OCI image manifest blob, so a load archive carries an `index.json`. */
  manifest: { digest: string; size: number };
  layers: LayerRecord[];
  /**
   * v2 with `requires: ["platforms"]` only, and on every image there: the
   * platform this variant runs on, normalised (`linux/amd64`, `linux/arm/v7`).
   * A ref may then name one image per platform.
   */
  platform?: string;
}

export interface ExtraFileRecord {
  path: string;
  digest: string;
  size: number;
  mode: number;
}

export interface Manifest {
  format: Format;
  /** v2 only: what the reader must understand, sorted and unique. */
  requires?: Requirement[];
  /** v2 with `requires: ["delta"]`: the bundle (or, with `receipt`, the site receipt) this one is a delta of. */
  base?: BaseRef;
  name: string;
  version: string;
  description: string;
  created: string;
  expires: string | null;
  blobs: BlobRecord[];
  stacks: StackRecord[];
  images: ImageRecord[];
  files: ExtraFileRecord[];
}

export interface SignatureRecord {
  algorithm: 'ed25519';
  keyId: string;
  signature: string;
}

/** Signs `bytes` with `key`: the record manifest.sig, a parts index and a receipt all carry. */
export const signatureRecord = (bytes: Buffer, key: KeyObject): SignatureRecord => ({
  algorithm: 'ed25519',
  keyId: keyIdOf(key),
  signature: signBytes(bytes, key).toString('base64'),
});

/** JSON Schema of a signature record (section 4 of docs/bundle-format.md), for files that embed one. */
export const signatureRecordSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['algorithm', 'keyId', 'signature'],
  properties: {
    algorithm: { const: 'ed25519' },
    keyId: { type: 'string', pattern: '^[0-9a-f]{16}$' },
    signature: { type: 'string', pattern: '^[A-Za-z0-9+/]{86}==$' },
  },
} as const;

const digest = { type: 'string', pattern: '^sha256:[0-9a-f]{64}$' } as const;
const size = { type: 'integer', minimum: 0 } as const;
const sized = {
  type: 'object',
  additionalProperties: false,
  required: ['digest', 'size'],
  properties: { digest, size },
} as const;
const fileRef = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'digest'],
  properties: { name: { type: 'string', minLength: 1 }, digest },
} as const;
const timestamp = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$' } as const;
const name = { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' } as const;
const version = { type: 'string', minLength: 5, maxLength: 64 } as const;
/** A site name: a host name, or what the site chose with `bundle receipt --site`. */
export const SITE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$';
/** A bundle by name, version and manifest digest: a delta's base, or a bundle a receipt lists. */
export const bundleRefSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'version', 'manifestDigest'],
  properties: { name, version, manifestDigest: digest },
} as const;
/** How a receipt-based delta names its receipt. */
export const receiptRefSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['site', 'created', 'digest'],
  properties: { site: { type: 'string', pattern: SITE_PATTERN }, created: timestamp, digest },
} as const;

const carriedBlob = {
  type: 'object',
  additionalProperties: false,
  required: ['digest', 'size', 'kind', 'encoding'],
  properties: {
    digest,
    size,
    kind: { enum: ['layer', 'image-config', 'image-manifest', 'stack-file', 'env-file', 'file'] },
    encoding: { enum: ['identity', 'gzip'] },
    stored: sized,
  },
} as const;
/** v2 adds zstd, which the manifest must then require. */
const carriedBlobV2 = {
  ...carriedBlob,
  properties: { ...carriedBlob.properties, encoding: { enum: ['identity', 'gzip', 'zstd'] } },
} as const;
const notCarriedBlob = {
  type: 'object',
  additionalProperties: false,
  required: ['digest', 'size', 'kind', 'carried'],
  properties: {
    digest,
    size,
    kind: { enum: ['layer', 'image-config', 'image-manifest', 'stack-file', 'env-file', 'file'] },
    carried: { const: false },
  },
} as const;

/** JSON Schema of a v1 manifest; docs/bundle-format.md describes each field. */
export const manifestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['format', 'name', 'version', 'description', 'created', 'expires', 'blobs', 'stacks', 'images', 'files'],
  properties: {
    format: { const: FORMAT_V1 },
    name,
    version,
    description: { type: 'string', maxLength: 4096 },
    created: timestamp,
    expires: { anyOf: [timestamp, { type: 'null' }] },
    blobs: { type: 'array', items: carriedBlob },
    stacks: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'composeFiles', 'envFiles'],
        properties: {
          name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' },
          composeFiles: { type: 'array', minItems: 1, items: fileRef },
          envFiles: { type: 'array', items: fileRef },
        },
      },
    },
    images: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['refs', 'id', 'config', 'manifest', 'layers'],
        properties: {
          refs: { type: 'array', items: { type: 'string', minLength: 1 } },
          id: digest,
          config: sized,
          manifest: sized,
          layers: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['digest', 'size', 'mediaType', 'diffId'],
              properties: { digest, size, mediaType: { type: 'string' }, diffId: digest },
            },
          },
        },
      },
    },
    files: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['path', 'digest', 'size', 'mode'],
        properties: { path: { type: 'string', minLength: 1 }, digest, size, mode: { type: 'integer', minimum: 0, maximum: 0o777 } },
      },
    },
  },
} as const;

const imageV1 = manifestSchema.properties.images.items;
/** v2 images may say which platform they are for. */
const imageV2 = {
  ...imageV1,
  properties: { ...imageV1.properties, platform: { type: 'string', maxLength: 64, pattern: PLATFORM_PATTERN } },
} as const;

/** JSON Schema of a v2 manifest: v1 plus `requires`, `base`, blobs that are not carried and image platforms. */
export const manifestSchemaV2 = {
  ...manifestSchema,
  required: [...manifestSchema.required, 'requires'],
  properties: {
    ...manifestSchema.properties,
    format: { const: FORMAT_V2 },
    requires: { type: 'array', items: { enum: [...REQUIREMENTS] } },
    base: {
      oneOf: [
        bundleRefSchema,
        { type: 'object', additionalProperties: false, required: ['receipt'], properties: { receipt: receiptRefSchema } },
      ],
    },
    blobs: { type: 'array', items: { oneOf: [carriedBlobV2, notCarriedBlob] } },
    images: { type: 'array', items: imageV2 },
  },
} as const;

const ajv = new Ajv({ allErrors: false, strict: true });
const validators = { [FORMAT_V1]: ajv.compile(manifestSchema), [FORMAT_V2]: ajv.compile(manifestSchemaV2) };

export const blobEntryName = (d: string): string => BLOB_PREFIX + d.slice('sha256:'.length);

/**
 * Parses signed manifest bytes and checks everything a reader relies on
 * before it touches a payload: canonical form, schema, blob order and the
 * references between sections.
 */
export function parseManifest(bytes: Buffer): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw integrityError(`${MANIFEST_ENTRY} is not valid JSON: ${(e as Error).message}`, { reason: 'manifest-malformed', subject: MANIFEST_ENTRY });
  }
  const format = checkFormat(value);
  const validateSchema = validators[format];
  if (!validateSchema(value)) {
    const err = validateSchema.errors?.[0];
    throw integrityError(`${MANIFEST_ENTRY} does not match format ${format}: ${err?.instancePath || '/'} ${err?.message ?? ''}`.trim(), {
      reason: 'manifest-invalid',
      subject: MANIFEST_ENTRY,
      hint: 'the bundle was made by an incompatible or broken builder',
    });
  }
  let canonical: string;
  try {
    canonical = canonicalJson(value);
  } catch (e) {
    // a number JSON allows but canonical form does not, e.g. a size of 1e300
    throw integrityError(`${MANIFEST_ENTRY} holds a number that is not a safe integer: ${(e as Error).message}`, { reason: 'manifest-invalid', subject: MANIFEST_ENTRY });
  }
  if (canonical !== bytes.toString('utf8')) {
    throw integrityError(`${MANIFEST_ENTRY} is not in canonical form`, { reason: 'manifest-not-canonical', subject: MANIFEST_ENTRY });
  }
  const manifest = value as unknown as Manifest;
  if (!semver.valid(manifest.version)) {
    throw integrityError(`${MANIFEST_ENTRY}: version "${manifest.version}" is not a semantic version`, { reason: 'manifest-invalid' });
  }
  for (const [field, ts] of [['created', manifest.created], ['expires', manifest.expires]] as const) {
    // The pattern admits 2024-13-45T25:61:61Z; an expiry that does not parse would never expire.
    if (ts !== null && !isRealTimestamp(ts)) {
      throw integrityError(`${MANIFEST_ENTRY}: ${field} "${ts}" is not a valid date`, { reason: 'manifest-invalid', subject: MANIFEST_ENTRY });
    }
  }
  checkBlobList(manifest);
  checkDelta(manifest);
  checkImageVariants(manifest);
  checkReferences(manifest);
  checkFilePaths(manifest);
  return manifest;
}

/**
 * The format the manifest claims, if this reader knows it and every
 * requirement it names; a manifest without a string format is checked
 * against v1, whose schema then says what is wrong.
 */
function checkFormat(value: unknown): Format {
  const v = (value !== null && typeof value === 'object' ? value : {}) as { format?: unknown; requires?: unknown };
  if (typeof v.format !== 'string') return FORMAT_V1;
  if (!(FORMATS as readonly string[]).includes(v.format)) {
    throw integrityError(`${MANIFEST_ENTRY} is in format "${v.format}", which this airlock does not read (it reads ${FORMATS.join(' and ')})`, {
      reason: 'manifest-invalid',
      subject: MANIFEST_ENTRY,
      hint: 'a newer airlock made this bundle: upgrade airlock here, or ask the vendor for a bundle in a format this one reads',
    });
  }
  if (v.format === FORMAT_V2 && Array.isArray(v.requires)) {
    // Names only: anything else is left to the schema, which says what is wrong with it.
    const unknown = v.requires.filter((r): r is string => typeof r === 'string' && r.length <= 64 && !(REQUIREMENTS as readonly string[]).includes(r));
    if (unknown.length > 0) {
      throw integrityError(`${MANIFEST_ENTRY} requires ${unknown.map((r) => JSON.stringify(r)).join(', ')}, which this airlock does not support (it supports ${REQUIREMENTS.join(', ')})`, {
        reason: 'manifest-invalid',
        subject: MANIFEST_ENTRY,
        hint: 'a newer airlock made this bundle: upgrade airlock here, or ask the vendor for a bundle without that feature',
      });
    }
  }
  return v.format as Format;
}

/**
 * A delta names its base and may leave blobs out; nothing else may. Each
 * requirement is listed once, in order, so the manifest has one spelling.
 */
function checkDelta(m: Manifest): void {
  const requires = m.requires ?? [];
  for (let i = 1; i < requires.length; i++) {
    if (requires[i - 1]! >= requires[i]!) throw integrityError(`${MANIFEST_ENTRY}: requires is not sorted and unique at "${requires[i]}"`, { reason: 'manifest-invalid' });
  }
  const delta = requires.includes('delta');
  if (delta !== (m.base !== undefined)) {
    throw integrityError(`${MANIFEST_ENTRY}: ${delta ? 'requires delta but names no base' : 'names a base but does not require delta'}`, { reason: 'manifest-invalid' });
  }
  // A receipt base is a new shape of base: only a reader that knows `receipt` may take it.
  const receipt = requires.includes('receipt');
  if (m.base && receipt !== isReceiptBase(m.base)) {
    throw integrityError(`${MANIFEST_ENTRY}: ${receipt ? 'requires receipt but its base is a bundle' : 'its base is a receipt, but it does not require receipt'}`, { reason: 'manifest-invalid' });
  }
  if (receipt && !delta) throw integrityError(`${MANIFEST_ENTRY}: requires receipt but not delta`, { reason: 'manifest-invalid' });
  if (m.base && !isReceiptBase(m.base) && !semver.valid(m.base.version)) {
    throw integrityError(`${MANIFEST_ENTRY}: base version "${m.base.version}" is not a semantic version`, { reason: 'manifest-invalid' });
  }
  if (m.base && isReceiptBase(m.base) && !isRealTimestamp(m.base.receipt.created)) {
    throw integrityError(`${MANIFEST_ENTRY}: base receipt created "${m.base.receipt.created}" is not a valid date`, { reason: 'manifest-invalid' });
  }
  const left = m.blobs.find((b) => !isCarried(b));
  if (left && !delta) {
    throw integrityError(`${MANIFEST_ENTRY}: blob ${left.digest} is not carried, but the bundle is not a delta`, { reason: 'manifest-invalid' });
  }
}

/**
 * One image per ref, or, with `platforms`, one per ref and platform: the
 * host loads the variant for its own platform, so two that a host could
 * not tell apart are refused. Every image then names its platform, in the
 * one spelling (src/images/platform.ts); without `platforms`, none does.
 */
function checkImageVariants(m: Manifest): void {
  const platforms = (m.requires ?? []).includes('platforms');
  if (platforms && m.images.length === 0) throw integrityError(`${MANIFEST_ENTRY}: requires platforms but has no images`, { reason: 'manifest-invalid', subject: MANIFEST_ENTRY });
  const seen = new Set<string>();
  const ids = new Set<string>();
  for (const img of m.images) {
    const label = `image ${img.refs[0] ?? img.id}`;
    if (platforms !== (img.platform !== undefined)) {
      throw integrityError(`${MANIFEST_ENTRY}: ${platforms ? `requires platforms, but ${label} names no platform` : `${label} names a platform, but the manifest does not require platforms`}`, {
        reason: 'manifest-invalid',
        subject: MANIFEST_ENTRY,
      });
    }
    if (img.platform !== undefined && !isCanonicalPlatform(img.platform)) {
      throw integrityError(`${MANIFEST_ENTRY}: ${label} has platform "${img.platform}", which is not a platform in its one spelling (os/architecture[/variant], e.g. linux/amd64, linux/arm/v7)`, {
        reason: 'manifest-invalid',
        subject: MANIFEST_ENTRY,
      });
    }
    if (ids.has(img.id)) throw integrityError(`${MANIFEST_ENTRY}: image ${img.id} is listed twice`, { reason: 'manifest-invalid', subject: MANIFEST_ENTRY });
    ids.add(img.id);
    for (const ref of img.refs) {
      const key = `${ref} ${img.platform ?? ''}`;
      if (seen.has(key)) {
        throw integrityError(
          platforms
            ? `${MANIFEST_ENTRY}: image ref ${ref} is listed twice for platform ${img.platform}`
            : `${MANIFEST_ENTRY}: image ref ${ref} is listed twice; only a manifest that requires platforms may carry several variants of one ref, one per platform`,
          { reason: 'manifest-invalid', subject: MANIFEST_ENTRY },
        );
      }
      seen.add(key);
    }
  }
}

/** A time as manifests and receipts write it: UTC, whole seconds, `YYYY-MM-DDTHH:MM:SSZ`. */
export const isoSeconds = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** True when `ts` (already YYYY-MM-DDTHH:MM:SSZ) names a real instant, written as it would print. */
export function isRealTimestamp(ts: string): boolean {
  const t = Date.parse(ts);
  return Number.isFinite(t) && isoSeconds(new Date(t)) === ts;
}

function checkBlobList(m: Manifest): void {
  for (let i = 1; i < m.blobs.length; i++) {
    const prev = m.blobs[i - 1]!.digest;
    const cur = m.blobs[i]!.digest;
    if (prev >= cur) {
      throw integrityError(`${MANIFEST_ENTRY}: blob list is not sorted and unique at ${cur}`, { reason: 'manifest-invalid' });
    }
  }
  for (const b of carriedBlobs(m)) {
    if ((b.encoding === 'identity') !== (b.stored === undefined)) {
      throw integrityError(`${MANIFEST_ENTRY}: blob ${b.digest} must give "stored" exactly when it is encoded`, { reason: 'manifest-invalid' });
    }
  }
  // One spelling: `requires` names zstd exactly when a carried blob is zstd-encoded.
  const zstd = carriedBlobs(m).some((b) => b.encoding === 'zstd');
  if (zstd !== (m.requires ?? []).includes('zstd')) {
    throw integrityError(`${MANIFEST_ENTRY}: ${zstd ? 'has zstd-encoded blobs but does not require zstd' : 'requires zstd but has no zstd-encoded blob'}`, { reason: 'manifest-invalid' });
  }
}

/** Every digest the sections name must be a listed blob of the right size. */
function checkReferences(m: Manifest): void {
  const listed = new Map(m.blobs.map((b) => [b.digest, b]));
  const need = (d: string, where: string, bytes?: number) => {
    const blob = listed.get(d);
    if (!blob) throw integrityError(`${MANIFEST_ENTRY}: ${where} names blob ${d}, which the bundle does not list`, { reason: 'manifest-invalid' });
    if (bytes !== undefined && blob.size !== bytes) {
      throw integrityError(`${MANIFEST_ENTRY}: ${where} gives size ${bytes} for ${d}, the blob list ${blob.size}`, { reason: 'manifest-invalid' });
    }
  };
  for (const s of m.stacks) {
    for (const f of [...s.composeFiles, ...s.envFiles]) need(f.digest, `stack ${s.name} file ${f.name}`);
  }
  for (const img of m.images) {
    const label = `image ${img.refs[0] ?? img.id}`;
    if (img.id !== img.config.digest) throw integrityError(`${MANIFEST_ENTRY}: ${label} id differs from its config digest`, { reason: 'manifest-invalid' });
    need(img.config.digest, label, img.config.size);
    need(img.manifest.digest, label, img.manifest.size);
    for (const l of img.layers) {
      need(l.digest, label, l.size);
      // An uncompressed layer is its own diff: the two hashes must agree before Docker sees it.
      if (l.mediaType.endsWith('.tar') && l.digest !== l.diffId) {
        throw integrityError(`${MANIFEST_ENTRY}: ${label} layer ${l.digest} is an uncompressed tar, but its diff id is ${l.diffId}`, {
          reason: 'layer-mismatch',
          subject: label,
        });
      }
    }
  }
  for (const f of m.files) need(f.digest, `file ${f.path}`, f.size);
}

/**
 * Extra files are placed on the host by path, and stack files are resolved
 * by name (env_file paths are relative to them): every such path must stay
 * inside its folder.
 */
function checkFilePaths(m: Manifest): void {
  const paths = [...m.files.map((f) => ['file', f.path]), ...m.stacks.flatMap((s) => [...s.composeFiles, ...s.envFiles].map((f) => [`stack ${s.name} file`, f.name]))];
  for (const [what, path] of paths as [string, string][]) {
    const reason = unsafePathReason(path);
    if (reason) {
      throw unsafeEntry(`${MANIFEST_ENTRY}: ${what} path "${path}" ${reason}`, { reason: 'path-traversal', subject: path });
    }
  }
}

/** Why a relative path would escape its folder, or null when it is safe. */
export function unsafePathReason(path: string): string | null {
  if (path.startsWith('/')) return 'is absolute';
  if (path.includes('\\') || path.includes('\0')) return 'has a backslash or NUL byte';
  if (path.split('/').some((seg) => seg === '..')) return 'climbs out of its folder with ".."';
  if (path.split('/').some((seg) => seg === '' || seg === '.')) return 'has an empty or "." segment';
  return null;
}

export function parseSignature(bytes: Buffer): SignatureRecord {
  let v: Partial<SignatureRecord> | null = null;
  try {
    v = JSON.parse(bytes.toString('utf8')) as Partial<SignatureRecord>;
  } catch {
    // reported below with the other malformed cases
  }
  const ok =
    v !== null &&
    typeof v === 'object' &&
    v.algorithm === 'ed25519' &&
    typeof v.keyId === 'string' &&
    /^[0-9a-f]{16}$/.test(v.keyId) &&
    typeof v.signature === 'string' &&
    /^[A-Za-z0-9+/]{86}==$/.test(v.signature);
  if (!ok) {
    throw signatureError(`${SIGNATURE_ENTRY} is malformed: expected {algorithm: "ed25519", keyId, signature}`, {
      reason: 'malformed-signature',
      subject: SIGNATURE_ENTRY,
    });
  }
  return v as SignatureRecord;
}
