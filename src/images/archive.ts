import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { configError } from '../errors/index.js';
import { familiarRef } from './reference.js';
import { formatPlatform, normalizePlatform, platformOfConfig, sameOsArch, type Platform } from './platform.js';

/** Byte range of one file inside an image archive on disk. */
export interface ArchiveSpan {
  path: string;
  offset: number;
  size: number;
}

export interface ArchiveLayer {
  source: ArchiveSpan;
  diffId: string;
  /** Media type from the archive's OCI manifest, when it has one. */
  mediaType?: string;
}

/** One image found in a `docker save` or OCI-layout tarball. */
export interface ArchiveImage {
  refs: string[];
  configBytes: Buffer;
  layers: ArchiveLayer[];
  /** The archive's own OCI image manifest bytes, kept so the manifest digest survives. */
  manifestBytes?: Buffer;
  /** The platform the archive's index names for it, when it names one. */
  platform?: Platform;
}

/** An image of a known platform: the index's word for it, else its config's; null when neither says. */
export type ArchiveVariant = Omit<ArchiveImage, 'platform'> & { platform: Platform | null };

/**
 * An image manifest (or image index) the archive's index names without
 * holding it: a multi-platform `docker save` of Docker 25+ with the
 * containerd image store names every platform of an image, and holds only
 * those the engine had pulled.
 */
export interface AbsentVariant {
  refs: string[];
  platform: Platform | null;
  digest: string;
}

const MAX_JSON_BYTES = 64 * 1024 * 1024;

/**
 * Indexes an image tarball by file offset in one pass, then reads its JSON
 * by random access. Handles the legacy `docker save` layout (manifest.json,
 * `<id>/layer.tar`, symlinks for shared layers) and the OCI layout
 * (index.json, blobs/sha256/...) that Docker 25 and later write.
 */
export class ImageArchive {
  private constructor(
    readonly path: string,
    private readonly spans: Map<string, ArchiveSpan>,
  ) {}

