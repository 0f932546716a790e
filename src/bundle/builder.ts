import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { configError, notFound, usageError } from '../errors/index.js';
import { ImageArchive, type ArchiveImage } from '../images/archive.js';
import type { Docker } from '../docker/index.js';
import { familiarRef } from '../images/reference.js';
import { syncDir } from '../store/durable.js';
import { BlobCollector, type Compression } from './blob-collector.js';
import { baseSizeMismatch, loadDeltaBase, loadReceiptBase, type DeltaBase } from './base.js';
import { canonicalBytes } from './canonical-json.js';
import { expiryFrom, loadDefinition, type BundleDefinition } from './definition.js';
import type { TrustStore } from '../trust/trust-store.js';
import {
  FORMAT_V1,
  FORMAT_V2,
  MANIFEST_ENTRY,
  SIGNATURE_ENTRY,
  blobEntryName,
  carriedBlobs,
  isReceiptBase,
  isoSeconds,
  signatureRecord,
  type ImageRecord,
  type LayerRecord,
  type Manifest,
  type Requirement,
} from './manifest.js';
import { imagesReferencedByStacks } from './stack-images.js';

export interface BuildOptions {
  definitionFile: string;
  key: KeyObject;
  outDir: string;
  compression?: Compression;
  /** Build time; defaults to SOURCE_DATE_EPOCH, then the clock. */
  created?: Date;
  /** The local engine, for images that no image archive holds. */
  docker?: Docker;
  /**
   * Build a delta: leave out every blob this earlier bundle (or manifest
   * file) names. See loadDeltaBase.
   */
  since?: string;
  /** Check the `since` bundle's signature against this trust store. */
  sinceTrust?: TrustStore;
  /**
   * Build a delta against what a site holds: leave out every blob its
   * receipt lists. The receipt must check out against the site's public key.
   * Not together with `since`: a delta has one base.
   */
  sinceReceipt?: { path: string; keyPath: string };
}

export interface BuildResult {
  path: string;
  manifest: Manifest;
  keyId: string;
  bytes: number;
  /** For a delta: its base, and how the base was read. */
  base?: DeltaBase;
}

const LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';
const LAYER_TAR_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';

export function buildTime(env: NodeJS.ProcessEnv = process.env): Date {
  const epoch = env.SOURCE_DATE_EPOCH;
  if (epoch !== undefined) {
    if (!/^\d+$/.test(epoch)) throw configError(`SOURCE_DATE_EPOCH must be whole seconds since 1970, got "${epoch}"`);
    return new Date(Number(epoch) * 1000);
  }
  return new Date(Math.floor(Date.now() / 1000) * 1000);
}

/**
 * Builds a signed bundle: gathers and deduplicates blobs, writes the
 * canonical manifest, signs it, and writes the tar in deterministic order.
 */
