import { stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Free space on the file system that holds a path. */
export interface FreeSpace {
  /** The folder measured: the path itself, or the nearest folder above it that exists. */
  dir: string;
  /** Bytes an unprivileged writer may still use (statfs bavail × bsize). */
  free: number;
  /** The file system's device, to tell when two paths share one (their needs add up). */
  dev: number;
}

/**
 * Free space where `path` is or will be: a folder not made yet (a state
 * dir, an engine's data root) is measured at the nearest one above it that
 * exists. Throws only when not even `/` can be read.
 */
export async function freeSpaceAt(path: string): Promise<FreeSpace> {
  let dir = path;
  for (;;) {
    try {
      const [fs, st] = await Promise.all([statfs(dir), stat(dir)]);
      return { dir, free: Number(fs.bavail) * Number(fs.bsize), dev: st.dev };
    } catch (e) {
      const parent = dirname(dir);
      if (parent === dir) throw e;
      dir = parent;
    }
  }
}