  static async open(path: string): Promise<ImageArchive> {
    const spans = new Map<string, ArchiveSpan>();
    const links = new Map<string, string>();
    const extract = tar.extract();
    const done = pipeline(createReadStream(path, { highWaterMark: 1024 * 1024 }), extract as unknown as Writable);
    try {
      for await (const entry of extract) {
        const h = entry.header as tar.Header & { byteOffset: number };
        const name = posix.normalize(h.name).replace(/^\.\//, '');
        if (h.type === 'file') spans.set(name, { path: name, offset: h.byteOffset, size: h.size });
        else if (h.type === 'symlink') links.set(name, posix.normalize(posix.join(posix.dirname(name), h.linkname)));
        else if (h.type === 'link') links.set(name, posix.normalize(h.linkname));
        entry.resume();
      }
      await done;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw configError(`image archive not found: ${path}`, { subject: path });
      throw configError(`${path} is not a readable image archive: ${(e as Error).message}`, { subject: path, cause: e });
    }
    for (const [name, target] of links) {
      const span = spans.get(target);
      if (span) spans.set(name, span);
    }
    return new ImageArchive(path, spans);
  }

  private span(name: string): ArchiveSpan {
    const span = this.spans.get(posix.normalize(name));
    if (!span) throw configError(`${this.path}: the archive names "${name}", which it does not contain`, { subject: this.path });
    return span;
  }

  async readBytes(name: string): Promise<Buffer> {
    const span = this.span(name);
    if (span.size > MAX_JSON_BYTES) throw configError(`${this.path}: ${name} is too large to be metadata`, { subject: this.path });
    const fd = await open(this.path, 'r');
    try {
      const buf = Buffer.alloc(span.size);
      await fd.read(buf, 0, span.size, span.offset);
      return buf;
    } finally {
      await fd.close();
    }
  }

  private async readJson<T>(name: string): Promise<T> {
    try {
      return JSON.parse((await this.readBytes(name)).toString('utf8')) as T;
    } catch (e) {
      if (e instanceof SyntaxError) throw configError(`${this.path}: ${name} is not valid JSON`, { subject: this.path });
      throw e;
    }
  }

  /** A stream of one file's bytes, read straight from the archive. */
  streamOf(span: ArchiveSpan): Readable {
    if (span.size === 0) return createReadStream(this.path, { start: 1, end: 0 });
    return createReadStream(this.path, { start: span.offset, end: span.offset + span.size - 1, highWaterMark: 1024 * 1024 });
  }

  async images(): Promise<ArchiveImage[]> {
    if (this.spans.has('manifest.json')) return this.fromDockerManifest();
    if (this.spans.has('index.json')) return this.fromOciIndex();
    throw configError(`${this.path} has neither manifest.json nor index.json: not a docker save or OCI image archive`, {
      subject: this.path,
      hint: "make it with 'docker save -o FILE IMAGE…'",
    });
  }

  private async fromDockerManifest(): Promise<ArchiveImage[]> {
    type Entry = { Config: string; RepoTags: string[] | null; Layers: string[] };
    const entries = await this.readJson<Entry[]>('manifest.json');
    const ociByConfig = this.spans.has('index.json') ? await this.ociManifestsByConfig() : new Map<string, OciManifestInfo>();
    const images: ArchiveImage[] = [];
    for (const e of entries) {
      const configBytes = await this.readBytes(e.Config);
      const diffIds = diffIdsOf(configBytes, this.path, e.Config);
      if (diffIds.length !== e.Layers.length) {
        throw configError(`${this.path}: ${e.Config} lists ${diffIds.length} layers, manifest.json ${e.Layers.length}`, { subject: this.path });
      }
      const configDigest = e.Config.startsWith('blobs/sha256/') ? `sha256:${posix.basename(e.Config)}` : '';
      const oci = ociByConfig.get(configDigest);
      images.push({
        refs: (e.RepoTags ?? []).map(familiarRef),
        configBytes,
        layers: e.Layers.map((p, i) => ({ source: this.span(p), diffId: diffIds[i]!, ...(oci ? { mediaType: oci.layerTypes[i] } : {}) })),
        ...(oci ? { manifestBytes: oci.bytes } : {}),
      });
    }
    return images;
  }

  private async fromOciIndex(present?: Map<string, OciManifestInfo>): Promise<ArchiveImage[]> {
    present ??= (await this.walkOciIndex()).present;
    const images: ArchiveImage[] = [];
    for (const info of present.values()) {
      const configBytes = await this.readBytes(blobPath(info.config));
      const diffIds = diffIdsOf(configBytes, this.path, info.config);
      images.push({
        refs: info.refs,
        configBytes,
        layers: info.layers.map((d, i) => ({ source: this.span(blobPath(d)), diffId: diffIds[i]!, mediaType: info.layerTypes[i]! })),
        manifestBytes: info.bytes,
        ...(info.platform ? { platform: info.platform } : {}),
      });
    }
    return images;
  }

  /**
   * Every image the archive holds, each with its platform, and the ones its
   * index names without holding them. The OCI index is read when there is
   * one (it names every platform), else the legacy manifest.json.
   */
  async variants(): Promise<{ images: ArchiveVariant[]; absent: AbsentVariant[] }> {
    const walked = this.spans.has('index.json') ? await this.walkOciIndex() : undefined;
    const images = walked ? await this.fromOciIndex(walked.present) : await this.images();
    const absent = walked?.absent ?? [];
    return { images: images.map((img) => ({ ...img, platform: this.platformOf(img) })), absent };
  }

  /** The index's platform for an image, checked against its config's; either alone when only one says. */
  private platformOf(img: ArchiveImage): Platform | null {
    const config = platformOfConfig(img.configBytes);
    if (img.platform && config && !sameOsArch(img.platform, config)) {
      throw configError(`${this.path}: the index names image ${img.refs[0] ?? '<untagged>'} for ${formatPlatform(img.platform)}, but its config says ${formatPlatform(config)}`, {
        subject: this.path,
        reason: 'platform-mismatch',
        hint: 'the image archive is inconsistent; save or export the image again',
      });
    }
    return img.platform ?? config;
  }

  private async ociManifestsByConfig(): Promise<Map<string, OciManifestInfo>> {
    return (await this.walkOciIndex()).present;
  }

  /**
   * Walks index.json (and nested indexes) to the image manifests, keyed by
   * config digest. Attestations (platform unknown/unknown) are no images and
   * are passed over; descriptors whose blob the archive lacks are `absent`.
   */
  private async walkOciIndex(): Promise<{ present: Map<string, OciManifestInfo>; absent: AbsentVariant[] }> {
    const present = new Map<string, OciManifestInfo>();
    const absent: AbsentVariant[] = [];
    const visit = async (descs: OciDescriptor[], inheritedRefs: string[]): Promise<void> => {
      for (const d of descs) {
        if (isAttestation(d)) continue;
        const refs = [...new Set([...inheritedRefs, ...refsOf(d)])];
        const platform = d.platform?.os && d.platform.architecture ? normalizePlatform(d.platform as Platform) : null;
        if (!this.spans.has(blobPath(d.digest))) {
          absent.push({ refs, platform, digest: d.digest });
          continue;
        }
        const bytes = await this.readBytes(blobPath(d.digest));
        const doc = JSON.parse(bytes.toString('utf8')) as { manifests?: OciDescriptor[]; config?: OciDescriptor; layers?: OciDescriptor[] };
        if (doc.manifests) {
          await visit(doc.manifests, refs);
        } else if (doc.config && doc.layers) {
          // containerd may hold a platform's manifest but not its layers: that platform is not here either.
          if (![doc.config, ...doc.layers].every((b) => this.spans.has(blobPath(b.digest)))) {
            absent.push({ refs, platform, digest: d.digest });
            continue;
          }
          const prev = present.get(doc.config.digest);
          const known = platform ?? prev?.platform;
          present.set(doc.config.digest, {
            bytes,
            config: doc.config.digest,
            layers: doc.layers.map((l) => l.digest),
            layerTypes: doc.layers.map((l) => l.mediaType),
            refs: [...new Set([...(prev?.refs ?? []), ...refs])],
            ...(known ? { platform: known } : {}),
          });
        }
      }
    };
    const index = await this.readJson<{ manifests: OciDescriptor[] }>('index.json');
    await visit(index.manifests ?? [], []);
    return { present, absent };
  }
}

interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

interface OciManifestInfo {
  bytes: Buffer;
  config: string;
  layers: string[];
  layerTypes: string[];
  refs: string[];
  platform?: Platform;
}

/** A build attestation (SBOM, provenance) that buildx files beside each image: platform unknown/unknown. */
const isAttestation = (d: OciDescriptor): boolean =>
  d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || (d.platform?.os === 'unknown' && d.platform.architecture === 'unknown');

const blobPath = (digest: string): string => `blobs/${digest.replace(':', '/')}`;

/** Full references from an OCI descriptor's annotations (containerd's name first). */
function refsOf(d: OciDescriptor): string[] {
  const full = d.annotations?.['io.containerd.image.name'];
  if (full) return [familiarRef(full)];
  const name = d.annotations?.['org.opencontainers.image.ref.name'];
  // A bare tag ("1.0") names no repository, so it cannot be matched to an image reference.
  return name && /[/:]/.test(name) ? [familiarRef(name)] : [];
}

function diffIdsOf(configBytes: Buffer, archive: string, name: string): string[] {
  try {
    const config = JSON.parse(configBytes.toString('utf8')) as { rootfs?: { diff_ids?: string[] } };
    const ids = config.rootfs?.diff_ids;
    if (Array.isArray(ids)) return ids;
  } catch {
    // reported below
  }
  throw configError(`${archive}: ${name} is not an image config with rootfs.diff_ids`, { subject: archive });
}
