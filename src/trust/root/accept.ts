/**
 * Taking new trust metadata over a one-way channel: TUF's client checks (specification, section
 * 5), applied to whatever files arrived rather than to files fetched on demand. Roots only along
 * an unbroken chain, each signed by its predecessor's root threshold and its own; targets,
 * snapshot and timestamp by the thresholds the newest root gives their roles; no version goes
 * back; nothing expired is taken; a timestamp issued in the future is refused. A batch is taken
 * whole or not at all.
 */
import type { Metadata, Root } from '@tufjs/models';

/** Anything `Key.verifySignature` checks: signed content and its signatures. */
type Signable = Parameters<Metadata<Root>['signed']['keys'][string]['verifySignature']>[0];
import { trustError } from '../../errors/index.js';
import { labelOf, type AnyMetadata, type MetadataFile, type MetadataKindName } from './metadata-file.js';
import { airlockTimestampFields } from './timestamp-fields.js';

type Of<K extends MetadataKindName> = MetadataFile<Extract<AnyMetadata, { kind: K }>>;

/** The metadata a host holds: always a root; the rest once the vendor sent them. */
export interface HeldMetadata {
  root: Of<'root'>;
  /** Every root since the installed one, by version: the chain that vouches for `root`. */
  roots: Of<'root'>[];
  targets?: Of<'targets'>;
  snapshot?: Of<'snapshot'>;
  timestamp?: Of<'timestamp'>;
}

export interface AcceptOptions {
  now: Date;
  /** How far a timestamp's issue time may lie ahead of this host's clock. */
  futureToleranceMs: number;
  /** Loading what this host already took: signatures and chain only, no clock or version checks. */
  reload?: boolean;
}

export interface Accepted {
  held: HeldMetadata;
  /** What changed, e.g. `root v3`, `timestamp v41`. */
  taken: MetadataFile[];
  /** Files identical to what is held. */
  unchanged: MetadataFile[];
}

const refuse = (reason: string, f: MetadataFile, message: string, hint: string) => trustError(`${labelOf(f)} (${f.source}): ${message}`, { reason, subject: f.source, hint });

/** Which of `role`'s keys in `root` signed `md` validly: TUF's own signature check, key by key, so a refusal can name them. */
export function signersOf(root: Metadata<Root>, role: string, md: Signable): { valid: string[]; keyIds: string[]; threshold: number } {
  const r = root.signed.roles[role];
  if (!r) return { valid: [], keyIds: [], threshold: Infinity };
  const valid = r.keyIDs.filter((id) => {
    const key = root.signed.keys[id];
    try {
      key?.verifySignature(md);
      return key !== undefined;
    } catch {
      return false;
    }
  });
  return { valid, keyIds: r.keyIDs, threshold: r.threshold };
}

function describeCount(s: { valid: string[]; keyIds: string[]; threshold: number }, role: string, root: Metadata<Root>): string {
  const missing = s.keyIds.filter((id) => !s.valid.includes(id));
  return `signed by ${s.valid.length} of the ${s.threshold} needed keys of role ${role} in root v${root.signed.version}${s.valid.length > 0 ? ` (${s.valid.map(short).join(', ')})` : ''}${missing.length > 0 ? `; not by ${missing.map(short).join(', ')}` : ''}`;
}

const short = (keyId: string): string => keyId.slice(0, 16);

function checkSignedBy(root: Metadata<Root>, role: string, f: MetadataFile, reason: string): void {
  const s = signersOf(root, role, f.meta.md);
  if (s.valid.length >= s.threshold) return;
  throw refuse(reason, f, describeCount(s, role, root), `have ${s.threshold} of role ${role}'s keys sign it (airlock trust sign FILE --key KEY); nothing was changed`);
}

function checkNotExpired(f: MetadataFile, opts: AcceptOptions): void {
  if (opts.reload || !f.meta.md.signed.isExpired(opts.now)) return;
  throw refuse('metadata-expired', f, `expired at ${f.meta.md.signed.expires}`, 'the vendor must issue it again with a later expiry; nothing was changed');
}

/** Same version: unchanged if the same bytes, a conflict otherwise; older: a rollback. */
function compareVersion(f: MetadataFile, held: MetadataFile | undefined, opts: AcceptOptions): 'newer' | 'same' {
  if (!held || opts.reload) return 'newer';
  const v = f.meta.md.signed.version;
  const h = held.meta.md.signed.version;
  if (v > h) return 'newer';
  if (v === h && f.bytes.equals(held.bytes)) return 'same';
  throw refuse(
    'metadata-rollback',
    f,
    v === h ? `this host holds another ${labelOf(held)} already: one of the two is not what the vendor issued` : `older than ${labelOf(held)}, which this host holds: metadata versions never go back`,
    'nothing was changed; if the vendor really reissued this version, that is a mistake on their side to report',
  );
}

