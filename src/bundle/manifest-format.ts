/**
 * The bundle manifest's vocabulary: format identifiers and requirements, the
 * entry names, the records of each section, and the small helpers every
 * reader and writer of those records shares. Parsing is manifest.ts; the
 * JSON Schemas are manifest-schema.ts.
 */
import type { KeyObject } from 'node:crypto';
import { keyIdOf, signBytes } from '../trust/keys.js';
import type { ImageRecord } from '../images/image-record.js';

export type { ImageRecord, LayerRecord } from '../images/image-record.js';

/**
 * Format identifiers. A full bundle is written as v1, which every airlock
 * reads; v2 is v1 plus what an older reader cannot use safely, each named
 * in the manifest's `requires` (`delta`; `receipt` for a delta built
 * against a site's receipt rather than one bundle; `zstd`; `platforms` for
 * images recorded per platform, several variants under one ref; `sealed` for
 * files sealed to site recipients, which an older reader would hand to Swarm as
 * ciphertext; `engine` for a Docker Engine to install on the host, which an older
 * reader would take for an empty bundle). A reader refuses a format or a requirement it does not know,
 * before it looks at anything else.
 */
export const FORMAT_V1 = 'airlock.bundle.v1';
export const FORMAT_V2 = 'airlock.bundle.v2';
/** The format of a full bundle. */
export const FORMAT = FORMAT_V1;
export const FORMATS = [FORMAT_V1, FORMAT_V2] as const;
export type Format = (typeof FORMATS)[number];

/** What a v2 manifest may require of its reader. */
export const REQUIREMENTS = ['delta', 'engine', 'platforms', 'receipt', 'sealed', 'zstd'] as const;
export type Requirement = (typeof REQUIREMENTS)[number];
export const MANIFEST_ENTRY = 'manifest.json';
export const SIGNATURE_ENTRY = 'manifest.sig';
export const BLOB_PREFIX = 'blobs/sha256/';

/** What a blob is for; one list for the type and the schema's enum. */
export const BLOB_KINDS = ['layer', 'image-config', 'image-manifest', 'stack-file', 'env-file', 'file', 'engine-file'] as const;
export type BlobKind = (typeof BLOB_KINDS)[number];
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
  /** An env file sealed to the manifest's `sealedTo` (its digest is of the sealed bytes); absent: plain. Never on a compose file. */
  sealed?: true;
}

export interface StackRecord {
  name: string;
  composeFiles: FileRef[];
  envFiles: FileRef[];
}

export interface ExtraFileRecord {
  path: string;
  digest: string;
  size: number;
  mode: number;
  /** Sealed to the manifest's `sealedTo`: digest and size are of the sealed bytes; absent: plain. */
  sealed?: true;
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
  /**
   * v2 with `requires: ["sealed"]` only: the site key ids (src/seal/site-keys.ts
   * siteKeyId) every sealed file is sealed to, sorted and unique; present
   * exactly when some file is sealed. age's stanzas do not name their
   * recipients, so this is how a host tells "sealed to another site".
   */
  sealedTo?: string[];
  /** v2 with `requires: ["engine"]` only: the Docker Engine this bundle installs (docs/engine-install.md). */
  engine?: EngineRecord;
}

/**
 * The two forms a site receives a Docker Engine in: Docker's static binary
 * archive (`docker/dockerd`, …) or a closed set of distribution packages
 * with their dependencies. `rpm` is named so that the format has room for it;
 * no airlock installs it yet.
 */
export const ENGINE_FORMS = ['static', 'deb', 'rpm'] as const;
export type EngineForm = (typeof ENGINE_FORMS)[number];

/** The files of Docker's static archive (`docker-X.Y.Z.tgz`), under `docker/`; nothing else is accepted. */
export const STATIC_ENGINE_FILES = ['containerd', 'containerd-shim-runc-v2', 'ctr', 'docker', 'docker-init', 'docker-proxy', 'dockerd', 'runc'] as const;
export type StaticEngineFile = (typeof STATIC_ENGINE_FILES)[number];

