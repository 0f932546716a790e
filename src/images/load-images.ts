import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { AirlockError, integrityError } from '../errors/index.js';
import type { ImageRecord } from './image-record.js';
import type { ImageEngine } from '../docker/engine.js';
import type { ContentStore } from '../store/content-store.js';
import { countBytes } from '../streams/count-bytes.js';
import { findBundleImage, isBundleImage } from './identity.js';
import { loadArchiveStream } from './load-archive.js';

export interface LoadOptions {
  signal?: AbortSignal;
  /** Bytes of the load archive sent to the engine so far, of about `total`. */
  onBytes?: (sent: number, total: number) => void;
}

export interface LoadReport {
  /** Images sent to the engine in a load archive. */
  loaded: ImageRecord[];
  /** Images the engine had already, under every ref. */
  present: ImageRecord[];
  /** Images the engine had by id, which only needed a tag. */
  tagged: ImageRecord[];
}

const label = (img: ImageRecord): string => img.refs[0] ?? img.id;

/** `demo/web:1.0` → repo `demo/web`, tag `1.0` (a registry port is not a tag). */
export function splitRef(ref: string): { repo: string; tag: string } {
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: 'latest' };
}

/**
 * Makes the engine hold exactly the bundle's images: loads those it lacks
 * from the content store, tags those it has by id, and then checks every
 * ref's id and layer diff ids against the manifest.
 */
export async function loadImages(docker: Pick<ImageEngine, 'images'>, store: ContentStore, images: readonly ImageRecord[], opts: LoadOptions = {}): Promise<LoadReport> {
  const report: LoadReport = { loaded: [], present: [], tagged: [] };
  const call = opts.signal ? { signal: opts.signal } : {};
  /** The id the engine shows for each image it has under another name (store-dependent). */
  const engineId = new Map<ImageRecord, string>();
  for (const img of images) {
    const byRef = await Promise.all(img.refs.map((ref) => docker.images.find(ref, call)));
    if (img.refs.length > 0 && byRef.every((found) => found !== undefined && isBundleImage(found, img))) {
      report.present.push(img);
      continue;
    }
    const found = await findBundleImage(docker, img, call);
    if (found) {
      engineId.set(img, found.Id);
      report.tagged.push(img);
    } else {
      report.loaded.push(img);
    }
  }
  for (const img of report.loaded) await checkLayers(img, store);
  if (report.loaded.length > 0) {
    const blobs = new Map(report.loaded.flatMap((i) => [i.config, i.manifest, ...i.layers]).map((b) => [b.digest, b.size]));
    const total = [...blobs.values()].reduce((a, b) => a + b, 0);
    const onBytes = opts.onBytes && ((sent: number) => opts.onBytes!(Math.min(sent, total), total));
    await docker.images.loadAll(() => countBytes(loadArchiveStream(report.loaded, store), onBytes), call);
  }
  for (const img of report.tagged) {
    for (const ref of img.refs) {
      const { repo, tag } = splitRef(ref);
      await docker.images.tag(engineId.get(img)!, repo, tag, call);
    }
  }
  for (const img of [...report.loaded, ...report.tagged]) await checkInEngine(docker, img, call);
  return report;
}

/**
 * Before anything is loaded: the config's diff ids must be the manifest's,
 * and each layer must hash to its diff id once uncompressed.
 */
async function checkLayers(img: ImageRecord, store: ContentStore): Promise<void> {
  const config = JSON.parse(await readFile(store.pathOf(img.config.digest), 'utf8')) as { rootfs?: { diff_ids?: string[] } };
  const diffIds = config.rootfs?.diff_ids ?? [];
  const listed = img.layers.map((l) => l.diffId);
  if (JSON.stringify(diffIds) !== JSON.stringify(listed)) {
    throw integrityError(`image ${label(img)}: its config lists layers ${diffIds.join(', ')}, the manifest ${listed.join(', ')}`, {
      reason: 'layer-mismatch',
      subject: label(img),
    });
  }
  for (const [i, layer] of img.layers.entries()) {
    const gzipped = layer.mediaType.endsWith('+gzip');
    if (!gzipped && layer.digest === layer.diffId) continue;
    const actual = gzipped ? await uncompressedDigest(store.pathOf(layer.digest)) : layer.digest;
    if (actual !== layer.diffId) {
      throw integrityError(`image ${label(img)}: layer ${i + 1} (${layer.digest}) uncompresses to ${actual}, its config says ${layer.diffId}`, {
        reason: 'layer-mismatch',
        subject: label(img),
        hint: 'the vendor built an inconsistent image; nothing was loaded',
      });
    }
  }
}

async function uncompressedDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), createGunzip(), async (src: AsyncIterable<Buffer>) => {
    for await (const c of src) hash.update(c);
  });
  return `sha256:${hash.digest('hex')}`;
}

async function checkInEngine(docker: Pick<ImageEngine, 'images'>, img: ImageRecord, call: { signal?: AbortSignal }): Promise<void> {
  if (img.refs.length === 0) {
    if (!(await findBundleImage(docker, img, call))) throw new AirlockError('engine', `image ${img.id} is not in the engine after the load`, { reason: 'image-mismatch', subject: img.id });
    return;
  }
  for (const ref of img.refs) {
    const found = await docker.images.inspect(ref, call);
    if (!isBundleImage(found, img)) {
      const layers = found.RootFS.Layers ?? [];
      throw new AirlockError('engine', `image ${ref} in the engine is ${found.Id} with ${layers.length} layers; the bundle has ${img.id} (manifest ${img.manifest.digest}) with ${img.layers.length}`, {
        reason: 'image-mismatch',
        subject: ref,
        hint: 'another image took that name during the load; run the import again',
      });
    }
  }
}
