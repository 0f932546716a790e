import type { Journal } from './journal.js';

export interface ImageRow {
  id: string;
  refs: string[];
  first_loaded_at: string;
  last_checked_at: string;
}

/** Images the engine holds because a bundle brought them, checked by id. */
export class ImageRecords {
  constructor(private readonly journal: Journal) {}

  /** Records that `images` are in the engine with the right ids, for bundle `bundleId`. */
  recordPresent(bundleId: number, images: readonly { id: string; refs: string[] }[], at: Date): void {
    const db = this.journal.db;
    const now = at.toISOString();
    db.transaction(() => {
      const upsert = db.prepare(
        `INSERT INTO images (id, refs, first_loaded_at, last_checked_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET refs = excluded.refs, last_checked_at = excluded.last_checked_at`,
      );
      const link = db.prepare(`INSERT OR IGNORE INTO bundle_images (bundle_id, image_id) VALUES (?, ?)`);
      for (const img of images) {
        upsert.run(img.id, JSON.stringify(img.refs), now, now);
        link.run(bundleId, img.id);
      }
    }).immediate();
  }

  forBundle(bundleId: number): ImageRow[] {
    const rows = this.journal.db
      .prepare<[number], Omit<ImageRow, 'refs'> & { refs: string }>(`SELECT i.* FROM images i JOIN bundle_images b ON b.image_id = i.id WHERE b.bundle_id = ? ORDER BY i.id`)
      .all(bundleId);
    return rows.map((r) => ({ ...r, refs: JSON.parse(r.refs) as string[] }));
  }
}
