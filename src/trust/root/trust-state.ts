/**
 * A host's root of trust and the metadata it has taken since: the installed root
 * (`TRUST_DIR/root.json`, put there by whoever installs the host) and, in the state dir's
 * `trust/` folder, apart from the journal, every root since, the targets, snapshot and
 * timestamp. Loading re-checks the whole chain from the installed root, so a planted file in
 * the state dir is refused, not believed. The folder is small and is the host's memory of
 * versions: losing it lets older (unexpired) metadata in again, so it is backed up with
 * /etc/airlock (docs/trust.md).
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import { writeWhole } from '../../store/durable.js';
import { adopt, stateOwnerOfSync } from '../../store/state-files.js';
import { dirname, join } from 'node:path';
import semver from 'semver';
import { policyError, trustError } from '../../errors/index.js';
import { acceptMetadata, signersOf, type AcceptOptions, type Accepted, type HeldMetadata } from './accept.js';
import { labelOf, readMetadataFile, ROOT_FILE, versionedRootFile, versionOfRootFileName, type MetadataFile } from './metadata-file.js';

export { ROOT_FILE };
import { releaseRolesOf, type ReleaseRoles } from './release-roles.js';
import { airlockTimestampFields, type AirlockTimestampFields } from './timestamp-fields.js';

/** Tolerance for a timestamp's issue time ahead of the host clock. */
export const DEFAULT_FUTURE_TOLERANCE_MS = 5 * 60 * 1000;

export const trustStateDirIn = (stateDir: string): string => join(stateDir, 'trust');

const ROOTS_DIR = 'roots';

/** A root must carry its own root role's threshold of signatures (TUF 5.2), the installed one too. */
export function checkSelfSigned(root: HeldMetadata['root']): void {
  const s = signersOf(root.meta.md, 'root', root.meta.md);
  if (s.valid.length >= s.threshold) return;
  throw trustError(`${labelOf(root)} (${root.source}) is signed by ${s.valid.length} of the ${s.threshold} root keys it names itself`, {
    reason: 'root-below-threshold',
    subject: root.source,
    hint: 'a root needs the threshold of its own root keys: have more of them sign it (airlock trust sign FILE --key KEY)',
  });
}

export interface TrustStateOptions {
  now?: Date;
  futureToleranceMs?: number;
}

export class TrustState {
  private roles: ReleaseRoles | undefined;

  private constructor(
    /** Where the installed root lies. */
    readonly trustDir: string,
    /** The state dir's `trust/` folder. */
    readonly dir: string,
    private heldMetadata: HeldMetadata,
  ) {}

  get held(): HeldMetadata {
    return this.heldMetadata;
  }

  /** Whether `trustDir` holds a root: a host in root mode. */
  static installedIn(trustDir: string): boolean {
    return existsSync(join(trustDir, ROOT_FILE));
  }

  /** The installed root, then what the state dir holds, every signature checked again. */
  static load(trustDir: string, stateDir: string): TrustState {
    const installed = readMetadataFile(join(trustDir, ROOT_FILE));
    if (installed.meta.kind !== 'root') throw trustError(`${installed.source} holds ${installed.meta.kind} metadata, not a root`, { reason: 'metadata-malformed', subject: installed.source });
    const root = installed as HeldMetadata['root'];
    checkSelfSigned(root);
    const dir = trustStateDirIn(stateDir);
    const files: MetadataFile[] = [];
    const rootsDir = join(dir, ROOTS_DIR);
    if (existsSync(rootsDir)) {
      for (const name of readdirSync(rootsDir)) {
        if ((versionOfRootFileName(name) ?? 0) > root.meta.md.signed.version) files.push(readMetadataFile(join(rootsDir, name)));
      }
    }
    for (const kind of ['targets', 'snapshot', 'timestamp']) {
      const path = join(dir, `${kind}.json`);
      if (existsSync(path)) files.push(readMetadataFile(path));
    }
    const state = new TrustState(trustDir, dir, { root, roots: [root] });
    try {
      state.heldMetadata = state.accept(files, { now: new Date(), futureToleranceMs: 0, reload: true }).held;
    } catch (e) {
      throw trustError(`the trust state in ${dir} does not follow from the installed root ${installed.source}: ${(e as Error).message}`, {
        reason: 'trust-state-corrupt',
        subject: dir,
        hint: 'someone changed files there; restore the folder from backup, or remove it to start again from the installed root (docs/trust.md)',
      });
    }
    return state;
  }

  private accept(files: MetadataFile[], opts: AcceptOptions): Accepted {
    return acceptMetadata(this.heldMetadata, files, opts, (f) => void releaseRolesOf(f.meta.md, f.source));
  }

  /**
   * Checks and takes new metadata files, all or nothing, and writes what changed to the state
   * dir (a root command hands what it makes there to the state dir's owner: the agent's user).
   */
  async update(files: MetadataFile[], opts: TrustStateOptions = {}): Promise<Accepted> {
    const result = this.accept(files, { now: opts.now ?? new Date(), futureToleranceMs: opts.futureToleranceMs ?? DEFAULT_FUTURE_TOLERANCE_MS });
    const owner = stateOwnerOfSync(dirname(this.dir));
    for (const dir of [this.dir, join(this.dir, ROOTS_DIR)]) {
      if (!existsSync(dir)) {
        await mkdir(dir, { recursive: true, mode: 0o755 });
        await adopt(dir, owner);
      }
    }
    for (const f of result.taken) {
      if (f.meta.kind === 'root') await writeWhole(join(this.dir, ROOTS_DIR, versionedRootFile(f.meta.md.signed.version)), f.bytes, 0o644, owner);
    }
    for (const f of result.taken) await writeWhole(join(this.dir, `${f.meta.kind}.json`), f.bytes, 0o644, owner);
    // Held metadata a root rotation ended trust in leaves the held set on disk too (kept aside, for the record).
    for (const kind of ['targets', 'snapshot', 'timestamp'] as const) {
      if (this.heldMetadata[kind] && !result.held[kind]) await rename(join(this.dir, `${kind}.json`), join(this.dir, `${kind}.json.dropped`));
    }
    this.heldMetadata = result.held;
    this.roles = undefined;
    return result;
  }

