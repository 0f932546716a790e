/**
 * Split bundles in an inbox: the index `<stem>.airlock.parts` is the unit of
 * work, and it is ready only once every part it lists is there and complete
 * by the source's rule. Until then the set waits, and so do parts whose
 * index has not arrived yet (parts may come in any order, over days).
 * Shared by the folder source and the FTP spool, which differ only in what
 * "complete" means for one file.
 */
import { basename } from 'node:path';
import { isPartsIndex, partNameOf, readPartsIndex, type PartRecord } from '../../bundle/parts.js';
import { asAirlockError, type AirlockError } from '../../errors/index.js';
import type { InboxFile } from './inbox-file.js';

export type InboxItem =
  /** A whole bundle file, complete. */
  | { kind: 'bundle'; file: InboxFile }
  /** An index and every part it lists, each complete and at least its listed size. */
  | { kind: 'parts'; index: InboxFile; parts: InboxFile[]; label: string }
  /** An index whose parts are not all there: `missing` are absent, `arriving` present but not complete or short. */
  | { kind: 'waiting'; index: InboxFile; present: InboxFile[]; missing: PartRecord[]; arriving: PartRecord[]; label: string }
  /** A part that no index in the folder lists (its index has not come yet, or lists fewer parts). */
  | { kind: 'lone'; file: InboxFile }
  /** An index that does not read (cut short, or damaged). */
  | { kind: 'bad-index'; file: InboxFile; error: AirlockError }
  /** A trust metadata file for a host with a root of trust (root, targets, snapshot, timestamp), complete. */
  | { kind: 'trust'; file: InboxFile };

/**
 * Trust metadata as a vendor's repository names it: `root.json` and `N.root.json`,
 * `targets.json`, `snapshot.json`, `timestamp.json`, each also with a prefix of the sender's
 * (`acme.timestamp.json`), so that several files of one kind can wait side by side.
 */
export const isTrustMetadataName = (name: string): boolean => /^([A-Za-z0-9_-]+\.)?(\d+\.root|root|targets|snapshot|timestamp)\.json$/.test(name);

/** File names the agent takes: bundles, part indexes and parts; never hidden ones (an upload in progress). */
export const isInboxName = (name: string): boolean =>
  !name.startsWith('.') && (name.endsWith('.airlock') || isPartsIndex(name) || partNameOf(name) !== null || isTrustMetadataName(name));

/**
 * Sorts the inbox files of one folder into items. `complete(f)` says whether
 * the source counts the file as whole (and returns it with its marker), or
 * undefined while it is still arriving; it must not change state (it is
 * asked more than once per file).
 */
export async function gatherItems(files: InboxFile[], complete: (f: InboxFile) => InboxFile | undefined): Promise<InboxItem[]> {
  const byName = new Map(files.map((f) => [f.name, f]));
  const items: InboxItem[] = [];
  const claimed = new Set<string>();

  for (const f of files) {
    if (isTrustMetadataName(f.name)) {
      const c = complete(f);
      if (c) items.push({ kind: 'trust', file: c });
      continue;
    }
    if (f.name.endsWith('.airlock')) {
      const c = complete(f);
      if (c) items.push({ kind: 'bundle', file: c });
      continue;
    }
    if (!isPartsIndex(f.name)) continue;
    const index = complete(f);
    if (!index) continue;
    let listed: PartRecord[];
    let label: string;
    try {
      const parsed = await readPartsIndex(index.path);
      listed = parsed.index.parts;
      label = `${parsed.index.name} ${parsed.index.version}`;
    } catch (e) {
      items.push({ kind: 'bad-index', file: index, error: asAirlockError(e) });
      continue;
    }
    const present: InboxFile[] = [];
    const missing: PartRecord[] = [];
    const arriving: PartRecord[] = [];
    for (const p of listed) {
      const file = byName.get(p.name);
      if (!file) {
        missing.push(p);
        continue;
      }
      claimed.add(p.name);
      const whole = complete(file);
      // Shorter than listed: still coming in, or cut short (the import would call it truncated).
      if (!whole || file.size < p.size) arriving.push(p);
      present.push(whole ?? file);
    }
    if (missing.length === 0 && arriving.length === 0) items.push({ kind: 'parts', index, parts: present, label });
    else items.push({ kind: 'waiting', index, present, missing, arriving, label });
  }
  for (const f of files) {
    const part = partNameOf(f.name);
    if (!part || claimed.has(f.name)) continue;
    // Listed by no index: lone, unless its index is there but not complete yet (then it waits with it).
    const indexFile = byName.get(basename(part.index));
    if (indexFile && !complete(indexFile)) continue;
    items.push({ kind: 'lone', file: f });
  }
  return items;
}
