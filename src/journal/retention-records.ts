import type { Journal } from './journal.js';
import type { DeploymentRow } from './deployments.js';
import { BundleRecords } from './bundles.js';

/** A bundle with its signed manifest, and whether the journal still links blobs to it (0 once pruned). */
export interface BundleLinkRow {
  id: number;
  name: string;
  version: string;
  manifest: Buffer;
  linked: 0 | 1;
}

export type DeploymentLinkRow = Pick<DeploymentRow, 'id' | 'stack' | 'bundle_id' | 'kind' | 'status' | 'restores'>;

export interface BlobRow {
  digest: string;
  size: number;
  kind: string;
}

/** Everything the retention rule reads, as the journal holds it. */
export interface RetentionRows {
  bundles: BundleLinkRow[];
  deployments: DeploymentLinkRow[];
  /** The image id each deployment's services were pinned to. */
  serviceImages: { deployment_id: number; image_id: string }[];
  /** The content-store digest of each deployment's secret and config data. */
  objectData: { deployment_id: number; data_digest: string }[];
  /** `refs` is the JSON array as stored. */
  images: { id: string; refs: string }[];
  blobs: BlobRow[];
}

/** What a prune did, for the journal: bundles pruned, blobs and images gone, kept bundles whose links come back. */
export interface PruneDone {
  bundles: readonly number[];
  blobs: readonly string[];
  images: readonly string[];
  relink: readonly { bundle: number; blobs: readonly BlobRow[] }[];
}

/** The journal side of retention: what it reads to decide, and what a prune writes. */
export class RetentionRecords {
  constructor(private readonly journal: Journal) {}

  /** Every row the rule needs, in one read transaction. */
  read(): RetentionRows {
    const db = this.journal.db;
    return db.transaction(
      (): RetentionRows => ({
        bundles: db
          .prepare<[], BundleLinkRow>(`SELECT b.id, b.name, b.version, b.manifest, EXISTS (SELECT 1 FROM bundle_blobs l WHERE l.bundle_id = b.id) AS linked FROM bundles b ORDER BY b.id`)
          .all(),
        serviceImages: db.prepare<[], RetentionRows['serviceImages'][number]>(`SELECT deployment_id, image_id FROM deployment_services WHERE image_id IS NOT NULL`).all(),
        objectData: db.prepare<[], RetentionRows['objectData'][number]>(`SELECT deployment_id, data_digest FROM deployment_objects WHERE data_digest IS NOT NULL`).all(),
        deployments: db.prepare<[], DeploymentLinkRow>(`SELECT id, stack, bundle_id, kind, status, restores FROM deployments ORDER BY id`).all(),
        images: db.prepare<[], RetentionRows['images'][number]>(`SELECT id, refs FROM images ORDER BY id`).all(),
        blobs: db.prepare<[], BlobRow>(`SELECT digest, size, kind FROM blobs ORDER BY digest`).all(),
      }),
    )();
  }

  /**
   * The journal side of a prune, in one transaction: pruned bundles keep their
   * rows (history) but lose their `bundle_blobs` and `bundle_images` links,
   * which is what marks them pruned; images removed from the engine and blobs
   * removed from the store lose their rows. Kept bundles whose links a
   * re-import did not restore get them back.
   */
  recordPruned(done: PruneDone, at: Date): void {
    const db = this.journal.db;
    const bundles = new BundleRecords(this.journal);
    db.transaction(() => {
      const unlinkBlobs = db.prepare<[number]>(`DELETE FROM bundle_blobs WHERE bundle_id = ?`);
      const unlinkImages = db.prepare<[number]>(`DELETE FROM bundle_images WHERE bundle_id = ?`);
      for (const id of done.bundles) {
        unlinkBlobs.run(id);
        unlinkImages.run(id);
      }
      const unlinkImage = db.prepare<[string]>(`DELETE FROM bundle_images WHERE image_id = ?`);
      const dropImage = db.prepare<[string]>(`DELETE FROM images WHERE id = ?`);
      for (const id of done.images) {
        unlinkImage.run(id);
        dropImage.run(id);
      }
      const dropBlob = db.prepare<[string, string]>(`DELETE FROM blobs WHERE digest = ? AND NOT EXISTS (SELECT 1 FROM bundle_blobs WHERE digest = ?)`);
      for (const digest of done.blobs) dropBlob.run(digest, digest);
      for (const r of done.relink) bundles.linkBlobs(r.bundle, r.blobs, at.toISOString());
    }).immediate();
  }
}
