import { policyError } from '../errors/index.js';
import { baseBlobs, baseLabel, isReceiptBase, type BaseRef, type BlobRecord, type Manifest } from '../bundle/manifest.js';
import type { ContentStore } from '../store/content-store.js';
import { formatBytes } from '../units/bytes.js';

export interface BaseCheck {
  /** Blobs the delta relies on without carrying them. */
  needed: number;
  neededBytes: number;
}


const deltaOf = (base: BaseRef): string =>
  isReceiptBase(base)
    ? `a delta built against what ${base.receipt.site} held at ${base.receipt.created} (receipt ${base.receipt.digest.slice(0, 'sha256:'.length + 12)})`
    : `a delta of ${baseLabel(base)}`;

function missingBaseHint(m: Manifest, base: BaseRef): string {
  const full = `a full bundle of ${m.name} ${m.version}`;
  if (!isReceiptBase(base)) return `import ${baseLabel(base)} here first (or any bundle holding those blobs), or ask the vendor for ${full}`;
  return (
    `this host is not ${base.receipt.site}, or lost those blobs since (a prune): import what ${base.receipt.site} held first, ` +
    `or send the vendor a receipt of this host ('airlock bundle receipt') for a delta against it, or ask for ${full}`
  );
}

/**
 * A delta bundle is imported only where the content store already holds
 * every blob it relies on without carrying. Checked after the signature and
 * before any payload is read, so a host without the base refuses the delta
 * having changed nothing.
 *
 * Each such blob must be in the store at its declared size. Its bytes are
 * not hashed again: the store only ever holds blobs that were hashed on the
 * way in (staged, verified, then renamed into place), and the engine checks
 * every layer against its diff id when the images are loaded.
 */
export async function checkBaseBlobs(m: Manifest, store: ContentStore): Promise<BaseCheck> {
  const needed = baseBlobs(m);
  const lacking: BlobRecord[] = [];
  let damaged = 0;
  for (const b of needed) {
    const held = await store.holding(b);
    if (held !== 'held') lacking.push(b);
    if (held === 'wrong-size') damaged++;
  }
  const neededBytes = needed.reduce((n, b) => n + b.size, 0);
  if (lacking.length > 0 && m.base) {
    const bytes = lacking.reduce((n, b) => n + b.size, 0);
    const blobs = `${lacking.length} ${lacking.length === 1 ? 'blob' : 'blobs'}`;
    throw policyError(
      `${m.name} ${m.version} is ${deltaOf(m.base)}, and this host lacks ${blobs} (${formatBytes(bytes)}) of the ${needed.length} it relies on from that ${isReceiptBase(m.base) ? 'receipt' : 'base'}` +
        (damaged > 0 ? ` (${damaged} of them stored with the wrong size)` : ''),
      { reason: 'missing-base', subject: baseLabel(m.base), hint: missingBaseHint(m, m.base) },
    );
  }
  return { needed: needed.length, neededBytes };
}
