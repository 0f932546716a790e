/**
 * Writes image archives the way `docker save` does, from code: the legacy
 * layout (Docker ≤ 24) and the OCI layout (Docker ≥ 25). Test images are
 * made from Debian's busybox-static, since no registry is reachable.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

export const BUSYBOX = '/bin/busybox';

export interface LayerFile {
  path: string;
  /** File contents; or `link` for a symlink. */
  data?: Buffer;
  link?: string;
  mode?: number;
}

const MTIME = new Date('2024-01-01T00:00:00Z');

/** A layer tar (uncompressed) holding `files`, written to `out`. Returns its diff id. */
export async function writeLayer(out: string, files: LayerFile[]): Promise<string> {
  const pack = tar.pack();
  const done = pipeline(pack as unknown as Readable, createWriteStream(out));
  for (const f of files) {
    if (f.link !== undefined) pack.entry({ name: f.path, type: 'symlink', linkname: f.link, mtime: MTIME, mode: 0o777 });
    else pack.entry({ name: f.path, mtime: MTIME, mode: f.mode ?? 0o644 }, f.data ?? Buffer.alloc(0));
  }
  pack.finalize();
  await done;
  return sha256File(out);
}

/** A layer of `size` random bytes in one file: incompressible, like compressed app data. */
export async function writeRandomLayer(out: string, size: number, seedName = 'data.bin'): Promise<string> {
  const pack = tar.pack();
  const done = pipeline(pack as unknown as Readable, createWriteStream(out, { highWaterMark: 1 << 20 }));
  const entry = pack.entry({ name: seedName, size, mtime: MTIME, mode: 0o644 });
  await pipeline(randomStream(size), entry as unknown as NodeJS.WritableStream);
  pack.finalize();
  await done;
  return sha256File(out);
}

function randomStream(size: number): Readable {
  let left = size;
  return new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const n = Math.min(left, 1 << 20);
      left -= n;
      this.push(randomBytes(n));
    },
  });
}

