import { Ajv } from 'ajv';
import semver from 'semver';
import { integrityError, signatureError, unsafeEntry } from '../errors/index.js';
import { canonicalJson } from './canonical-json.js';

/** Bumped only for changes an older reader cannot read safely. */
export const FORMAT = 'airlock.bundle.v1';
export const MANIFEST_ENTRY = 'manifest.json';
export const SIGNATURE_ENTRY = 'manifest.sig';
export const BLOB_PREFIX = 'blobs/sha256/';

export type BlobKind = 'layer' | 'image-config' | 'image-manifest' | 'stack-file' | 'env-file' | 'file';
export type BlobEncoding = 'identity' | 'gzip';

/** One blob carried by the bundle, named by the SHA-256 of its content. */
export interface BlobRecord {
  digest: string;
  size: number;
  kind: BlobKind;
  encoding: BlobEncoding;
  /** For encoded blobs: hash and size of the bytes as they stand in the bundle. */
  stored?: { digest: string; size: number };
}

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
}

export interface ExtraFileRecord {
  path: string;
  digest: string;
  size: number;
  mode: number;
}

export interface Manifest {
  format: typeof FORMAT;
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

/** JSON Schema of the manifest; docs/bundle-format.md describes each field. */
export const manifestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['format', 'name', 'version', 'description', 'created', 'expires', 'blobs', 'stacks', 'images', 'files'],
  properties: {
    format: { const: FORMAT },
    name: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' },
    version: { type: 'string', minLength: 5, maxLength: 64 },
    description: { type: 'string', maxLength: 4096 },
    created: timestamp,
    expires: { anyOf: [timestamp, { type: 'null' }] },
    blobs: {
      type: 'array',
      items: {
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
      },
    },
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

const validateSchema = new Ajv({ allErrors: false, strict: true }).compile(manifestSchema);

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
  if (!validateSchema(value)) {
    const err = validateSchema.errors?.[0];
    throw integrityError(`${MANIFEST_ENTRY} does not match format ${FORMAT}: ${err?.instancePath || '/'} ${err?.message ?? ''}`.trim(), {
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
  checkReferences(manifest);
  checkFilePaths(manifest);
  return manifest;
}

/** True when `ts` (already YYYY-MM-DDTHH:MM:SSZ) names a real instant, written as it would print. */
function isRealTimestamp(ts: string): boolean {
  const t = Date.parse(ts);
  return Number.isFinite(t) && new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z') === ts;
}

function checkBlobList(m: Manifest): void {
  for (let i = 1; i < m.blobs.length; i++) {
    const prev = m.blobs[i - 1]!.digest;
    const cur = m.blobs[i]!.digest;
    if (prev >= cur) {
      throw integrityError(`${MANIFEST_ENTRY}: blob list is not sorted and unique at ${cur}`, { reason: 'manifest-invalid' });
    }
  }
  for (const b of m.blobs) {
    if ((b.encoding === 'identity') !== (b.stored === undefined)) {
      throw integrityError(`${MANIFEST_ENTRY}: blob ${b.digest} must give "stored" exactly when it is encoded`, { reason: 'manifest-invalid' });
    }
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