  /**
   * The release roles, once the held metadata is whole and current: a root and targets not
   * expired, and (where a timestamp is held) the timestamp, snapshot and targets that name each
   * other. Anything less is the host's trust being stale, not the bundle's fault.
   */
  releaseRoles(now: Date = new Date()): ReleaseRoles {
    const h = this.heldMetadata;
    const expired = ([h.root, h.targets, h.snapshot] as (MetadataFile | undefined)[]).filter((f): f is MetadataFile => f !== undefined && f.meta.md.signed.isExpired(now));
    if (expired.length > 0) {
      throw trustError(`this host's trust metadata expired: ${expired.map((f) => `${labelOf(f)} at ${f.meta.md.signed.expires}`).join(', ')}`, {
        reason: 'trust-expired',
        subject: expired[0]!.source,
        hint: 'the vendor must send current trust metadata (airlock trust update FILES, or through the inbox); no bundle is taken until then',
      });
    }
    if (!h.targets) {
      throw trustError(`this host holds root v${h.root.meta.md.signed.version} but no targets metadata: no release key is trusted yet`, {
        reason: 'no-targets',
        subject: this.dir,
        hint: "put the vendor's targets.json (with snapshot.json and timestamp.json) in the inbox or run airlock trust update FILES",
      });
    }
    this.checkConsistent();
    this.roles ??= releaseRolesOf(h.targets.meta.md, h.targets.source);
    return this.roles;
  }

  /** TUF's defence against mix-and-match: the timestamp names the snapshot held, which names the targets held. */
  private checkConsistent(): void {
    const { timestamp, snapshot, targets } = this.heldMetadata;
    if (!timestamp && !snapshot) return;
    const problems: string[] = [];
    if (timestamp && snapshot?.meta.md.signed.version !== timestamp.meta.md.signed.snapshotMeta.version) {
      problems.push(`${labelOf(timestamp)} names snapshot v${timestamp.meta.md.signed.snapshotMeta.version}, this host holds ${snapshot ? labelOf(snapshot) : 'none'}`);
    }
    const wanted = snapshot?.meta.md.signed.meta['targets.json']?.version;
    if (snapshot && wanted !== targets?.meta.md.signed.version) problems.push(`${labelOf(snapshot)} names targets v${wanted}, this host holds ${targets ? labelOf(targets) : 'none'}`);
    if (problems.length === 0) return;
    throw trustError(`this host's trust metadata is incomplete: ${problems.join('; ')}`, {
      reason: 'metadata-incomplete',
      subject: this.dir,
      hint: 'the rest is probably still on its way: the vendor sends targets, snapshot and timestamp together; no bundle is taken until they match',
    });
  }

  /** The timestamp's statement, where one is held. */
  freshness(): (AirlockTimestampFields & { version: number; expires: string }) | undefined {
    const t = this.heldMetadata.timestamp;
    return t ? { ...airlockTimestampFields(t), version: t.meta.md.signed.version, expires: t.meta.md.signed.expires } : undefined;
  }

  /**
   * Refuses a bundle older than the held timestamp says is current, or of a name it does not
   * list; an expired timestamp stops every bundle (the host cannot know what is current). An
   * operator's explicit downgrade (`--allow-downgrade`) passes, as rollback does.
   */
  checkFresh(manifest: { name: string; version: string; engine?: unknown }, now: Date, allowOlder: boolean): void {
    const t = this.heldMetadata.timestamp;
    if (!t) return;
    const f = airlockTimestampFields(t);
    const label = `timestamp v${t.meta.md.signed.version} (issued ${f.issued})`;
    if (t.meta.md.signed.isExpired(now)) {
      throw trustError(`${label} expired at ${t.meta.md.signed.expires}: this host cannot tell which releases are current`, {
        reason: 'timestamp-expired',
        subject: t.source,
        hint: 'the vendor must send a new timestamp (airlock trust timestamp); the channel may be held back (a freeze)',
      });
    }
    if (allowOlder) return;
    const current = f.bundles[manifest.name];
    if (current === undefined) {
      throw policyError(`bundle ${manifest.name} ${manifest.version} is not listed by ${label}: the vendor does not vouch for it as current`, {
        reason: 'not-in-timestamp',
        subject: `${manifest.name} ${manifest.version}`,
        hint: `the vendor's timestamp names ${Object.keys(f.bundles).join(', ') || 'no bundle'}; a name it leaves out may be an old release replayed`,
      });
    }
    if (semver.lt(manifest.version, current)) {
      throw policyError(`bundle ${manifest.name} ${manifest.version} is older than ${current}, which ${label} names as current`, {
        reason: 'superseded',
        subject: `${manifest.name} ${manifest.version}`,
        hint: "an old release replayed, or held back for this one; go back with 'airlock rollback', or --allow-downgrade if you really mean it",
      });
    }
  }
}