/**
 * What the engine's binaries need of the host's C library: nothing
 * (`static`, as Docker's own archive), or glibc or musl at least at a
 * version (the highest symbol version the binaries reference, e.g. `2.38`).
 * A package set leaves this to the package manager (`distribution`).
 */
export type EngineLibc = { kind: 'static' } | { kind: 'glibc'; minimum: string } | { kind: 'musl' } | { kind: 'distribution' };

/** A distribution package's own fields, read from it at build. */
export interface EnginePackage {
  name: string;
  version: string;
  /** The package's architecture as the distribution names it (`amd64`, `all`, `x86_64`, `noarch`). */
  architecture: string;
}

/** One file of an engine: a binary of the static form (path `dockerd`) or one package file (path `docker.io_26.1.5+dfsg1-9_amd64.deb`). */
export interface EngineFileRecord {
  path: string;
  /** Its blob (kind `engine-file`). */
  digest: string;
  size: number;
  mode: number;
  /** Package forms only. */
  package?: EnginePackage;
}

/** An engine version as `/version` reports it: `28.5.2+dfsg4`, `26.1.5`, `27.0.0-rc.1`. */
export const ENGINE_VERSION_PATTERN = '^[0-9][0-9A-Za-z.+~_-]{0,63}$';

/** A Docker Engine the bundle carries (v2, `requires: ["engine"]`). */
export interface EngineRecord {
  /** The version the engine reports (`/version` `.Version`, e.g. `28.5.2+dfsg4`); the host checks it after start. */
  version: string;
  form: EngineForm;
  /** Docker's names (GOOS/GOARCH): `linux`, `amd64` | `arm64` | `arm` | `386` | `ppc64le` | `s390x` | `riscv64`. */
  platform: { os: 'linux'; architecture: string };
  libc: EngineLibc;
  /** Sorted by path. */
  files: EngineFileRecord[];
}

/** True when the bundle carries sealed files (`requires` names `sealed`). */
export const isSealedBundle = (m: Pick<Manifest, 'sealedTo'>): boolean => m.sealedTo !== undefined;

/** A file the manifest marks sealed: where it is named, for messages and `inspect`, and its (sealed) blob. */
export interface SealedFile {
  /** `stack web env file web.env`, `file conf/db.password`. */
  label: string;
  path: string;
  digest: string;
}

/** Every env file and extra file the manifest marks sealed, in manifest order. */
export function sealedFiles(m: Pick<Manifest, 'stacks' | 'files'>): SealedFile[] {
  return [
    ...m.stacks.flatMap((s) => s.envFiles.filter((f) => f.sealed).map((f) => ({ label: `stack ${s.name} env file ${f.name}`, path: f.name, digest: f.digest }))),
    ...m.files.filter((f) => f.sealed).map((f) => ({ label: `file ${f.path}`, path: f.path, digest: f.digest })),
  ];
}

import type { SignatureRecord } from '../trust/verifier-key.js';
export type { SignatureRecord };

/** Signs `bytes` with `key`: the record manifest.sig, a parts index and a receipt all carry. */
export const signatureRecord = (bytes: Buffer, key: KeyObject): SignatureRecord => ({
  algorithm: 'ed25519',
  keyId: keyIdOf(key),
  signature: signBytes(bytes, key).toString('base64'),
});

export const blobEntryName = (d: string): string => BLOB_PREFIX + d.slice('sha256:'.length);

/** A time as manifests and receipts write it: UTC, whole seconds, `YYYY-MM-DDTHH:MM:SSZ`. */
export const isoSeconds = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** True when `ts` (already YYYY-MM-DDTHH:MM:SSZ) names a real instant, written as it would print. */
export function isRealTimestamp(ts: string): boolean {
  const t = Date.parse(ts);
  return Number.isFinite(t) && isoSeconds(new Date(t)) === ts;
}

/** A site name: a host name, or what the site chose with `bundle receipt --site`. */
export const SITE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$';
