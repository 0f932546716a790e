import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { EngineRecord } from '../bundle/manifest-format.js';

/**
 * Runs `fn` with the record's package files under their own names: apt takes
 * a local package only by a path that ends in `.deb`, and the content store
 * names blobs by their digest. The names are links in a private temp folder,
 * removed after.
 */
export async function withPackageFiles<T>(record: EngineRecord, blobPath: (digest: string) => string, fn: (files: string[]) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-engine-packages-'));
  try {
    const files: string[] = [];
    for (const f of record.files) {
      // The manifest's schema allows only a plain file name here; basename keeps a link inside the folder whatever it says.
      const link = join(dir, basename(f.path));
      await symlink(blobPath(f.digest), link);
      files.push(link);
    }
    return await fn(files);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
