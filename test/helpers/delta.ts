/** Shared by the delta and receipt tests: layered test projects, CLI builds and imports, and views of a host's state. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import tar from 'tar-stream';
import { makeProject, runCli, type Signer } from './fixtures.js';
import type { Manifest } from '../../src/bundle/manifest.js';
import { JournalReader } from './journal-read.js';

/** Fixed build time, so builds with the same inputs give the same bytes. */
export const EPOCH = { SOURCE_DATE_EPOCH: '1767225600' };
export const MiB = 1024 * 1024;

export const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/**
 * Projects, builds and imports of one test file: the app has a shared
 * busybox base layer and a small app layer that names the version, under
 * the file's own image repository prefix (tests share engines).
 */
export class DeltaBench {
  constructor(
    readonly dir: string,
    readonly signer: Signer,
    readonly repo: string,
  ) {}

  async project(version: string): Promise<string> {
    const dir = join(this.dir, `p-${version}`);
    await mkdir(dir, { recursive: true });
    await makeProject(dir, { version, repo: this.repo, expires: null });
    return dir;
  }

  /** Builds with the real CLI into `out`; returns the bundle's path. */
  async build(projectDir: string, out: string, extra: string[] = []): Promise<string> {
    const r = await runCli(['bundle', 'build', '-f', join(projectDir, 'bundle.yaml'), '--key', this.signer.keyPath, '-o', join(this.dir, out), '--json', ...extra], EPOCH);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    return (JSON.parse(r.stdout) as { path: string }).path;
  }

  importArgs(file: string, state: string, ...extra: string[]): string[] {
    return ['bundle', 'import', file, '--state', state, '--trust', this.signer.trustDir, '--json', ...extra];
  }
}

export interface Entry {
  name: string;
  type: string;
  data: Buffer;
}

/** A bundle's entries, read with tar-stream directly, independent of airlock's reader. */
export async function entries(path: string): Promise<Entry[]> {
  const out: Entry[] = [];
  const extract = tar.extract();
  createReadStream(path).pipe(extract as unknown as NodeJS.WritableStream);
  for await (const e of extract) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    out.push({ name: e.header.name, type: e.header.type, data: Buffer.concat(chunks) });
  }
  return out;
}

export const manifestOf = async (path: string): Promise<{ manifest: Manifest; bytes: Buffer }> => {
  const bytes = (await entries(path))[0]!.data;
  return { manifest: JSON.parse(bytes.toString()) as Manifest, bytes };
};

/** The content store's files with inode, mtime and size: equal listings mean nothing was touched. */
export async function storeListing(state: string): Promise<Map<string, { ino: number; mtimeMs: number; size: number }>> {
  const out = new Map<string, { ino: number; mtimeMs: number; size: number }>();
  const dir = join(state, 'blobs', 'sha256');
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const s = await stat(join(dir, name));
    out.set(name, { ino: s.ino, mtimeMs: s.mtimeMs, size: s.size });
  }
  return out;
}

/** A read-only view of a host's journal. */
export function journal(state: string) {
  const j = JournalReader.open(state);
  return {
    kinds: () => j.events().map((r) => r.kind),
    events: () => j.events({ kind: 'bundle.import' }).map(({ outcome, subject, reason }) => ({ outcome, subject, reason })),
    bundles: () => j.bundles().map(({ id, name, version }) => ({ id, name, version })),
    links: (id: number) => j.bundleBlobs().filter((l) => l.bundle_id === id).map((l) => l.digest),
    close: () => j.close(),
  };
}
