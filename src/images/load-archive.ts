import { createReadStream } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { ImageRecord } from './image-record.js';
import type { ContentStore } from '../store/content-store.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const blobName = (digest: string): string => `blobs/sha256/${digest.slice('sha256:'.length)}`;

/** `manifest.json` as `docker load` reads it (every Docker version). */
export function dockerManifest(images: readonly ImageRecord[]) {
  return images.map((i) => ({ Config: blobName(i.config.digest), RepoTags: i.refs, Layers: i.layers.map((l) => blobName(l.digest)) }));
}

/** `index.json` as the OCI layout (Docker 25+ with the containerd image store) reads it. */
export function ociIndex(images: readonly ImageRecord[]) {
  return {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: images.flatMap((i) =>
      i.refs.map((ref) => ({
        mediaType: OCI_MANIFEST,
        digest: i.manifest.digest,
        size: i.manifest.size,
        annotations: { 'io.containerd.image.name': fullRef(ref), 'org.opencontainers.image.ref.name': ref.slice(ref.lastIndexOf(':') + 1) },
      })),
    ),
  };
}

/** containerd wants fully qualified names: `demo/web:1` is `docker.io/demo/web:1`. */
function fullRef(ref: string): string {
  const first = ref.split('/')[0]!;
  const hasRegistry = ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (hasRegistry) return ref;
  return ref.includes('/') ? `docker.io/${ref}` : `docker.io/library/${ref}`;
}

/**
 * A `docker load` archive of `images`, assembled as a stream from the
 * content store: no temporary file, each shared blob written once.
 */
export function loadArchiveStream(images: readonly ImageRecord[], store: ContentStore): Readable {
  const pack = tar.pack();
  const mtime = new Date(0);
  const put = (name: string, data: Buffer) =>
    new Promise<void>((res, rej) => pack.entry({ name, mtime, mode: 0o644 }, data, (e) => (e ? rej(e) : res())));
  const feed = async () => {
    await put('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
    await put('index.json', Buffer.from(JSON.stringify(ociIndex(images))));
    await put('manifest.json', Buffer.from(JSON.stringify(dockerManifest(images))));
    const written = new Set<string>();
    for (const img of images) {
      for (const { digest, size } of [img.config, img.manifest, ...img.layers]) {
        if (written.has(digest)) continue;
        written.add(digest);
        const entry = pack.entry({ name: blobName(digest), size, mtime, mode: 0o644 });
        await pipeline(createReadStream(store.pathOf(digest), { highWaterMark: 1024 * 1024 }), entry as unknown as Writable);
      }
    }
    pack.finalize();
  };
  feed().catch((e: unknown) => pack.destroy(e as Error));
  return pack as unknown as Readable;
}
