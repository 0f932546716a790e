import { BundleRecords } from '../journal/bundles.js';
import type { Journal } from '../journal/journal.js';
import type { ContentStore } from '../store/content-store.js';

export interface Holdings {
  /** Bundles imported here and not pruned since. */
  bundles: { name: string; version: string; manifestDigest: string }[];
  /** Bundle blobs in the content store at the size the journal gives, sorted by digest. */
  blobs: { digest: string; size: number }[];
  /** Blobs the journal knows that the store lacks, or holds at another size: left out. */
  absent: number;
}

/**
 * What this host holds, as a receipt tells it: the journal's bundles and
 * bundle blobs (never secret or config data, whose digests must not leave
 * the site), each blob checked against the store as import checks a delta's
 * base (src/import/base-check.ts). One missing or of another size is left
 * out, so a delta never relies on it.
 */
export async function readHoldings(journal: Journal, store: ContentStore): Promise<Holdings> {
  const { bundles, blobs: known } = new BundleRecords(journal).held();
  const blobs: Holdings['blobs'] = [];
  for (const b of known) if ((await store.holding(b)) === 'held') blobs.push(b);
  return { bundles, blobs, absent: known.length - blobs.length };
}
