/**
 * The static form on the host: each version in a folder of its own under
 * `engineDir`, and a `current` link to the one that runs, switched by one
 * atomic rename so that a crash leaves either the old link or the new.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { dirname, join } from 'node:path';
import { STATIC_ENGINE_FILES, type EngineRecord } from '../bundle/manifest-format.js';
import { integrityError, unsafeEntry, usageError } from '../errors/index.js';
import { syncDir, syncFile, writeWhole } from '../store/durable.js';
import type { EngineHostPaths } from './host-paths.js';
import { ENGINE_FOLDER_RECORD, PARTIAL_SUFFIX, currentTarget, folderRecordOf, layoutUnsafe, lstatOrUndefined, readFolderRecord, requireVersionFolder } from './installed.js';

/** A version becomes a folder name: no separators, no dot names, not `current`, not a partial folder. */
const VERSION_NAME = /^[A-Za-z0-9][A-Za-z0-9.+~_-]{0,127}$/;

export function checkVersionName(version: string): string {
  if (!VERSION_NAME.test(version) || version === 'current' || version.endsWith(PARTIAL_SUFFIX)) {
    throw usageError(`engine version '${version}' cannot name a folder: letters, digits and . + ~ _ - only`, { reason: 'bad-engine-version', subject: version });
  }
  return version;
}


export interface PlaceResult {
  dir: string;
  /** `unchanged`: the folder held this engine already. `replaced`: it held other bytes, now the record's. */
  outcome: 'placed' | 'unchanged' | 'replaced';
}

/** Whether a version folder holds exactly the record's engine (its `engine.json`, and each binary there, a file of the recorded size). */
async function folderHolds(dir: string, record: EngineRecord): Promise<boolean> {
  const found = await readFolderRecord(dir);
  if (!found || JSON.stringify(found) !== JSON.stringify(folderRecordOf(record))) return false;
  for (const f of record.files) {
    const st = await lstatOrUndefined(join(dir, f.path));
    if (!st?.isFile() || st.size !== f.size) return false;
  }
  return true;
}

/** The record's 8 binaries, each once; anything else in it is refused. */
function staticFiles(record: EngineRecord) {
  if (record.form !== 'static') throw usageError(`engine ${record.version} is the ${record.form} form, not the static one`, { reason: 'engine-form' });
  const byName = new Map(record.files.map((f) => [f.path, f]));
  for (const f of record.files) {
    if (!(STATIC_ENGINE_FILES as readonly string[]).includes(f.path)) {
      throw unsafeEntry(`engine ${record.version} lists '${f.path}', which is not one of Docker's static binaries (${STATIC_ENGINE_FILES.join(', ')})`, { reason: 'extra-entry', subject: f.path });
    }
  }
  return STATIC_ENGINE_FILES.map((name) => {
    const f = byName.get(name);
    if (!f) throw integrityError(`engine ${record.version} lacks '${name}'`, { reason: 'missing-entry', subject: name });
    return f;
  });
}

/** Copies one blob to `dest`, hashing what it copies; refuses bytes that are not the recorded ones. */
async function copyChecked(from: string, dest: string, f: EngineRecord['files'][number]): Promise<void> {
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  await pipeline(createReadStream(from), tap, createWriteStream(dest, { flags: 'wx', mode: 0o600 }));
  const digest = `sha256:${hash.digest('hex')}`;
  if (digest !== f.digest || size !== f.size) {
    throw integrityError(`engine file '${f.path}' from ${from} is ${size} bytes with ${digest}; the bundle recorded ${f.size} bytes with ${f.digest}`, {
      reason: size !== f.size ? 'size-mismatch' : 'hash-mismatch',
      subject: f.path,
      hint: 'the content store holds damaged bytes: import the engine bundle again',
    });
  }
  await chmod(dest, f.mode & 0o7777);
  await syncFile(dest);
}

/**
 * Places the record's binaries in `engineDir/<version>`: copied from the
 * content store's blobs into `<version>.tmp`, each checked as it is copied,
 * then renamed into place. A folder that holds this engine already is kept;
 * one that holds anything else is replaced. A bad blob leaves nothing behind.
 */
