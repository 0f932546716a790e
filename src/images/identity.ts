/**
 * Which image in an engine is a bundle's image, on either image store. The
 * classic store names an image by its config digest; the containerd image store
 * (Docker 29's default, an option from 25 on) by its manifest digest. A bundle
 * signs both, and the manifest digest covers the config digest, so the check
 * stays strict on both: the engine's id is one of the two, and its layers are
 * exactly the bundle's diff ids. The journal keeps the config digest, the name
 * that does not depend on the store.
 */
import type { ImageRecord } from './image-record.js';
import type { ImageEngine } from '../docker/engine.js';
import type { CallOptions } from '../docker/index.js';
import type { ImageInspect } from '../docker/types.js';

/** What identifies an image: its config digest (`id`), its manifest, its layers' diff ids. */
export type ImageIdentity = Pick<ImageRecord, 'id' | 'manifest' | 'layers'>;

/** The ids an engine may show for the image: classic store first, then containerd store. */
export const engineIds = (img: Pick<ImageRecord, 'id' | 'manifest'>): string[] => [img.id, img.manifest.digest];

/** True when `found` is exactly the bundle's image. */
export function isBundleImage(found: ImageInspect, img: ImageIdentity): boolean {
  const layers = found.RootFS?.Layers ?? [];
  return engineIds(img).includes(found.Id) && JSON.stringify(layers) === JSON.stringify(img.layers.map((l) => l.diffId));
}

/** The engine's copy of the image, looked up by either id; undefined when the engine lacks it. */
export async function findBundleImage(docker: Pick<ImageEngine, 'images'>, img: ImageIdentity, call: CallOptions = {}): Promise<ImageInspect | undefined> {
  for (const id of engineIds(img)) {
    const found = await docker.images.find(id, call);
    if (found && isBundleImage(found, img)) return found;
  }
  return undefined;
}
