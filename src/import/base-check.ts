import { stat } from 'node:fs/promises';
import { policyError } from '../errors/index.js';
import { baseBlobs, type BlobRecord, type Manifest } from '../bundle/manifest.js';
import type { ContentStore } from '../store/content-store.js';

export interface BaseCheck {
  /** Blobs the delta relies on without carrying them. */
  needed: number;
  neededBytes: number;
}

const human = (n: number): string => {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[i]}`;
};

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
    try {
      const s = await stat(store.pathOf(b.digest));
      if (!s.isFile() || s.size !== b.size) {
        lacking.push(b);
        damaged++;
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      lacking.push(b);
    }
  }
  const neededBytes = needed.reduce((n, b) => n + b.size, 0);
  if (lacking.length > 0 && m.base) {
    const base = `${m.base.name} ${m.base.version}`;
    const bytes = lacking.reduce((n, b) => n + b.size, 0);
    const blobs = `${lacking.length} ${lacking.length === 1 ? 'blob' : 'blobs'}`;
    throw policyError(
      `${m.name} ${m.version} is a delta of ${base}, and this host lacks ${blobs} (${human(bytes)}) of the ${needed.length} it relies on from that base` +
        (damaged > 0 ? ` (${damaged} of them stored with the wrong size)` : ''),
      {
        reason: 'missing-base',
        subject: base,
        hint: `import ${base} here first (or any bundle holding those blobs), or ask the vendor for a full bundle of ${m.name} ${m.version}`,
      },
    );
  }
  return { needed: needed.length, neededBytes };
}
