/**
 * For rollback: telling "this image was pruned" apart from a damaged store.
 * A deployment outside the retention window keeps its journal rows (specs,
 * pins) but may have lost its image from the engine and its blobs from the
 * store. Rollback should check before it loads and say so, naming the
 * bundle to import again; these helpers are what it needs for that.
 */
import type { ImageRecord } from '../bundle/manifest.js';
import { notFound, type AirlockError } from '../errors/index.js';
import type { ContentStore } from '../store/content-store.js';

/** The blobs of `img` (config, manifest, layers) the content store no longer holds. */
export async function missingImageBlobs(store: ContentStore, img: ImageRecord): Promise<string[]> {
  return (await store.missing([img.config, img.manifest, ...img.layers])).digests;
}

/**
 * The error for an image a rollback must load again but cannot: gone from
 * the engine, and `missing` of its blobs gone from the store. `bundles`
 * names the bundles that carry it (`demo 1.0.0`), for the hint.
 */
export function prunedImageError(ref: string, img: ImageRecord, missing: readonly string[], bundles: readonly string[]): AirlockError {
  const which = bundles.length > 0 ? `bundle ${bundles.join(' or ')}` : 'the bundle that carries it';
  return notFound(`image ${ref} (${img.id}) was pruned: it is gone from the engine, and ${missing.length} of its ${img.layers.length + 2} blobs from the content store`, {
    reason: 'pruned',
    subject: ref,
    hint: `import ${which} again ('airlock bundle import FILE'), then roll back; 'airlock prune --keep K' keeps more releases`,
  });
}
