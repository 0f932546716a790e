import { open } from 'node:fs/promises';

/** fsyncs a folder so that renames into it survive a power loss. */
export async function syncDir(dir: string): Promise<void> {
  const fd = await open(dir, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

/** fsyncs a file's data through a fresh descriptor (the writer's is closed by then). */
export async function syncFile(path: string): Promise<void> {
  const fd = await open(path, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}