export async function buildBundle(opts: BuildOptions): Promise<BuildResult> {
  const def = await loadDefinition(opts.definitionFile);
  const created = opts.created ?? buildTime();
  const expires = expiryFrom(def.expires, created);
  // Before the long part: a bad --since or receipt should fail fast.
  if (opts.since !== undefined && opts.sinceReceipt) {
    throw usageError('a delta has one base: give --since OLD or --since-receipt FILE, not both', {
      hint: 'to build against what a site holds now, ask the site for a fresh receipt and use it alone',
    });
  }
  const base =
    opts.since !== undefined ? await loadDeltaBase(opts.since, opts.sinceTrust) : opts.sinceReceipt ? await loadReceiptBase(opts.sinceReceipt.path, opts.sinceReceipt.keyPath) : undefined;
  await mkdir(opts.outDir, { recursive: true });
  const work = await BlobCollector.create(join(opts.outDir, `.airlock-build-${process.pid}-${Date.now()}`));
  try {
    const stacks = [];
    for (const s of def.stacks) {
      const composeFiles = [];
      for (const f of s.compose) composeFiles.push({ name: f.name, digest: (await work.add('stack-file', openSource(f.path))).digest });
      const envFiles = [];
      for (const f of s.envFiles) envFiles.push({ name: f.name, digest: (await work.add('env-file', openSource(f.path))).digest });
      stacks.push({ name: s.name, composeFiles, envFiles });
    }
    const images = await collectImages(def, work, opts.docker);
    const files = [];
    for (const f of def.files) {
      const { digest, size } = await work.add('file', openSource(f.src));
      files.push({ path: f.dest, digest, size, mode: f.mode });
    }
    if (base) {
      for (const b of work.records()) {
        const listed = base.blobs.get(b.digest);
        if (listed && listed.size !== b.size) throw baseSizeMismatch(b.digest, b.size, listed.size, base.ref);
      }
      work.leaveOut(new Set(base.blobs.keys()));
    }
    await work.encodeAll(opts.compression ?? 'auto');

    // A full bundle stays v1, which every airlock reads; only a delta or zstd blobs need v2.
    const requires: Requirement[] = [...(base ? (isReceiptBase(base.ref) ? ['delta', 'receipt'] as const : ['delta'] as const) : []), ...(work.usesZstd() ? ['zstd'] as const : [])].sort();
    const manifest: Manifest = {
      format: requires.length > 0 ? FORMAT_V2 : FORMAT_V1,
      ...(requires.length > 0 ? { requires } : {}),
      ...(base ? { base: base.ref } : {}),
      name: def.name,
      version: def.version,
      description: def.description,
      created: isoSeconds(created),
      expires: expires ? isoSeconds(expires) : null,
      blobs: work.records(),
      stacks,
      images,
      files,
    };
    const manifestBytes = canonicalBytes(manifest);
    const signature = signatureRecord(manifestBytes, opts.key);
    const path = join(opts.outDir, `${def.name}-${def.version}.airlock`);
    await writeBundle(path, manifestBytes, canonicalBytes(signature), work, manifest, created);
    return { path, manifest, keyId: signature.keyId, bytes: (await stat(path)).size, ...(base ? { base } : {}) };
  } finally {
    await work.dispose();
  }
}

function openSource(path: string) {
  const s = createReadStream(path, { highWaterMark: 1024 * 1024 });
  return s;
}

async function writeBundle(path: string, manifestBytes: Buffer, sigBytes: Buffer, work: BlobCollector, m: Manifest, mtime: Date): Promise<void> {
  const tmp = `${path}.partial`;
  const pack = tar.pack();
  const header = (name: string, size: number): Partial<tar.Header> & { name: string } => ({ name, size, mode: 0o644, mtime, uid: 0, gid: 0, uname: '', gname: '', type: 'file' });
  const writing = pipeline(pack as unknown as NodeJS.ReadableStream, createWriteStream(tmp, { flush: true }));
  const entry = (name: string, data: Buffer) =>
    new Promise<void>((res, rej) => pack.entry(header(name, data.length), data, (e) => (e ? rej(e) : res())));
  try {
    await entry(MANIFEST_ENTRY, manifestBytes);
    await entry(SIGNATURE_ENTRY, sigBytes);
    for (const blob of carriedBlobs(m)) {
      const size = blob.stored?.size ?? blob.size;
      const sink = pack.entry(header(blobEntryName(blob.digest), size));
      await pipeline(work.openStored(blob), sink as unknown as NodeJS.WritableStream);
    }
    pack.finalize();
    await writing;
  } catch (e) {
    pack.destroy();
    await rm(tmp, { force: true });
    throw e;
  }
  await rename(tmp, path);
  await syncDir(join(path, '..'));
}

interface FoundImage {
  archive: ImageArchive;
  image: ArchiveImage;
}

/** Opens each image archive once, and finds images in them by ref. */
class ArchiveIndex {
  private readonly opened = new Map<string, Promise<{ archive: ImageArchive; images: ArchiveImage[] }>>();

  private open(path: string) {
    let p = this.opened.get(path);
    if (!p) {
      p = ImageArchive.open(path).then(async (archive) => ({ archive, images: await archive.images() }));
      this.opened.set(path, p);
    }
    return p;
  }

  async find(ref: string, paths: readonly string[]): Promise<FoundImage | undefined> {
    for (const path of paths) {
      const { archive, images } = await this.open(path);
      const image = images.find((i) => i.refs.includes(ref));
      if (image) return { archive, image };
    }
    return undefined;
  }
}

/**
 * Finds every wanted image: first in the image archives, then in the local
 * Docker Engine, whose `docker save` export is written once into the build
 * folder (legacy layout up to Docker 24, OCI layout from 25).
 */
