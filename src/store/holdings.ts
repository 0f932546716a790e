import { stat } from 'node:fs/promises';
import type { Journal } from '../journal/journal.js';
import type { ContentStore } from './content-store.js';

export interface Holdings {
  /** Bundles imported here and not pruned since. */
  bundles: { name: string; version: string; manifestDigest: string }[];
  /** Bundle blobs in the content store at the size the journal gives, sorted by digest. */
  blobs: { digest: string; size: number }[];
  /** Blobs the journal knows that the store lacks, or holds at another size: left out. */
  absent: number;
}

/**
 * What this host holds, as a receipt tells it: read from the journal (one
 * read transaction) and checked against the store with stat. Only blobs a
 * bundle brought are listed: the store also keeps secret and config data
 * from deployments, whose digests must never leave the site. A blob whose
 * file is gone or has the wrong size is left out, so a delta never relies
 * on it; bytes are not hashed again, as at import (src/import/base-check.ts).
 */
export async function readHoldings(journal: Journal, store: ContentStore): Promise<Holdings> {
  const db = journal.db;
  const { bundles, known } = db.transaction(() => ({
    // A pruned bundle keeps its row but loses its blob links; one with no blobs is held all the same.
    bundles: db
      .prepare(
        `SELECT name, version, manifest_digest AS manifestDigest FROM bundles b
         WHERE EXISTS (SELECT 1 FROM bundle_blobs l WHERE l.bundle_id = b.id) OR json_array_length(json_extract(CAST(b.manifest AS TEXT), '$.blobs')) = 0`,
      )
      .all() as Holdings['bundles'],
    known: db.prepare(`SELECT digest, size FROM blobs WHERE digest IN (SELECT digest FROM bundle_blobs) ORDER BY digest`).all() as Holdings['blobs'],
  }))();
  const blobs: Holdings['blobs'] = [];
  for (const b of known) {
    try {
      const s = await stat(store.pathOf(b.digest));
      if (s.isFile() && s.size === b.size) blobs.push(b);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return { bundles, blobs, absent: known.length - blobs.length };
}
