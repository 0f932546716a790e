import { copyFile, link, mkdtemp, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { EngineRecord } from '../bundle/manifest-format.js';

/**
 * Runs `fn` with the record's package files under their own names: apt takes
 * a local package only by a path that ends in `.deb`, and the content store
 * names blobs by their digest. The names are hard links (apt does not take a
 * symbolic one) in a private folder beside the blobs, removed after.
 */
export async function withPackageFiles<T>(record: EngineRecord, blobPath: (digest: string) => string, fn: (files: string[]) => Promise<T>): Promise<T> {
  const first = record.files[0];
  // Beside the blobs' folder: the same file system, so a hard link works.
  const dir = await mkdtemp(join(dirname(dirname(blobPath(first?.digest ?? ''))), 'engine-packages-'));
  try {
    const files: string[] = [];
    for (const f of record.files) {
      // The manifest's schema allows only a plain file name here; basename keeps a link inside the folder whatever it says.
      const at = join(dir, basename(f.path));
      await link(blobPath(f.digest), at).catch(() => copyFile(blobPath(f.digest), at));
      files.push(at);
    }
    return await fn(files);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
