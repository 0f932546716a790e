/**
 * JSON Schemas of the manifest (v1 and v2) and of a signature record
 * (docs/bundle-format.md), with the manifest validators compiled once.
 */
import { Ajv } from 'ajv';
import { PLATFORM_PATTERN } from '../images/platform.js';
import { BLOB_KINDS, ENGINE_FORMS, ENGINE_VERSION_PATTERN, FORMAT_V1, FORMAT_V2, REQUIREMENTS, SITE_PATTERN, STATIC_ENGINE_FILES } from './manifest-format.js';

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
const kind = { enum: [...BLOB_KINDS] } as const;
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
  properties: { digest, size, kind, encoding: { enum: ['identity', 'gzip'] }, stored: sized },
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
  properties: { digest, size, kind, carried: { const: false } },
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
const stackV1 = manifestSchema.properties.stacks.items;
const fileV1 = manifestSchema.properties.files.items;
/** v2, with `sealed`: an env file or extra file may be sealed (`sealed: true`; absent means plain). Compose files never are. */
const sealedFlag = { const: true } as const;
const stackV2 = {
  ...stackV1,
  properties: {
    ...stackV1.properties,
    envFiles: { type: 'array', items: { ...fileRef, properties: { ...fileRef.properties, sealed: sealedFlag } } },
  },
} as const;
const fileV2 = { ...fileV1, properties: { ...fileV1.properties, sealed: sealedFlag } } as const;
/** v2 images may say which platform they are for. */
const imageV2 = {
  ...imageV1,
  properties: { ...imageV1.properties, platform: { type: 'string', maxLength: 64, pattern: PLATFORM_PATTERN } },
} as const;

const mode = { type: 'integer', minimum: 0, maximum: 0o777 } as const;
/** A binary of the static form: one of Docker's eight names, nothing else. */
const staticEngineFile = {
  type: 'object',
  additionalProperties: false,
  required: ['path', 'digest', 'size', 'mode'],
  properties: { path: { enum: [...STATIC_ENGINE_FILES] }, digest, size, mode },
} as const;
/** A package file, named as the distribution names it (no folder), with the package's own fields. */
const packageEngineFile = {
  type: 'object',
  additionalProperties: false,
  required: ['path', 'digest', 'size', 'mode', 'package'],
  properties: {
    path: { type: 'string', maxLength: 255, pattern: '^[A-Za-z0-9][A-Za-z0-9.+~_%:-]*\\.(deb|rpm)$' },
    digest,
    size,
    mode,
    package: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'version', 'architecture'],
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 255 },
        version: { type: 'string', minLength: 1, maxLength: 255 },
        architecture: { type: 'string', pattern: '^[a-z0-9_]{1,32}$' },
      },
    },
  },
} as const;
const libcKind = (kind: string) => ({ type: 'object', additionalProperties: false, required: ['kind'], properties: { kind: { const: kind } } }) as const;
/** v2 with `engine`: the Docker Engine the bundle carries; manifest-checks.ts checks the rest (unique paths, blobs, libc by form). */
const engineRecord = {
  type: 'object',
  additionalProperties: false,
  required: ['version', 'form', 'platform', 'libc', 'files'],
  properties: {
    version: { type: 'string', pattern: ENGINE_VERSION_PATTERN },
    form: { enum: [...ENGINE_FORMS] },
    platform: {
      type: 'object',
      additionalProperties: false,
      required: ['os', 'architecture'],
      properties: { os: { const: 'linux' }, architecture: { type: 'string', pattern: '^[a-z0-9_]{1,32}$' } },
    },
    libc: {
      oneOf: [
        libcKind('static'),
        libcKind('musl'),
        libcKind('distribution'),
        {
          type: 'object',
          additionalProperties: false,
          required: ['kind', 'minimum'],
          properties: { kind: { const: 'glibc' }, minimum: { type: 'string', pattern: '^\\d{1,4}\\.\\d{1,4}(\\.\\d{1,4})?$' } },
        },
      ],
    },
    files: { type: 'array', minItems: 1, maxItems: 4096, items: { type: 'object' } },
  },
  allOf: [
    {
      if: { type: 'object', properties: { form: { const: 'static' } } },
      then: { type: 'object', properties: { files: { type: 'array', minItems: STATIC_ENGINE_FILES.length, maxItems: STATIC_ENGINE_FILES.length, items: staticEngineFile } } },
      else: { type: 'object', properties: { files: { type: 'array', items: packageEngineFile } } },
    },
  ],
} as const;

/** JSON Schema of a v2 manifest: v1 plus `requires`, `base`, blobs that are not carried, image platforms, sealed files (`sealedTo`) and an engine. */
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
    stacks: { type: 'array', items: stackV2 },
    files: { type: 'array', items: fileV2 },
    sealedTo: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[0-9a-f]{16}$' } },
    engine: engineRecord,
  },
} as const;

const ajv = new Ajv({ allErrors: false, strict: true });
/** The schema check of each format. */
export const manifestValidators = { [FORMAT_V1]: ajv.compile(manifestSchema), [FORMAT_V2]: ajv.compile(manifestSchemaV2) };
