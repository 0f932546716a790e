/**
 * How a unit leaves the inbox for the agent's own folders (done/,
 * quarantine/): its files moved in by name, the reason file written beside
 * a quarantined one, and done/ kept to its newest bundles. Every move and
 * write goes through a HeldFolder (see held-folder.ts for why).
 */
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import YAML from 'yaml';
import type { AirlockError } from '../../errors/index.js';
import { isPartsIndex, partNameOf, PARTS_SUFFIX } from '../../bundle/parts.js';
import type { InboxFile } from './inbox-file.js';
import { HeldFolder, withFolder } from './held-folder.js';

/** The agent's folders in the inbox. */
export type OwnFolder = 'done' | 'quarantine';

/** One piece of work: a bundle file, or a split set named by its index. */
export interface Unit {
  /** The bundle file or the index: names the unit in logs, reason files and the queue. */
  main: InboxFile;
  /** Every file that leaves the inbox with it (main first). */
  files: InboxFile[];
}

/**
 * Moves a unit into the agent's folder `to` in `inboxDir` (then runs `then`
 * there); returns where its main file went. A split set keeps its names
 * (parts are found by name).
 */
export function moveUnit(inboxDir: string, to: OwnFolder, unit: Unit, then?: (folder: HeldFolder, movedTo: string) => Promise<void>): Promise<string> {
  return withFolder(inboxDir, to, async (folder) => {
    let movedTo: string;
    if (unit.files.length === 1 && unit.main.name.endsWith('.airlock')) movedTo = await moveInto(folder, unit.main);
    else {
      for (const f of unit.files.filter((f) => f !== unit.main)) await moveInto(folder, f, { replace: true });
      movedTo = await moveInto(folder, unit.main, { replace: true });
    }
    await then?.(folder, movedTo);
    return movedTo;
  });
}

/**
 * Moves a file (and its marker) into a held folder, under a new name if one
 * is taken (or over it, with `replace`); returns where it went.
 */
async function moveInto(folder: HeldFolder, file: Pick<InboxFile, 'path' | 'marker'>, opts: { replace?: boolean } = {}): Promise<string> {
  let name = basename(file.path);
  if (!opts.replace && (await folder.has(name))) name = `${basename(file.path, '.airlock')}.${new Date().toISOString().replace(/[:.]/g, '')}.airlock`;
  const movedTo = await folder.moveIn(file.path, name);
  if (file.marker) await rm(file.marker, { force: true });
  return movedTo;
}

/** Beside a quarantined file: why, for the operator. Written as a new file, never through what has that name. */
export async function writeReason(folder: HeldFolder, unit: Unit, err: AirlockError, movedTo: string, at: number): Promise<void> {
  const file = unit.main;
  const reason = {
    file: file.name,
    source: file.source,
    quarantined_at: new Date(at).toISOString(),
    error: err.kind,
    exit_code: err.exitCode,
    reason: err.reason,
    message: err.message,
    ...(err.subject ? { entry: err.subject } : {}),
    ...(err.hint ? { hint: err.hint } : {}),
    ...(unit.files.length > 1 ? { files: unit.files.map((f) => f.name) } : {}),
  };
  await folder.writeNew(`${basename(movedTo)}.reason`, YAML.stringify(reason));
}

/**
 * Keeps the newest `keep` bundles in done/; a split set (its index and the
 * parts it names) counts as one. The content store holds what they carried.
 */
export async function pruneDone(dir: string, keep: number): Promise<string[]> {
  const folder = await HeldFolder.openIn(dirname(dir), basename(dir), { create: false });
  if (!folder) return [];
  try {
    const files = await folder.files();
    const names = files.map((f) => f.name);
    const old = files.filter((f) => f.name.endsWith('.airlock') || isPartsIndex(f.name)).sort((a, b) => b.mtimeMs - a.mtimeMs).slice(keep);
    const removed: string[] = [];
    for (const u of old) {
      const stem = isPartsIndex(u.name) ? u.name.slice(0, -PARTS_SUFFIX.length) : undefined;
      const parts = stem === undefined ? [] : names.filter((n) => partNameOf(n)?.stem === stem);
      for (const n of [u.name, ...parts]) {
        await folder.remove(n);
        removed.push(join(dir, n));
      }
    }
    return removed;
  } finally {
    await folder.close();
  }
}