export async function placeStaticEngine(record: EngineRecord, blobPath: (digest: string) => string, paths: EngineHostPaths): Promise<PlaceResult> {
  const version = checkVersionName(record.version);
  const files = staticFiles(record);
  const engineDirStat = await lstatOrUndefined(paths.engineDir);
  if (engineDirStat && (engineDirStat.isSymbolicLink() || !engineDirStat.isDirectory())) {
    throw layoutUnsafe(paths.engineDir, engineDirStat.isSymbolicLink() ? 'is a link' : 'is not a folder', `move ${paths.engineDir} away and install again`);
  }
  await mkdir(paths.engineDir, { recursive: true, mode: 0o755 });
  const dir = join(paths.engineDir, version);
  const existing = await lstatOrUndefined(dir);
  if (existing) {
    if (existing.isSymbolicLink() || !existing.isDirectory()) await requireVersionFolder(paths, version);
    if (await folderHolds(dir, record)) return { dir, outcome: 'unchanged' };
  }
  const tmp = dir + PARTIAL_SUFFIX;
  await rm(tmp, { recursive: true, force: true });
  try {
    await mkdir(tmp, { mode: 0o755 });
    await chmod(tmp, 0o755);
    for (const f of files) await copyChecked(blobPath(f.digest), join(tmp, f.path), f);
    await writeWhole(join(tmp, ENGINE_FOLDER_RECORD), JSON.stringify(folderRecordOf(record), null, 2) + '\n');
    await syncDir(tmp);
    if (existing) {
      // The old folder goes aside first: rename cannot replace a folder that is not empty.
      const aside = `${dir}.old-${process.pid}${PARTIAL_SUFFIX}`;
      await rename(dir, aside);
      await rename(tmp, dir);
      await rm(aside, { recursive: true, force: true });
    } else {
      await rename(tmp, dir);
    }
    await syncDir(paths.engineDir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return { dir, outcome: existing ? 'replaced' : 'placed' };
}

export interface SwitchResult {
  /** The version `current` pointed at before, if any. */
  previous: string | undefined;
  /** False when `current` already pointed at this version and the CLI link was in place. */
  changed: boolean;
  /** A `docker` that was not airlock's link, kept under this name. */
  savedCli?: string;
}

/** Replaces `link` with a link to `target` by one rename, so it is never missing. */
async function replaceLink(link: string, target: string): Promise<void> {
  const tmp = join(dirname(link), `.${process.pid}.${Date.now()}.link${PARTIAL_SUFFIX}`);
  await rm(tmp, { force: true });
  await symlink(target, tmp);
  try {
    await rename(tmp, link);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dirname(link));
}

/**
 * Points `current` at `version` (a folder placed before) and `docker` on the
 * PATH at `current/docker`. Refuses a `current` that is not a link and a
 * version folder that is one. A `docker` there that is not a link is kept
 * aside as `docker.airlock-saved-<time>` and reported.
 */
export async function switchCurrent(paths: EngineHostPaths, version: string): Promise<SwitchResult> {
  checkVersionName(version);
  await requireVersionFolder(paths, version);
  const previous = await currentTarget(paths);
  let changed = false;
  if (previous !== version) {
    await replaceLink(paths.currentLink, version);
    changed = true;
  }
  const cliTarget = join(paths.currentLink, 'docker');
  const cli = await lstatOrUndefined(paths.cliLink);
  let savedCli: string | undefined;
  if (!cli?.isSymbolicLink() || (await readlink(paths.cliLink)) !== cliTarget) {
    await mkdir(dirname(paths.cliLink), { recursive: true });
    if (cli && !cli.isSymbolicLink()) {
      if (cli.isDirectory()) throw layoutUnsafe(paths.cliLink, 'is a folder', `move ${paths.cliLink} away and run again`);
      savedCli = `${paths.cliLink}.airlock-saved-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      await rename(paths.cliLink, savedCli);
    }
    await replaceLink(paths.cliLink, cliTarget);
    changed = true;
  }
  return { previous, changed, ...(savedCli === undefined ? {} : { savedCli }) };
}
