/**
 * The order the inbox is taken in: the versions of one bundle oldest first,
 * whatever their file names. By name, `demo-1.0.100` comes before
 * `demo-1.0.91`, and a host that has a version refuses an older one as a
 * downgrade: a batch dropped together would quarantine good bundles. Name
 * and version come from the bundle's first entry (a split set's index),
 * unchecked: they only order the work, the import checks everything. An
 * item whose version cannot be read is ordered by its file name, numbers
 * compared as numbers.
 */
import semver from 'semver';
import { openBundleFile, readBundleHead } from '../../bundle/reader.js';
import type { InboxItem } from './part-sets.js';

interface Labelled {
  item: InboxItem;
  file: string;
  bundle?: { name: string; version: string };
}

const byNumbers = new Intl.Collator('en', { numeric: true }).compare;

export async function inVersionOrder(items: InboxItem[]): Promise<InboxItem[]> {
  // Trust metadata first, in the order a TUF client takes it: a bundle beside it may need the keys it brings.
  const trust = items.filter((i): i is Extract<InboxItem, { kind: 'trust' }> => i.kind === 'trust').sort((a, b) => trustRank(a.file.name) - trustRank(b.file.name) || byNumbers(a.file.name, b.file.name));
  const labelled: Labelled[] = [];
  for (const item of items.filter((i) => i.kind !== 'trust')) {
    const file = item.kind === 'parts' || item.kind === 'waiting' ? item.index.name : item.file.name;
    const bundle = await bundleOf(item);
    labelled.push(bundle ? { item, file, bundle } : { item, file });
  }
  // Unread items sort by file name after every bundle name: the key never collides with one.
  const group = (l: Labelled) => (l.bundle ? `0${l.bundle.name}` : `1${l.file}`);
  labelled.sort((a, b) => {
    const g = byNumbers(group(a), group(b));
    if (g !== 0) return g;
    if (a.bundle && b.bundle) return semver.compare(a.bundle.version, b.bundle.version) || byNumbers(a.file, b.file);
    return byNumbers(a.file, b.file);
  });
  return [...trust, ...labelled.map((l) => l.item)];
}

/** Roots by version, then targets, snapshot, timestamp. */
function trustRank(name: string): number {
  const root = /(?:^|\.)(\d+)\.root\.json$/.exec(name);
  if (root) return Number(root[1]);
  const order = ['root.json', 'targets.json', 'snapshot.json', 'timestamp.json'];
  return 1e9 + order.findIndex((o) => name === o || name.endsWith(`.${o}`));
}

async function bundleOf(item: InboxItem): Promise<{ name: string; version: string } | undefined> {
  if (item.kind === 'parts' || item.kind === 'waiting') {
    const at = item.label.lastIndexOf(' ');
    return labelOf(item.label.slice(0, at), item.label.slice(at + 1));
  }
  if (item.kind !== 'bundle') return undefined;
  try {
    const head = await readBundleHead(await openBundleFile(item.file.path));
    const m = JSON.parse(head.manifestBytes.toString('utf8')) as { name?: unknown; version?: unknown };
    return labelOf(m.name, m.version);
  } catch {
    return undefined;
  }
}

const labelOf = (name: unknown, version: unknown): { name: string; version: string } | undefined =>
  typeof name === 'string' && typeof version === 'string' && semver.valid(version) ? { name, version } : undefined;
