import { lchown, open, rename, rm, writeFile } from 'node:fs/promises';
import type { StateOwner } from './state-files.js';
import { basename, dirname, join } from 'node:path';

async function syncPath(path: string): Promise<void> {
  const fd = await open(path, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

/** fsyncs a folder so that renames into it survive a power loss. */
export const syncDir: (dir: string) => Promise<void> = syncPath;

/** fsyncs a file's data through a fresh descriptor (the writer's is closed by then). */
export const syncFile: (path: string) => Promise<void> = syncPath;

/**
 * Writes `data` beside `path`, flushed, renames it into place and fsyncs the
 * folder: a reader sees the whole file or none, and after a power loss the
 * new file is there (the rename too, not only the bytes). The temporary file
 * is made new, never written through something left in its place; with
 * `owner` (a root command in a state dir), it is handed to that owner.
 */
export async function writeWhole(path: string, data: Buffer | string, mode = 0o644, owner?: StateOwner): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.partial`);
  try {
    await rm(tmp, { force: true });
    await writeFile(tmp, data, { mode, flush: true, flag: 'wx' });
    if (owner) await lchown(tmp, owner.uid, owner.gid);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dirname(path));
}
