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
