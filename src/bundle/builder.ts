import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { makeDirs } from '../store/make-dirs.js';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { configError, usageError } from '../errors/index.js';
import type { Docker } from '../docker/index.js';
import type { Platform } from '../images/platform.js';
import { syncDir } from '../store/durable.js';
import { BlobCollector, type Compression } from './blob-collector.js';
import { baseSizeMismatch, loadDeltaBase, loadReceiptBase, type DeltaBase } from './base.js';
import { collectImages, collectVariants } from './build-images.js';
import { canonicalBytes } from './canonical-json.js';
import { expiryFrom, loadDefinition } from './definition.js';
import { collectEngine } from './engine-payload.js';
import { inClearWarning, planSealing, Sealer } from './sealing.js';
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
  sealedFiles,
  type ExtraFileRecord,
  type FileRef,
  type Manifest,
  type Requirement,
  type StackRecord,
} from './manifest.js';

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
  /**
   * Take every image for each of these platforms (`--platform`, normalised);
   * wins over the definition's `platforms:`. Without either, one image per
   * ref, as the archive or engine holds it.
   */
  platforms?: Platform[];
  /**
   * Site recipient files to seal to (`--seal-to`); given, they replace the
   * definition's `seal_to:`. docs/sealed-secrets.md.
   */
  sealTo?: string[];
  /** Told what the user should know but that does not stop the build (secrets carried in clear). */
  onWarning?: (message: string) => void;
}

export interface BuildResult {
  path: string;
  manifest: Manifest;
  keyId: string;
  bytes: number;
  /** For a delta: its base, and how the base was read. */
  base?: DeltaBase;
}

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
  const def = await loadDefinition(opts.definitionFile, opts.sealTo ? { sealTo: opts.sealTo } : {});
  const sealing = await planSealing(def);
  const created = opts.created ?? buildTime();
  const expires = expiryFrom(def, created);
  // Before the long part: a bad --since or receipt should fail fast.
  if (opts.since !== undefined && opts.sinceReceipt) {
    throw usageError('a delta has one base: give --since OLD or --since-receipt FILE, not both', {
      hint: 'to build against what a site holds now, ask the site for a fresh receipt and use it alone',
    });
  }
  const base =
    opts.since !== undefined ? await loadDeltaBase(opts.since, opts.sinceTrust) : opts.sinceReceipt ? await loadReceiptBase(opts.sinceReceipt.path, opts.sinceReceipt.keyPath) : undefined;
  const clear = inClearWarning(sealing);
  if (clear) opts.onWarning?.(clear);
  const sealer = sealing.recipients.length > 0 ? new Sealer(sealing.recipients) : undefined;
  makeDirs(opts.outDir, { what: 'output folder' });
  const work = await BlobCollector.create(join(opts.outDir, `.airlock-build-${process.pid}-${Date.now()}`));
  try {
    const stacks: StackRecord[] = [];
    for (const s of def.stacks) {
      const composeFiles = [];
      for (const f of s.compose) composeFiles.push({ name: f.name, digest: (await work.add('stack-file', openSource(f.path))).digest });
      const envFiles: FileRef[] = [];
      for (const f of s.envFiles) {
        if (sealer && sealing.sealsEnvFile(s.name, f.name)) {
          const { digest } = work.addInMemory('env-file', await sealer.seal(f.path, `stack ${s.name} env file ${f.name}`));
          envFiles.push({ name: f.name, digest, sealed: true as const });
        } else envFiles.push({ name: f.name, digest: (await work.add('env-file', openSource(f.path))).digest });
      }
      stacks.push({ name: s.name, composeFiles, envFiles });
    }
    const platforms = opts.platforms ?? def.platforms;
    const images = platforms ? await collectVariants(def, work, opts.docker, platforms) : await collectImages(def, work, opts.docker);
    const files: ExtraFileRecord[] = [];
    for (const f of def.files) {
      if (sealer && sealing.sealsFile(f.dest)) {
        const { digest, size } = work.addInMemory('file', await sealer.seal(f.src, `file ${f.dest}`));
        files.push({ path: f.dest, digest, size, mode: f.mode, sealed: true as const });
      } else {
        const { digest, size } = await work.add('file', openSource(f.src));
        files.push({ path: f.dest, digest, size, mode: f.mode });
      }
    }
    const engine = def.engine ? await collectEngine(def.engine, work) : undefined;
    sealer?.checkNoneInClear(work.records(), (d) => files.find((f) => f.digest === d && !f.sealed)?.path ?? stacks.flatMap((st) => [...st.composeFiles, ...st.envFiles]).find((f) => f.digest === d)?.name);
    // Recipients with nothing to seal leave the bundle as it was: plain, and readable by every airlock.
    const sealedTo = sealedFiles({ stacks, files }).length > 0 ? [...new Set(sealing.recipients.map((r) => r.keyId))].sort() : [];
    if (sealer && sealedTo.length === 0) opts.onWarning?.('nothing was sealed: the stacks have no secret file and no file is marked sensitive: true, so the bundle is plain');
    if (base) {
      for (const b of work.records()) {
        const listed = base.blobs.get(b.digest);
        if (listed && listed.size !== b.size) throw baseSizeMismatch(b.digest, b.size, listed.size, base.ref);
      }
      work.leaveOut(new Set(base.blobs.keys()));
    }
    await work.encodeAll(opts.compression ?? 'auto');

    // A full bundle stays v1, which every airlock reads; only a delta, zstd blobs, images per platform, sealed files or an engine need v2.
    const requires: Requirement[] = [
      ...(base ? (isReceiptBase(base.ref) ? (['delta', 'receipt'] as const) : (['delta'] as const)) : []),
      ...(work.usesZstd() ? (['zstd'] as const) : []),
      ...(engine ? (['engine'] as const) : []),
      ...(images.some((i) => i.platform !== undefined) ? (['platforms'] as const) : []),
      ...(sealedTo.length > 0 ? (['sealed'] as const) : []),
    ].sort();
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
      ...(sealedTo.length > 0 ? { sealedTo } : {}),
      ...(engine ? { engine } : {}),
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
