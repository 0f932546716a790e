/**
 * The images a build takes: from the image archives the definition names,
 * else from the local Docker Engine. Without platforms, one image per ref,
 * as the archive or engine holds it; with platforms, one variant per ref
 * and platform (docs/bundle-format.md, section 11).
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { configError, notFound } from '../errors/index.js';
import { ImageArchive, type AbsentVariant, type ArchiveImage, type ArchiveVariant } from '../images/archive.js';
import { compareApiVersions, DockerError, type Docker } from '../docker/index.js';
import { formatPlatform, type Platform } from '../images/platform.js';
import { familiarRef } from '../images/reference.js';
import type { BlobCollector } from './blob-collector.js';
import { canonicalBytes } from './canonical-json.js';
import type { BundleDefinition } from './definition.js';
import type { ImageRecord, LayerRecord } from './manifest.js';
import { imagesReferencedByStacks } from './stack-images.js';

const LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';
const LAYER_TAR_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
/** The first API whose `GET /images/get` takes `platform` (Docker 28.0). */
const PLATFORM_EXPORT_API = '1.48';

interface FoundImage {
  archive: ImageArchive;
  image: ArchiveImage;
}

/** What one archive has of one ref: the variants it holds, and those its index names without holding them. */
interface HeldVariants {
  archive: ImageArchive;
  images: ArchiveVariant[];
  absent: AbsentVariant[];
}

/** Opens each image archive once, and finds images in them by ref. */
class ArchiveIndex {
  private readonly opened = new Map<string, Promise<ImageArchive>>();
  private readonly listed = new Map<ImageArchive, Promise<ArchiveImage[]>>();
  private readonly varied = new Map<ImageArchive, Promise<{ images: ArchiveVariant[]; absent: AbsentVariant[] }>>();

  private open(path: string): Promise<ImageArchive> {
    let p = this.opened.get(path);
    if (!p) this.opened.set(path, (p = ImageArchive.open(path)));
    return p;
  }

  private imagesOf(archive: ImageArchive): Promise<ArchiveImage[]> {
    let p = this.listed.get(archive);
    if (!p) this.listed.set(archive, (p = archive.images()));
    return p;
  }

  private variantsOf(archive: ImageArchive) {
    let p = this.varied.get(archive);
    if (!p) this.varied.set(archive, (p = archive.variants()));
    return p;
  }

  async find(ref: string, paths: readonly string[]): Promise<FoundImage | undefined> {
    for (const path of paths) {
      const archive = await this.open(path);
      const image = (await this.imagesOf(archive)).find((i) => i.refs.includes(ref));
      if (image) return { archive, image };
    }
    return undefined;
  }

  /** Every archive that has `ref` (held or only named), in the order given. */
  async held(ref: string, paths: readonly string[]): Promise<HeldVariants[]> {
    const out: HeldVariants[] = [];
    for (const path of paths) {
      const archive = await this.open(path);
      const { images, absent } = await this.variantsOf(archive);
      const mine = { archive, images: images.filter((i) => i.refs.includes(ref)), absent: absent.filter((a) => a.refs.includes(ref)) };
      if (mine.images.length > 0 || mine.absent.length > 0) out.push(mine);
    }
    return out;
  }
}

/** The refs the definition asks for, each with the one archive it names, if any. */
async function wantedImages(def: BundleDefinition): Promise<{ ref: string; archive: string | null }[]> {
  return def.images ?? (await imagesReferencedByStacks(def)).map((ref) => ({ ref, archive: null }));
}

/**
 * Finds every wanted image: first in the image archives, then in the local
 * Docker Engine, whose `docker save` export is written once into the build
 * folder (legacy layout up to Docker 24, OCI layout from 25).
 */