function acceptRoots(held: HeldMetadata, roots: Of<'root'>[], opts: AcceptOptions, taken: MetadataFile[], unchanged: MetadataFile[]): HeldMetadata {
  let next = held;
  for (const f of [...roots].sort((a, b) => a.meta.md.signed.version - b.meta.md.signed.version)) {
    const current = next.root.meta.md;
    const v = f.meta.md.signed.version;
    if (v <= current.signed.version) {
      const ours = next.roots.find((r) => r.meta.md.signed.version === v);
      if (ours?.bytes.equals(f.bytes)) {
        unchanged.push(f);
        continue;
      }
      throw refuse('metadata-rollback', f, `this host holds root v${current.signed.version}${ours ? ` and another root v${v}` : ''}: roots never go back`, 'nothing was changed');
    }
    if (v !== current.signed.version + 1) {
      throw refuse('broken-root-chain', f, `does not follow root v${current.signed.version}, which this host holds: root v${current.signed.version + 1} is missing`, 'send every root in between, in one batch or before this one; nothing was changed');
    }
    const byOld = signersOf(current, 'root', f.meta.md);
    if (byOld.valid.length === 0) {
      throw refuse('broken-root-chain', f, `not signed by any root key of root v${current.signed.version}: it is not its successor`, 'a new root must be signed by the threshold of the root before it and of its own; nothing was changed');
    }
    if (byOld.valid.length < byOld.threshold) throw refuse('root-below-threshold', f, describeCount(byOld, 'root', current), 'a new root needs the threshold of the previous root keys; nothing was changed');
    checkSignedBy(f.meta.md, 'root', f, 'root-below-threshold');
    next = { ...next, root: f, roots: [...next.roots, f] };
    taken.push(f);
  }
  return next;
}

/**
 * A root that rotates a role's keys ends trust in what the old keys signed (TUF 5.3.11: how a
 * host recovers from a stolen timestamp or snapshot key that pushed versions far ahead).
 */
function dropRotated(held: HeldMetadata, previousRoot: Metadata<Root>): HeldMetadata {
  const next: HeldMetadata = { ...held };
  for (const kind of ['targets', 'snapshot', 'timestamp'] as const) {
    const f = next[kind];
    if (!f) continue;
    const before = previousRoot.signed.roles[kind]?.keyIDs.join(',');
    const now = held.root.meta.md.signed.roles[kind]?.keyIDs.join(',');
    if (before === now) continue;
    const s = signersOf(held.root.meta.md, kind, f.meta.md);
    if (s.valid.length < s.threshold) delete next[kind];
  }
  return next;
}

function checkTimestampFields(f: Of<'timestamp'>, held: HeldMetadata, opts: AcceptOptions): void {
  const fields = airlockTimestampFields(f);
  if (!opts.reload && Date.parse(fields.issued) > opts.now.getTime() + opts.futureToleranceMs) {
    throw refuse(
      'timestamp-from-future',
      f,
      `issued at ${fields.issued}, more than ${Math.round(opts.futureToleranceMs / 1000)} s after this host's clock (${opts.now.toISOString()})`,
      "check this host's clock (timedatectl); a timestamp from the future would freeze every later one out. Nothing was changed",
    );
  }
  const before = held.timestamp?.meta.md.signed.snapshotMeta.version ?? 0;
  if (!opts.reload && f.meta.md.signed.snapshotMeta.version < before) {
    throw refuse('metadata-rollback', f, `names snapshot v${f.meta.md.signed.snapshotMeta.version}, older than v${before} that the timestamp this host holds names`, 'nothing was changed');
  }
}

function checkSnapshotFields(f: Of<'snapshot'>, held: HeldMetadata, opts: AcceptOptions): void {
  const was = held.snapshot?.meta.md.signed.meta['targets.json']?.version ?? 0;
  const is = f.meta.md.signed.meta['targets.json']?.version;
  if (is === undefined) throw refuse('metadata-malformed', f, 'names no targets.json', 'nothing was changed');
  if (!opts.reload && is < was) throw refuse('metadata-rollback', f, `names targets v${is}, older than v${was} that the snapshot this host holds names`, 'nothing was changed');
}

/** Takes `files` onto `held`, all or nothing; throws a trust error naming the first file refused. */
export function acceptMetadata(held: HeldMetadata, files: MetadataFile[], opts: AcceptOptions, checkTargets: (f: Of<'targets'>) => void): Accepted {
  const taken: MetadataFile[] = [];
  const unchanged: MetadataFile[] = [];
  const byKind = <K extends MetadataKindName>(k: K) => files.filter((f) => f.meta.kind === k) as Of<K>[];
  for (const k of ['targets', 'snapshot', 'timestamp'] as const) {
    if (byKind(k).length > 1) throw refuse('metadata-malformed', byKind(k)[1]!, `a second ${k} in one batch`, 'send one of each kind at a time; nothing was changed');
  }
  let next = acceptRoots(held, byKind('root'), opts, taken, unchanged);
  if (next.root !== held.root) {
    next = dropRotated(next, held.root.meta.md);
    checkNotExpired(next.root, opts);
  }
  const rootMd = next.root.meta.md;
  const steps: { [K in 'targets' | 'snapshot' | 'timestamp']: (f: Of<K>) => void } = {
    targets: checkTargets,
    snapshot: (f) => checkSnapshotFields(f, next, opts),
    timestamp: (f) => checkTimestampFields(f, next, opts),
  };
  for (const kind of ['targets', 'snapshot', 'timestamp'] as const) {
    const f = byKind(kind)[0];
    if (!f) continue;
    checkSignedBy(rootMd, kind, f, 'metadata-below-threshold');
    if (compareVersion(f, next[kind], opts) === 'same') {
      unchanged.push(f);
      continue;
    }
    checkNotExpired(f, opts);
    (steps[kind] as (f: MetadataFile) => void)(f);
    next = { ...next, [kind]: f };
    taken.push(f);
  }
  return { held: next, taken, unchanged };
}
