import type { Manifest } from '../bundle/manifest.js';
import type { Journal } from '../journal/journal.js';
import type { BundleFact, DeploymentFact, JournalFacts } from './plan.js';

/** Every blob an image needs to be loaded again from the content store. */
export const imageBlobDigests = (img: Manifest['images'][number]): string[] => [img.config.digest, img.manifest.digest, ...img.layers.map((l) => l.digest)];

/** Reads what the retention rule needs from the journal, in one read transaction. */
export function readJournalFacts(journal: Journal): JournalFacts {
  const db = journal.db;
  return db.transaction((): JournalFacts => {
    const bundleRows = db
      .prepare(`SELECT b.id, b.name, b.version, b.manifest, EXISTS (SELECT 1 FROM bundle_blobs l WHERE l.bundle_id = b.id) AS linked FROM bundles b ORDER BY b.id`)
      .all() as { id: number; name: string; version: string; manifest: Buffer; linked: number }[];
    const bundles: BundleFact[] = bundleRows.map((r) => {
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
    for (const r of db.prepare(`SELECT deployment_id, image_id FROM deployment_services WHERE image_id IS NOT NULL`).all() as { deployment_id: number; image_id: string }[]) {
      images.set(r.deployment_id, [...(images.get(r.deployment_id) ?? []), r.image_id]);
    }
    const data = new Map<number, string[]>();
    for (const r of db.prepare(`SELECT deployment_id, data_digest FROM deployment_objects WHERE data_digest IS NOT NULL`).all() as { deployment_id: number; data_digest: string }[]) {
      data.set(r.deployment_id, [...(data.get(r.deployment_id) ?? []), r.data_digest]);
    }
    const deployments: DeploymentFact[] = (
      db.prepare(`SELECT id, stack, bundle_id, kind, status, restores FROM deployments ORDER BY id`).all() as {
        id: number;
        stack: string;
        bundle_id: number | null;
        kind: DeploymentFact['kind'];
        status: DeploymentFact['status'];
        restores: number | null;
      }[]
    ).map((r) => ({
      id: r.id,
      stack: r.stack,
      bundleId: r.bundle_id,
      kind: r.kind,
      status: r.status,
      restores: r.restores,
      imageIds: images.get(r.id) ?? [],
      dataDigests: data.get(r.id) ?? [],
    }));
    const imageRows = db.prepare(`SELECT id, refs FROM images ORDER BY id`).all() as { id: string; refs: string }[];
    const blobs = db.prepare(`SELECT digest, size, kind FROM blobs ORDER BY digest`).all() as { digest: string; size: number; kind: string }[];
    return { bundles, deployments, images: imageRows.map((r) => ({ id: r.id, refs: JSON.parse(r.refs) as string[] })), blobs };
  })();
}

/**
 * The journal side of a prune, in one transaction: pruned bundles keep their
 * rows (history) but lose their `bundle_blobs` and `bundle_images` links,
 * which is what marks them pruned; images removed from the engine and blobs
 * removed from the store lose their rows. Kept bundles whose links a
 * re-import did not restore get them back.
 */
export function recordPruned(
  journal: Journal,
  done: { bundles: readonly number[]; blobs: readonly string[]; images: readonly string[]; relink: readonly { bundle: number; blobs: readonly { digest: string; size: number; kind: string }[] }[] },
  at: Date,
): void {
  const db = journal.db;
  db.transaction(() => {
    const unlinkBlobs = db.prepare(`DELETE FROM bundle_blobs WHERE bundle_id = ?`);
    const unlinkImages = db.prepare(`DELETE FROM bundle_images WHERE bundle_id = ?`);
    for (const id of done.bundles) {
      unlinkBlobs.run(id);
      unlinkImages.run(id);
    }
    const unlinkImage = db.prepare(`DELETE FROM bundle_images WHERE image_id = ?`);
    const dropImage = db.prepare(`DELETE FROM images WHERE id = ?`);
    for (const id of done.images) {
      unlinkImage.run(id);
      dropImage.run(id);
    }
    const dropBlob = db.prepare(`DELETE FROM blobs WHERE digest = ? AND NOT EXISTS (SELECT 1 FROM bundle_blobs WHERE digest = ?)`);
    for (const digest of done.blobs) dropBlob.run(digest, digest);
    const addBlob = db.prepare(`INSERT OR IGNORE INTO blobs (digest, size, kind, stored_at) VALUES (?, ?, ?, ?)`);
    const link = db.prepare(`INSERT OR IGNORE INTO bundle_blobs (bundle_id, digest) VALUES (?, ?)`);
    for (const r of done.relink) {
      for (const b of r.blobs) {
        addBlob.run(b.digest, b.size, b.kind, at.toISOString());
        link.run(r.bundle, b.digest);
      }
    }
  }).immediate();
}