export async function collectImages(def: BundleDefinition, work: BlobCollector, docker: Docker | undefined): Promise<ImageRecord[]> {
  const wanted = await wantedImages(def);
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
    const exported = await exportFromEngine(docker!, fromEngine, join(work.dir, 'engine-export.tar'), def);
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

/** One variant to take: an image of `ref` for `platform`, and where it is. */
interface Chosen {
  ref: string;
  platform: Platform;
  archive: ImageArchive;
  image: ArchiveVariant;
}

/**
 * Finds every wanted image for every platform. For each ref and platform,
 * the first archive that holds that variant gives it; a ref no archive
 * has comes wholly from the engine. A platform that is named but not held,
 * or not there at all, is refused, naming the image, the platform and where
 * it was looked for.
 */
export async function collectVariants(def: BundleDefinition, work: BlobCollector, docker: Docker | undefined, platforms: readonly Platform[]): Promise<ImageRecord[]> {
  const wanted = await wantedImages(def);
  const index = new ArchiveIndex();
  const chosen: Chosen[] = [];
  const fromEngine: string[] = [];
  for (const w of wanted) {
    const ref = familiarRef(w.ref);
    const held = await index.held(ref, w.archive ? [w.archive] : def.imageArchives);
    if (held.length === 0) {
      if (w.archive || !docker) throw imageNotFound(w.ref, def, docker !== undefined);
      fromEngine.push(ref);
      continue;
    }
    for (const platform of platforms) chosen.push(chooseVariant(ref, platform, held, def));
  }
  if (fromEngine.length > 0) chosen.push(...(await variantsFromEngine(docker!, fromEngine, platforms, work.dir, def, index)));

  const records = new Map<string, ImageRecord>();
  for (const c of chosen) {
    const record = await addImage(c.archive, c.image, work);
    const platform = formatPlatform(c.platform);
    const existing = records.get(record.id);
    if (existing && existing.platform !== platform) {
      throw configError(`image ${c.ref}: the same image ${record.id} was found for ${existing.platform} and ${platform}`, { subject: c.archive.path, reason: 'platform-mismatch' });
    }
    if (existing) existing.refs = [...new Set([...existing.refs, c.ref])].sort();
    else records.set(record.id, { ...record, refs: [c.ref], platform });
  }
  return [...records.values()].sort((a, b) => (a.refs[0]! < b.refs[0]! ? -1 : a.refs[0]! > b.refs[0]! ? 1 : a.platform! < b.platform! ? -1 : 1));
}

/** The variant of `ref` for `platform` from the first archive that holds it; refused by name when none does. */
function chooseVariant(ref: string, platform: Platform, held: readonly HeldVariants[], def: BundleDefinition): Chosen {
  const name = formatPlatform(platform);
  for (const h of held) {
    const image = h.images.find((i) => i.platform !== null && formatPlatform(i.platform) === name);
    if (image) return { ref, platform, archive: h.archive, image };
  }
  const named = held.find((h) => h.absent.some((a) => a.platform !== null && formatPlatform(a.platform) === name));
  if (named) {
    throw notFound(`image ${ref}: ${named.archive.path} names platform ${name} but does not hold it (its blobs are not in the archive)`, {
      subject: named.archive.path,
      reason: 'platform-not-found',
      hint: `a 'docker save' holds only the platforms the engine had pulled: pull ${ref} for ${name} (docker pull --platform ${name} ${ref}) and save it again, or build without ${name}`,
    });
  }
  const has = held.map((h) => `${h.archive.path} has ${describePlatforms(h)}`).join('; ');
  throw notFound(`image ${ref} has no ${name} variant: ${has}`, {
    subject: held[0]!.archive.path,
    reason: 'platform-not-found',
    hint: `add an archive that holds ${ref} for ${name} under image_archives: in ${def.file}, or build without ${name}`,
  });
}

const describePlatforms = (h: HeldVariants): string => {
  const held = h.images.map((i) => (i.platform ? formatPlatform(i.platform) : 'an image of unknown platform'));
  const absent = h.absent.map((a) => `${a.platform ? formatPlatform(a.platform) : 'an image'} (named, not held)`);
  return [...held, ...absent].join(', ');
};

/**
 * Every platform of `refs` from the local engine. From API 1.48 on, one
 * export per platform (`platform` query): the engine leaves out what it
 * lacks, or refuses it. An older engine exports each image as it holds it
 * (one platform, on the classic store), so the others are refused by name.
 */
async function variantsFromEngine(docker: Docker, refs: string[], platforms: readonly Platform[], dir: string, def: BundleDefinition, index: ArchiveIndex): Promise<Chosen[]> {
  const api = await docker.client.apiVersion();
  const chosen: Chosen[] = [];
  if (compareApiVersions(api, PLATFORM_EXPORT_API) < 0) {
    const exported = await exportFromEngine(docker, refs, join(dir, 'engine-export.tar'), def);
    for (const ref of refs) {
      const held = await index.held(ref, [exported]);
      for (const platform of platforms) {
        const image = held[0]?.images.find((i) => i.platform !== null && formatPlatform(i.platform) === formatPlatform(platform));
        if (!image) {
          throw notFound(`image ${ref}: the local Docker Engine (API ${api}) exports an image only as it holds it, and holds ${held[0] ? describePlatforms(held[0]) : 'no variant'}, not ${formatPlatform(platform)}`, {
            subject: ref,
            reason: 'platform-not-found',
            hint: `Docker 28 or newer (API ${PLATFORM_EXPORT_API}) with the containerd image store exports a chosen platform; or add a multi-platform archive of ${ref} under image_archives: in ${def.file}, or build without ${formatPlatform(platform)}`,
          });
        }
        chosen.push({ ref, platform, archive: held[0]!.archive, image });
      }
    }
    return chosen;
  }
  for (const platform of platforms) {
    const name = formatPlatform(platform);
    const path = join(dir, `engine-export-${name.replaceAll('/', '-')}.tar`);
    try {
      await exportFromEngine(docker, refs, path, def, platform);
    } catch (e) {
      if (!isNoSuchPlatform(e)) throw e;
      throw await platformNotInEngine(docker, refs, platform, e, def);
    }
    for (const ref of refs) {
      const held = await index.held(ref, [path]);
      if (held.length === 0) throw imageNotFound(ref, def, true);
      chosen.push(chooseVariant(ref, platform, held, def));
    }
  }
  return chosen;
}

/** An export with `platform` that the engine refused for want of that platform (404 on the containerd store, 500 on the classic one). */
const isNoSuchPlatform = (e: unknown): e is DockerError => e instanceof DockerError && (e.status === 404 || e.status === 500);

/** Which of `refs` the engine lacks `platform` of: exported one by one, the first that fails is named. */
async function platformNotInEngine(docker: Docker, refs: string[], platform: Platform, e: DockerError, def: BundleDefinition) {
  let culprit = refs.join(', ');
  let why = e.daemonMessage ?? e.message;
  for (const ref of refs.length > 1 ? refs : []) {
    const failed = await docker.images.export([ref], { platform }).then(
      async (s) => {
        s.destroy();
        return undefined;
      },
      (err: unknown) => err,
    );
    if (isNoSuchPlatform(failed)) {
      culprit = ref;
      why = failed.daemonMessage ?? failed.message;
      break;
    }
  }
  const name = formatPlatform(platform);
  return notFound(`image ${culprit}: the local Docker Engine has no ${name} variant of it (${why})`, {
    subject: culprit,
    reason: 'platform-not-found',
    hint: `pull it for ${name} (docker pull --platform ${name} ${culprit}) on an engine with the containerd image store, or add a multi-platform archive of it under image_archives: in ${def.file}, or build without ${name}`,
    cause: e,
  });
}

function imageNotFound(ref: string, def: BundleDefinition, askedEngine: boolean) {
  return notFound(`image ${ref} is in none of the image archives${askedEngine ? ' nor in the local Docker Engine' : ''}`, {
    subject: def.file,
    reason: 'image-not-found',
    hint: `load or build it in the local engine, or add its 'docker save' tarball under image_archives: in ${def.file}`,
  });
}

async function exportFromEngine(docker: Docker, refs: string[], path: string, def: BundleDefinition, platform?: Platform): Promise<string> {
  for (const ref of refs) {
    if (!(await docker.images.find(ref))) throw imageNotFound(ref, def, true);
  }
  await pipeline(await docker.images.export(refs, platform ? { platform } : {}), createWriteStream(path, { highWaterMark: 1024 * 1024 }));
  return path;
}

async function addImage(archive: ImageArchive, image: Pick<ArchiveImage, 'refs' | 'configBytes' | 'layers' | 'manifestBytes'>, work: BlobCollector): Promise<ImageRecord> {
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
function keptManifest(image: Pick<ArchiveImage, 'manifestBytes'>, configDigest: string, layers: LayerRecord[]): Buffer | null {
  if (!image.manifestBytes) return null;
  const m = JSON.parse(image.manifestBytes.toString('utf8')) as { config?: { digest?: string }; layers?: { digest?: string }[] };
  const same = m.config?.digest === configDigest && m.layers?.length === layers.length && m.layers.every((l, i) => l.digest === layers[i]!.digest);
  return same ? image.manifestBytes : null;
}
