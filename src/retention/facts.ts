import type { Manifest } from '../bundle/manifest.js';
import type { Journal } from '../journal/journal.js';
import { RetentionRecords } from '../journal/retention-records.js';
import type { BundleFact, DeploymentFact, JournalFacts } from './plan.js';

/** Every blob an image needs to be loaded again from the content store. */
export const imageBlobDigests = (img: Manifest['images'][number]): string[] => [img.config.digest, img.manifest.digest, ...img.layers.map((l) => l.digest)];

/** Reads what the retention rule needs from the journal, in one read transaction. */
export function readJournalFacts(journal: Journal): JournalFacts {
  const rows = new RetentionRecords(journal).read();
  const bundles: BundleFact[] = rows.bundles.map((r) => {
    const m = JSON.parse(r.manifest.toString('utf8')) as Manifest;
    return {
      id: r.id,
      name: r.name,
      version: r.version,
      blobs: m.blobs.map((b) => ({ digest: b.digest, size: b.size, kind: b.kind })),
      images: m.images.map((i) => ({ id: i.id, manifest: i.manifest, layers: i.layers, refs: i.refs, blobs: imageBlobDigests(i) })),
      // A manifest with no blobs has nothing to prune: count it as holding them.
      holdsBlobs: r.linked === 1 || m.blobs.length === 0,
    };
  });
  const images = new Map<number, string[]>();
  for (const r of rows.serviceImages) images.set(r.deployment_id, [...(images.get(r.deployment_id) ?? []), r.image_id]);
  const data = new Map<number, string[]>();
  for (const r of rows.objectData) data.set(r.deployment_id, [...(data.get(r.deployment_id) ?? []), r.data_digest]);
  const deployments: DeploymentFact[] = rows.deployments.map((r) => ({
    id: r.id,
    stack: r.stack,
    bundleId: r.bundle_id,
    kind: r.kind,
    status: r.status,
    restores: r.restores,
    imageIds: images.get(r.id) ?? [],
    dataDigests: data.get(r.id) ?? [],
  }));
  return { bundles, deployments, images: rows.images.map((r) => ({ id: r.id, refs: JSON.parse(r.refs) as string[] })), blobs: rows.blobs };
}