async function collectImages(def: BundleDefinition, work: BlobCollector, docker: Docker | undefined): Promise<ImageRecord[]> {
  const wanted = def.images ?? (await imagesReferencedByStacks(def)).map((ref) => ({ ref, archive: null }));
  if (wanted.length === 0) return [];
  const index = new ArchiveIndex();
  const found = new Map<string, FoundImage>();
  const fromEngine: string[] = [];
  for (const w of wanted) {
    const ref = familiarRef(w.ref);
    const hit = await index.find(ref, w.archive ? [w.archive] : def.imageArchives);
    if (hit) found.set(ref, hit);
    else if (w.archive || !docker) throw imageNotFound(w.ref, def, docker !== undefined);
    else fromEngine.push(ref);
  }
  if (fromEngine.length > 0) {
    const exported = await exportFromEngine(docker!, fromEngine, work.dir, def);
    for (const ref of fromEngine) {
      const hit = await index.find(ref, [exported]);
      if (!hit) throw imageNotFound(ref, def, true);
      found.set(ref, hit);
    }
  }
  const records = new Map<string, ImageRecord>();
  for (const [ref, { archive, image }] of found) {
    const record = await addImage(archive, image, work);
    const existing = records.get(record.id);
    if (existing) existing.refs = [...new Set([...existing.refs, ref])].sort();
    else records.set(record.id, { ...record, refs: [ref] });
  }
  return [...records.values()].sort((a, b) => (a.refs[0]! < b.refs[0]! ? -1 : 1));
}

function imageNotFound(ref: string, def: BundleDefinition, askedEngine: boolean) {
  return notFound(`image ${ref} is in none of the image archives${askedEngine ? ' nor in the local Docker Engine' : ''}`, {
    subject: def.file,
    reason: 'image-not-found',
    hint: `load or build it in the local engine, or add its 'docker save' tarball under image_archives: in ${def.file}`,
  });
}

async function exportFromEngine(docker: Docker, refs: string[], dir: string, def: BundleDefinition): Promise<string> {
  for (const ref of refs) {
    if (!(await docker.images.find(ref))) throw imageNotFound(ref, def, true);
  }
  const path = join(dir, 'engine-export.tar');
  await pipeline(await docker.images.export(refs), createWriteStream(path, { highWaterMark: 1024 * 1024 }));
  return path;
}

async function addImage(archive: ImageArchive, image: ArchiveImage, work: BlobCollector): Promise<ImageRecord> {
  const config = await work.add('image-config', image.configBytes);
  const layers: LayerRecord[] = [];
  for (const [i, l] of image.layers.entries()) {
    const { digest, size, head } = await work.add('layer', archive.streamOf(l.source));
    const gzipped = head[0] === 0x1f && head[1] === 0x8b;
    if (!gzipped && digest !== l.diffId) {
      throw configError(`${archive.path}: layer ${i + 1} of ${image.refs[0] ?? config.digest} (${l.source.path}) has digest ${digest}, its config says ${l.diffId}`, {
        subject: archive.path,
        reason: 'layer-mismatch',
        hint: 'the image archive is damaged; save the image again',
      });
    }
    layers.push({ digest, size, diffId: l.diffId, mediaType: l.mediaType ?? (gzipped ? LAYER_TAR_GZIP : LAYER_TAR) });
  }
  const manifestBytes = keptManifest(image, config.digest, layers) ?? canonicalBytes(ociManifest(config, layers));
  const manifest = await work.add('image-manifest', manifestBytes);
  return { refs: [], id: config.digest, config: { digest: config.digest, size: config.size }, manifest: { digest: manifest.digest, size: manifest.size }, layers };
}

function ociManifest(config: { digest: string; size: number }, layers: LayerRecord[]) {
  return {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
}

/** The archive's own OCI manifest, if it describes exactly these blobs. */
function keptManifest(image: ArchiveImage, configDigest: string, layers: LayerRecord[]): Buffer | null {
  if (!image.manifestBytes) return null;
  const m = JSON.parse(image.manifestBytes.toString('utf8')) as { config?: { digest?: string }; layers?: { digest?: string }[] };
  const same = m.config?.digest === configDigest && m.layers?.length === layers.length && m.layers.every((l, i) => l.digest === layers[i]!.digest);
  return same ? image.manifestBytes : null;
}
