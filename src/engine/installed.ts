/**
 * Which engine the host has now: the static form's `current` link and the
 * `engine.json` airlock writes beside the binaries, or a distribution package
 * of the engine that dpkg says is installed.
 */
import { spawnSync } from 'node:child_process';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { EngineForm, EngineRecord } from '../bundle/manifest-format.js';
import { configError } from '../errors/index.js';
import type { EngineHostPaths } from './host-paths.js';

export interface InstalledEngine {
  /** `rpm` only as a form the journal may name; this airlock finds the static and the deb forms. */
  form: EngineForm;
  /** Static: the version the engine reports (the bundle's `engine.version`). Deb: the package's version (`26.1.5+dfsg1-9`). */
  version: string;
  /** Static: the version folder `current` points at. */
  dir?: string;
  /** Deb: the package that carries dockerd (`docker.io`, `docker-ce`). */
  package?: string;
}

/** What airlock writes as `engine.json` in a version folder: the record's fields that say which engine the folder holds. */
export interface EngineFolderRecord {
  version: string;
  form: 'static';
  platform: EngineRecord['platform'];
  files: { path: string; digest: string; size: number; mode: number }[];
}

export const ENGINE_FOLDER_RECORD = 'engine.json';
/** A folder being filled: never an engine. */
export const PARTIAL_SUFFIX = '.tmp';
/** The packages that carry dockerd, Debian's first. */
const ENGINE_PACKAGES = ['docker.io', 'docker-ce'] as const;

export function folderRecordOf(record: EngineRecord): EngineFolderRecord {
  return {
    version: record.version,
    form: 'static',
    platform: record.platform,
    files: record.files.map((f) => ({ path: f.path, digest: f.digest, size: f.size, mode: f.mode })),
  };
}

/** A version folder's `engine.json`, or undefined when it has none or one that does not parse. */
export async function readFolderRecord(dir: string): Promise<EngineFolderRecord | undefined> {
  try {
    const parsed = JSON.parse(await readFile(join(dir, ENGINE_FOLDER_RECORD), 'utf8')) as Partial<EngineFolderRecord>;
    if (parsed.form !== 'static' || typeof parsed.version !== 'string' || !Array.isArray(parsed.files)) return undefined;
    return parsed as EngineFolderRecord;
  } catch {
    return undefined;
  }
}

/** lstat, or undefined when nothing is there. */
export async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * The version folder `current` points at, by name; undefined when there is no
 * `current`. Refuses a `current` that is not a link, or a link that leads
 * anywhere but to a real folder directly in `engineDir` (someone else put it there).
 */
export async function currentTarget(paths: EngineHostPaths): Promise<string | undefined> {
  const st = await lstatOrUndefined(paths.currentLink);
  if (!st) return undefined;
  if (!st.isSymbolicLink()) throw layoutUnsafe(paths.currentLink, 'is not a link', `airlock keeps ${paths.currentLink} as a link to a version folder; move it away and run again`);
  const target = await readlink(paths.currentLink);
  const name = basename(target);
  if (target !== name && target !== join(paths.engineDir, name)) throw layoutUnsafe(paths.currentLink, `points outside ${paths.engineDir} (to ${target})`, 'remove the link and install the engine again');
  await requireVersionFolder(paths, name);
  return name;
}

/** Refuses a version folder that is a link or not a folder: airlock made none such. */
export async function requireVersionFolder(paths: EngineHostPaths, version: string): Promise<string> {
  const dir = join(paths.engineDir, version);
  const st = await lstatOrUndefined(dir);
  if (!st) throw configError(`${dir} does not exist: no engine ${version} is placed on this host`, { reason: 'engine-version-missing', subject: dir, hint: 'install the engine bundle of that version first' });
  if (st.isSymbolicLink() || !st.isDirectory()) throw layoutUnsafe(dir, st.isSymbolicLink() ? 'is a link' : 'is not a folder', `airlock makes its version folders itself; move ${dir} away and install again`);
  return dir;
}

export function layoutUnsafe(path: string, what: string, hint: string) {
  return configError(`${path} ${what}: airlock will not follow or replace it`, { reason: 'engine-layout-unsafe', subject: path, hint });
}

/** The static versions placed in `engineDir` (not `current`, not a folder still being filled), sorted. */
export async function staticVersions(paths: EngineHostPaths): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(paths.engineDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const versions: string[] = [];
  for (const name of names) {
    if (name === 'current' || name.endsWith(PARTIAL_SUFFIX) || name.startsWith('.')) continue;
    const st = await lstat(join(paths.engineDir, name));
    if (st.isDirectory() && (await readFolderRecord(join(paths.engineDir, name)))) versions.push(name);
  }
  return versions.sort();
}

/** The engine package dpkg says is installed, with its version; undefined without dpkg or such a package. */
export function installedEnginePackage(paths: EngineHostPaths): { package: string; version: string } | undefined {
  for (const pkg of ENGINE_PACKAGES) {
    const r = spawnSync('dpkg-query', [`--admindir=${paths.dpkgAdminDir}`, '-W', '-f', '${db:Status-Status} ${Version}', pkg], { encoding: 'utf8' });
    if (r.error || r.status !== 0) continue;
    const [status, version] = r.stdout.trim().split(' ');
    if (status === 'installed' && version) return { package: pkg, version };
  }
  return undefined;
}

/** The engine this host runs when started: airlock's static one first (its `current`), else an installed package. */
export async function currentEngine(paths: EngineHostPaths): Promise<InstalledEngine | undefined> {
  const version = await currentTarget(paths);
  if (version !== undefined) {
    const dir = join(paths.engineDir, version);
    const record = await readFolderRecord(dir);
    if (!record) throw layoutUnsafe(dir, `has no readable ${ENGINE_FOLDER_RECORD}`, 'install the engine bundle again');
    return { form: 'static', version: record.version, dir };
  }
  const pkg = installedEnginePackage(paths);
  return pkg && { form: 'deb', version: pkg.version, package: pkg.package };
}
