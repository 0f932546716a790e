/**
 * The engine bundles' inputs, made by scripts/engine-bundles from Debian's
 * packages (cached): the package form (deb-26, and deb-26-missing without
 * containerd) and Docker's static archive layout (static-26, static-28).
 * Also small hand-made archives and packages for the refusals.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { REPO } from './fixtures.js';

export const ENGINE_FIXTURE_NAMES = ['deb-26', 'deb-26-missing', 'static-26', 'static-28'] as const;
export type EngineFixtureName = (typeof ENGINE_FIXTURE_NAMES)[number];

/** One fixture: its path and the engine version its dockerd reports. */
export interface EngineFixture {
  path: string;
  version: string;
}

let made: Record<EngineFixtureName, EngineFixture> | string | undefined;

/**
 * The fixtures, made on the first call; outside CI, why they cannot be made
 * here (for a skip). Under CI a missing fixture fails the test, never skips it.
 */
export function engineFixtures(): Record<EngineFixtureName, EngineFixture> | string {
  if (made !== undefined) return made;
  const r = spawnSync(join(REPO, 'scripts/engine-bundles'), [], { encoding: 'utf8' });
  const found: Partial<Record<EngineFixtureName, EngineFixture>> = {};
  for (const line of r.stdout.split('\n')) {
    const [name, path, version] = line.split(' ');
    if (name && path && version && (ENGINE_FIXTURE_NAMES as readonly string[]).includes(name)) found[name as EngineFixtureName] = { path, version };
  }
  const missing = ENGINE_FIXTURE_NAMES.filter((n) => !found[n]);
  if (r.status !== 0 || missing.length > 0) {
    const why = `scripts/engine-bundles (exit ${r.status}) did not make ${missing.join(', ') || 'its fixtures'}: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`;
    if (process.env.CI === 'true') throw new Error(why);
    made = why;
  } else made = found as Record<EngineFixtureName, EngineFixture>;
  return made;
}

/** A small real ELF executable of this machine, to stand for each engine binary in hand-made archives. */
export const SMALL_ELF = '/usr/bin/true';

export type ArchiveEntry = { name: string; type: 'file'; data: Buffer } | { name: string; type: 'directory' } | { name: string; type: 'symlink' | 'link'; linkname: string };

/** Writes a gzip-compressed tar of `entries`, in order, as Docker's static archive is. */
export async function writeStaticArchive(path: string, entries: ArchiveEntry[]): Promise<string> {
  const pack = tar.pack();
  const writing = pipeline(pack as unknown as NodeJS.ReadableStream, createGzip(), createWriteStream(path));
  for (const e of entries) {
    await new Promise<void>((res, rej) => {
      const done = (err?: Error | null) => (err ? rej(err) : res());
      if (e.type === 'file') pack.entry({ name: e.name, type: 'file', mode: 0o755, size: e.data.length }, e.data, done);
      else if (e.type === 'directory') pack.entry({ name: e.name, type: 'directory', mode: 0o755 }, done);
      else pack.entry({ name: e.name, type: e.type, linkname: e.linkname, mode: 0o777 }, done);
    });
  }
  pack.finalize();
  await writing;
  return path;
}

/** A real Debian package built with dpkg-deb: `name`, `version`, `architecture`, and one small file. */
export async function buildDeb(dir: string, name: string, version: string, architecture: string): Promise<string> {
  const root = join(dir, `${name}-root`);
  await mkdir(join(root, 'DEBIAN'), { recursive: true });
  await mkdir(join(root, 'usr/share/doc', name), { recursive: true });
  await writeFile(join(root, 'usr/share/doc', name, 'README'), `${name} ${version}\n`);
  await writeFile(join(root, 'DEBIAN/control'), `Package: ${name}\nVersion: ${version}\nArchitecture: ${architecture}\nMaintainer: airlock tests <tests@example.invalid>\nDescription: a test package\n`);
  const out = join(dir, `${name}_${version}_${architecture}.deb`);
  execFileSync('dpkg-deb', ['--build', '--root-owner-group', root, out], { stdio: 'ignore' });
  return out;
}
