/** Engine records and their blob files for the host-side engine tests, made from real files. */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { STATIC_ENGINE_FILES, type EngineRecord } from '../../src/bundle/manifest-format.js';

export interface EngineBlobs {
  record: EngineRecord;
  /** Where the content store would keep each blob: `blobDir/<hex>`. */
  blobPath: (digest: string) => string;
}

/** A static engine record of `version` for the 8 files `sourceOf(name)` names, each copied as a blob into `blobDir`. */
export async function staticEngineBlobs(version: string, blobDir: string, sourceOf: (name: string) => string): Promise<EngineBlobs> {
  await mkdir(blobDir, { recursive: true });
  const files: EngineRecord['files'] = [];
  for (const name of STATIC_ENGINE_FILES) {
    const src = sourceOf(name);
    const bytes = await readFile(src);
    const hex = createHash('sha256').update(bytes).digest('hex');
    await copyFile(src, join(blobDir, hex));
    files.push({ path: name, digest: `sha256:${hex}`, size: bytes.length, mode: (await stat(src)).mode & 0o777 });
  }
  return {
    record: { version, form: 'static', platform: { os: 'linux', architecture: 'amd64' }, libc: { kind: 'glibc', minimum: '2.34' }, files },
    blobPath: (digest) => join(blobDir, digest.slice('sha256:'.length)),
  };
}
