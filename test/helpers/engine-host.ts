/** Engine records and their blob files for the host-side engine tests, made from real files. */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, stat } from 'node:fs/promises';
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

/** Each .deb of a folder copied as a blob into `blobDir`, with the package file name a record keeps as its `path`. */
export async function packageBlobs(debDir: string, blobDir: string): Promise<{ path: string; name: string }[]> {
  await mkdir(blobDir, { recursive: true });
  const out: { path: string; name: string }[] = [];
  for (const name of (await readdir(debDir)).filter((n) => n.endsWith('.deb')).sort()) {
    const hex = createHash('sha256')
      .update(await readFile(join(debDir, name)))
      .digest('hex');
    await copyFile(join(debDir, name), join(blobDir, hex));
    out.push({ path: join(blobDir, hex), name });
  }
  return out;
}