/** The busybox base layer: /bin/busybox and a few applet links. */
export async function writeBusyboxLayer(out: string): Promise<string> {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: apt-get install busybox-static`);
  return writeLayer(out, [
    { path: 'bin/busybox', data: readFileSync(BUSYBOX), mode: 0o755 },
    ...['sh', 'echo', 'sleep', 'cat', 'httpd', 'true', 'false', 'ls'].map((a) => ({ path: `bin/${a}`, link: 'busybox' })),
  ]);
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

export interface ImageSpec {
  refs: string[];
  /** Paths of uncompressed layer tars, bottom first, with their diff ids. */
  layers: { path: string; diffId: string }[];
  cmd?: string[];
  /** The platform the config names; default linux/amd64. */
  platform?: OciPlatform;
}

/** A platform as OCI descriptors and image configs spell it. */
export interface OciPlatform {
  os: string;
  architecture: string;
  variant?: string;
}

export function imageConfig(spec: Omit<ImageSpec, 'refs'>): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: spec.platform?.architecture ?? 'amd64',
      os: spec.platform?.os ?? 'linux',
      ...(spec.platform?.variant ? { variant: spec.platform.variant } : {}),
      created: MTIME.toISOString(),
      config: { Cmd: spec.cmd ?? ['sh'], Env: ['PATH=/bin'] },
      rootfs: { type: 'layers', diff_ids: spec.layers.map((l) => l.diffId) },
      history: spec.layers.map(() => ({ created: MTIME.toISOString(), created_by: 'airlock test' })),
    }),
  );
}

const hex = (d: string) => d.slice('sha256:'.length);
const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * Writes a docker-save archive of `images` to `out`. Layers shared between
 * images are written once, as Docker does.
 */
export async function writeImageArchive(out: string, images: ImageSpec[], layout: 'legacy' | 'oci'): Promise<{ ids: string[] }> {
  const pack = tar.pack();
  const done = pipeline(pack as unknown as Readable, createWriteStream(out, { highWaterMark: 1 << 20 }));
  const put = (name: string, data: Buffer) =>
    new Promise<void>((res, rej) => pack.entry({ name, mtime: MTIME, mode: 0o644 }, data, (e) => (e ? rej(e) : res())));
  const putFile = async (name: string, path: string) => {
    const entry = pack.entry({ name, size: (await stat(path)).size, mtime: MTIME, mode: 0o644 });
    await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), entry as unknown as NodeJS.WritableStream);
  };
  const written = new Set<string>();
  const manifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  const index: unknown[] = [];
  const ids: string[] = [];
  if (layout === 'oci') await put('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
  for (const img of images) {
    const config = imageConfig(img);
    const configDigest = digestOf(config);
    ids.push(configDigest);
    const layerNames: string[] = [];
    for (const l of img.layers) {
      const name = layout === 'oci' ? `blobs/sha256/${hex(l.diffId)}` : `${hex(l.diffId)}/layer.tar`;
      if (!written.has(name)) {
        written.add(name);
        await putFile(name, l.path);
      }
      layerNames.push(name);
    }
    const configName = layout === 'oci' ? `blobs/sha256/${hex(configDigest)}` : `${hex(configDigest)}.json`;
    if (!written.has(configName)) {
      written.add(configName);
      await put(configName, config);
    }
    manifest.push({ Config: configName, RepoTags: img.refs, Layers: layerNames });
    if (layout === 'oci') {
      const layerDescs = [];
      for (const l of img.layers) layerDescs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l.diffId, size: (await stat(l.path)).size });
      const m = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
          layers: layerDescs,
        }),
      );
      await put(`blobs/sha256/${hex(digestOf(m))}`, m);
      for (const ref of img.refs) {
        index.push({
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: digestOf(m),
          size: m.length,
          annotations: { 'io.containerd.image.name': `docker.io/${ref}`, 'org.opencontainers.image.ref.name': ref.split(':').pop() },
        });
      }
    }
  }
  if (layout === 'oci') await put('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: index })));
  await put('manifest.json', Buffer.from(JSON.stringify(manifest)));
  pack.finalize();
  await done;
  return { ids };
}

/** Image ids by ref, read straight from a docker-save archive: sha256 of each config. */
export async function archiveImageIds(path: string): Promise<Map<string, string>> {
  const files = new Map<string, Buffer>();
  const extract = tar.extract();
  createReadStream(path).pipe(extract as unknown as NodeJS.WritableStream);
  for await (const e of extract) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    if (e.header.size < 1 << 20) files.set(e.header.name, Buffer.concat(chunks));
  }
  const manifest = JSON.parse(files.get('manifest.json')!.toString()) as { Config: string; RepoTags: string[] }[];
  const ids = new Map<string, string>();
  for (const m of manifest) for (const ref of m.RepoTags) ids.set(ref, digestOf(files.get(m.Config)!));
  return ids;
}

export interface VariantSpec {
  platform: OciPlatform;
  layers: { path: string; diffId: string }[];
  cmd?: string[];
  /** The index names this variant but the archive leaves its blobs out, as `docker save` does for a platform the engine lacks. */
  absent?: boolean;
}

export interface MultiPlatformImage {
  refs: string[];
  variants: VariantSpec[];
}

export interface MultiPlatformOptions {
  /**
   * - `buildx`: index.json names one image index per ref, which names each variant's manifest
   *   and, after each, an attestation manifest of platform unknown/unknown (what buildx writes);
   * - `flat`: index.json names every variant's manifest itself, once per ref;
   * - `docker-save`: as a multi-platform `docker save` of Docker 25+ with the containerd image
   *   store: `buildx`'s nesting without attestations, plus manifest.json for the variants present.
   */
  layout: 'buildx' | 'flat' | 'docker-save';
  /** Whether descriptors carry `platform` (default true); false leaves it to each config. */
  descriptorPlatforms?: boolean;
}

export interface WrittenVariant {
  ref: string;
  platform: OciPlatform;
  /** Digests of the variant's image manifest and config: its engine ids on either image store. */
  manifest: string;
  config: string;
}

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_IMAGE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_IMAGE_CONFIG = 'application/vnd.oci.image.config.v1+json';

/** `docker.io/…` for a short ref, as containerd names images. */
const containerdName = (ref: string): string => (ref.includes('/') ? `docker.io/${ref}` : `docker.io/library/${ref}`);

/**
 * Writes a multi-platform image archive (OCI layout) of `images` to `out`:
 * per ref, one manifest and config per variant, nested as `opts.layout` says.
 * Blobs shared between variants or images are written once.
 */
export async function writeMultiPlatformArchive(out: string, images: MultiPlatformImage[], opts: MultiPlatformOptions): Promise<{ variants: WrittenVariant[] }> {
  const pack = tar.pack();
  const done = pipeline(pack as unknown as Readable, createWriteStream(out, { highWaterMark: 1 << 20 }));
  const written = new Set<string>();
  const putBlob = (data: Buffer) => {
    const digest = digestOf(data);
    if (written.has(digest)) return Promise.resolve(digest);
    written.add(digest);
    return new Promise<string>((res, rej) => pack.entry({ name: `blobs/sha256/${hex(digest)}`, mtime: MTIME, mode: 0o644 }, data, (e) => (e ? rej(e) : res(digest))));
  };
  const putLayer = async (l: { path: string; diffId: string }) => {
    if (written.has(l.diffId)) return;
    written.add(l.diffId);
    const entry = pack.entry({ name: `blobs/sha256/${hex(l.diffId)}`, size: (await stat(l.path)).size, mtime: MTIME, mode: 0o644 });
    await pipeline(createReadStream(l.path, { highWaterMark: 1 << 20 }), entry as unknown as NodeJS.WritableStream);
  };
  const withPlatform = (p: OciPlatform) => (opts.descriptorPlatforms === false ? {} : { platform: p });
  await new Promise<void>((res, rej) => pack.entry({ name: 'oci-layout', mtime: MTIME, mode: 0o644 }, Buffer.from('{"imageLayoutVersion":"1.0.0"}'), (e) => (e ? rej(e) : res())));
  const top: unknown[] = [];
  const dockerManifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  const variants: WrittenVariant[] = [];
  for (const img of images) {
    const nested: unknown[] = [];
    for (const v of img.variants) {
      const config = imageConfig({ layers: v.layers, platform: v.platform, ...(v.cmd ? { cmd: v.cmd } : {}) });
      const layers = [];
      for (const l of v.layers) layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l.diffId, size: (await stat(l.path)).size });
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_IMAGE_MANIFEST, config: { mediaType: OCI_IMAGE_CONFIG, digest: digestOf(config), size: config.length }, layers }));
      const manifestDigest = digestOf(manifest);
      if (!v.absent) {
        for (const l of v.layers) await putLayer(l);
        await putBlob(config);
        await putBlob(manifest);
        dockerManifest.push({ Config: `blobs/sha256/${hex(digestOf(config))}`, RepoTags: img.refs, Layers: v.layers.map((l) => `blobs/sha256/${hex(l.diffId)}`) });
      }
      for (const ref of img.refs) variants.push({ ref, platform: v.platform, manifest: manifestDigest, config: digestOf(config) });
      const desc = { mediaType: OCI_IMAGE_MANIFEST, digest: manifestDigest, size: manifest.length, ...withPlatform(v.platform) };
      nested.push(desc);
      if (opts.layout === 'flat') {
        for (const ref of img.refs) top.push({ ...desc, annotations: { 'io.containerd.image.name': containerdName(ref), 'org.opencontainers.image.ref.name': ref.split(':').pop() } });
      }
      if (opts.layout === 'buildx') {
        // An attestation: an image manifest in form, of platform unknown/unknown, that no engine runs.
        const statementBytes = Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v0.1', subject: [{ digest: { sha256: hex(manifestDigest) } }] }));
        const statement = await putBlob(statementBytes);
        const attConfig = Buffer.from(JSON.stringify({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: [statement] } }));
        const att = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: OCI_IMAGE_MANIFEST,
            config: { mediaType: OCI_IMAGE_CONFIG, digest: await putBlob(attConfig), size: attConfig.length },
            layers: [{ mediaType: 'application/vnd.in-toto+json', digest: statement, size: statementBytes.length }],
          }),
        );
        nested.push({
          mediaType: OCI_IMAGE_MANIFEST,
          digest: await putBlob(att),
          size: att.length,
          annotations: { 'vnd.docker.reference.digest': manifestDigest, 'vnd.docker.reference.type': 'attestation-manifest' },
          platform: { architecture: 'unknown', os: 'unknown' },
        });
      }
    }
    if (opts.layout !== 'flat') {
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: nested }));
      const indexDigest = await putBlob(index);
      for (const ref of img.refs) {
        top.push({ mediaType: OCI_INDEX, digest: indexDigest, size: index.length, annotations: { 'io.containerd.image.name': containerdName(ref), 'org.opencontainers.image.ref.name': ref.split(':').pop() } });
      }
    }
  }
  await new Promise<void>((res, rej) => pack.entry({ name: 'index.json', mtime: MTIME, mode: 0o644 }, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: top })), (e) => (e ? rej(e) : res())));
  if (opts.layout === 'docker-save') {
    await new Promise<void>((res, rej) => pack.entry({ name: 'manifest.json', mtime: MTIME, mode: 0o644 }, Buffer.from(JSON.stringify(dockerManifest)), (e) => (e ? rej(e) : res())));
  }
  pack.finalize();
  await done;
  return { variants };
}
