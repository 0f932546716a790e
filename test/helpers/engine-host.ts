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

/** Where each of Docker's 8 static binaries is in a Debian root with docker.io installed (the matrix's cached roots). */
export function debianEngineFile(root: string, name: string, cli = '/usr/local/bin/docker'): string {
  const at: Record<string, string> = {
    containerd: 'usr/bin/containerd',
    'containerd-shim-runc-v2': 'usr/bin/containerd-shim-runc-v2',
    ctr: 'usr/bin/ctr',
    'docker-init': 'usr/bin/docker-init',
    'docker-proxy': 'usr/sbin/docker-proxy',
    dockerd: 'usr/sbin/dockerd',
    runc: 'usr/bin/runc',
  };
  // Debian's docker.io keeps its CLI in docker-cli, not in the cached roots: the machine's static CLI stands in.
  return name === 'docker' ? cli : join(root, at[name]!);
}
