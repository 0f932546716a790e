/**
 * The retention rule, as a pure function of what the journal knows. It says
 * what a host may drop: blobs from the content store, images airlock loaded
 * into the engine, and the blobs of stored bundles. It never decides from
 * the file system or the engine; the executor (prune.ts) does that part.
 *
 * What is kept, and why:
 *  - For each stack, the deployment it runs now (its newest committed one)
 *    and the newest committed deployments before it, until `keep` distinct
 *    states are kept. A rollback counts as the state it restored, so rolling
 *    back and forth between two releases does not push a third out. Every
 *    deployment walked on the way is kept, with the chain of deployments a
 *    rollback restored.
 *  - With keep >= 2, also the release before the one running: where a bare
 *    `airlock rollback STACK` goes.
 *  - Every deployment still `running` (an interrupted apply that recovery
 *    has yet to close), with what it needs.
 *  - Pending bundles: never committed, and newer than every release of that
 *    name that ever committed (or of a name nothing committed yet). An
 *    operator or the agent may apply them next. One older than a release
 *    that committed is superseded, attempted or not: applying it would be
 *    refused as a downgrade.
 *
 * A kept deployment needs: its bundle (every blob of the signed manifest),
 * the image ids its services were pinned to (in the engine, and the blobs to
 * load them again: config, manifest and layers, from whichever bundle
 * carries that image), and its secret and config data in the content store.
 * A kept bundle needs its blobs and its images. Anything else that the
 * journal knows of may go. Blobs are content-addressed and shared: a blob
 * that any kept thing needs stays, whatever else also used it.
 */
import type { ImageIdentity } from '../images/identity.js';
import semver from 'semver';
import { effectiveDeployment, restoredChain } from '../journal/rollback-chain.js';

export interface BundleFact {
  id: number;
  name: string;
  version: string;
  /** The blobs the signed manifest lists. */
  blobs: readonly { digest: string; size: number; kind: string }[];
  /** The images the manifest carries, each with every blob needed to load it again, and what identifies it in an engine. */
  images: readonly (ImageIdentity & { refs: readonly string[]; blobs: readonly string[] })[];
  /** Whether the journal still links blobs to it (`bundle_blobs`); false once pruned. */
  holdsBlobs: boolean;
}

export interface DeploymentFact {
  id: number;
  stack: string;
  bundleId: number | null;
  kind: 'apply' | 'rollback';
  status: 'running' | 'committed' | 'failed' | 'rolled-back';
  /** For a rollback: the deployment whose specs it restored. */
  restores: number | null;
  /** Image ids the deployment's services were pinned to. */
  imageIds: readonly string[];
  /** Content-store digests of its secrets' and configs' data. */
  dataDigests: readonly string[];
}

export interface JournalFacts {
  bundles: readonly BundleFact[];
  deployments: readonly DeploymentFact[];
  /** The journal's `images` table: images airlock loaded, and the only ones prune may remove. */
  images: readonly { id: string; refs: readonly string[] }[];
  /** The journal's `blobs` table. */
  blobs: readonly { digest: string; size: number; kind: string }[];
}

export type KeepReason = 'current' | 'recent' | 'restored' | 'rollback-default' | 'unfinished';

export interface PrunePlan {
  keep: number;
  keptDeployments: { id: number; stack: string; reason: KeepReason }[];
  keptBundles: { id: number; reason: 'deployment' | 'pending' }[];
  /** Bundles no kept thing needs: their rows stay as history, their blobs go. */
  bundles: { id: number; name: string; version: string; alreadyPruned: boolean }[];
  /** Blobs to remove from the store; size null when the journal does not know it (secret data). */
  blobs: { digest: string; size: number | null; kind: string; bundles: number[] }[];
  /** Images airlock loaded that no kept thing needs. */
  images: { id: string; refs: string[] }[];
}

export const DEFAULT_KEEP = 3;

/** Checks a keep count, from a flag or the agent config. */
export function checkKeep(keep: number): number {
  if (!Number.isSafeInteger(keep) || keep < 1) {
    throw new RangeError(`keep must be a whole number of deployments, at least 1 (the one running is always kept), not ${keep}`);
  }
  return keep;
}

/**
 * The bundles that may still be applied next: never committed, and newer
 * than every release of their name that ever committed. What `status`
 * calls pending, and what retention keeps for them.
 */
export function pendingBundles(facts: Pick<JournalFacts, 'bundles' | 'deployments'>): Set<number> {
  const everCommitted = new Set(facts.deployments.filter((d) => d.status === 'committed' && d.bundleId !== null).map((d) => d.bundleId!));
  const newestCommitted = new Map<string, string>();
  for (const b of facts.bundles) {
    if (!everCommitted.has(b.id)) continue;
    const v = newestCommitted.get(b.name);
    if (v === undefined || semver.gt(b.version, v)) newestCommitted.set(b.name, b.version);
  }
  const pending = new Set<number>();
  for (const b of facts.bundles) {
    if (everCommitted.has(b.id)) continue;
    const newest = newestCommitted.get(b.name);
    if (newest === undefined || semver.gt(b.version, newest)) pending.add(b.id);
  }
  return pending;
}

export function planPrune(facts: JournalFacts, keep: number = DEFAULT_KEEP): PrunePlan {
  checkKeep(keep);
  const byId = new Map(facts.deployments.map((d) => [d.id, d]));
  const kept = keptDeployments(facts, keep);
  // Bundles: those kept deployments use, and pending ones.
  const keptBundles = new Map<number, 'deployment' | 'pending'>();
  for (const id of kept.keys()) {
    const b = byId.get(id)?.bundleId;
    if (b != null) keptBundles.set(b, 'deployment');
  }
  for (const id of pendingBundles(facts)) if (!keptBundles.has(id)) keptBundles.set(id, 'pending');
  const needed = neededByKept(facts, kept, keptBundles);
  const pruned = facts.bundles.filter((b) => !keptBundles.has(b.id));
  return {
    keep,
    keptDeployments: [...kept].map(([id, reason]) => ({ id, stack: byId.get(id)!.stack, reason })).sort((a, b) => a.stack.localeCompare(b.stack) || b.id - a.id),
    keptBundles: [...keptBundles].map(([id, reason]) => ({ id, reason })).sort((a, b) => a.id - b.id),
    bundles: pruned.map((b) => ({ id: b.id, name: b.name, version: b.version, alreadyPruned: !b.holdsBlobs })).sort((a, b) => a.id - b.id),
    blobs: blobCandidates(facts, kept, pruned, needed.blobs),
    images: facts.images.filter((i) => !needed.images.has(i.id)).map((i) => ({ id: i.id, refs: [...i.refs] })).sort((a, b) => a.id.localeCompare(b.id)),
  };
}

/** The deployments kept, with why: per stack the last `keep` states, what rollbacks restore, the default rollback target, unfinished ones. */
function keptDeployments(facts: JournalFacts, keep: number): Map<number, KeepReason> {
  const byId = new Map(facts.deployments.map((d) => [d.id, d]));
  const find = (id: number) => byId.get(id);
  const kept = new Map<number, KeepReason>();
  const keepDeployment = (d: DeploymentFact, reason: KeepReason) => {
    if (!kept.has(d.id)) kept.set(d.id, reason);
    // A rollback needs what it restored, and so on down the chain.
    for (const r of restoredChain(d, find)) if (byId.has(r) && !kept.has(r)) kept.set(r, 'restored');
  };
  const effective = (d: DeploymentFact): number => effectiveDeployment(d, find);
  const stacks = [...new Set(facts.deployments.map((d) => d.stack))].sort();
  for (const stack of stacks) {
    const committed = facts.deployments.filter((d) => d.stack === stack && d.status === 'committed').sort((a, b) => b.id - a.id);
    const current = committed[0];
    if (!current) continue;
    const states = new Set<number>();
    for (const d of committed) {
      const e = effective(d);
      if (!states.has(e)) {
        if (states.size >= keep) break;
        states.add(e);
      }
      keepDeployment(d, d === current ? 'current' : 'recent');
    }
    if (keep >= 2) {
      // rollback.ts: without --to, the newest committed apply before the state running now.
      const before = committed.find((d) => d.kind === 'apply' && d.id < effective(current));
      if (before) keepDeployment(before, 'rollback-default');
    }
  }
  for (const d of facts.deployments) if (d.status === 'running') keepDeployment(d, 'unfinished');
  return kept;
}

/** The images and blobs the kept deployments and bundles need. */
function neededByKept(facts: JournalFacts, kept: Map<number, KeepReason>, keptBundles: Map<number, unknown>): { images: Set<string>; blobs: Set<string> } {
  const byId = new Map(facts.deployments.map((d) => [d.id, d]));
  const imageBlobs = new Map<string, Set<string>>();
  for (const b of facts.bundles) {
    for (const img of b.images) {
      const set = imageBlobs.get(img.id) ?? new Set<string>();
      for (const digest of img.blobs) set.add(digest);
      imageBlobs.set(img.id, set);
    }
  }
  const images = new Set<string>();
  const blobs = new Set<string>();
  for (const b of facts.bundles) {
    if (!keptBundles.has(b.id)) continue;
    for (const blob of b.blobs) blobs.add(blob.digest);
    for (const img of b.images) images.add(img.id);
  }
  for (const id of kept.keys()) {
    const d = byId.get(id)!;
    for (const img of d.imageIds) images.add(img);
    for (const digest of d.dataDigests) blobs.add(digest);
  }
  for (const img of images) for (const digest of imageBlobs.get(img) ?? []) blobs.add(digest);
  return { images, blobs };
}

/** What may go: any blob the journal knows of that nothing kept needs, with the bundles that carried it. */
function blobCandidates(facts: JournalFacts, kept: Map<number, KeepReason>, pruned: JournalFacts['bundles'], keepBlobs: Set<string>): PrunePlan['blobs'] {
  const candidates = new Map<string, { digest: string; size: number | null; kind: string; bundles: number[] }>();
  const candidate = (digest: string, size: number | null, kind: string, bundle?: number) => {
    if (keepBlobs.has(digest)) return;
    const c = candidates.get(digest) ?? { digest, size, kind, bundles: [] };
    if (c.size === null && size !== null) c.size = size;
    if (bundle !== undefined && !c.bundles.includes(bundle)) c.bundles.push(bundle);
    candidates.set(digest, c);
  };
  for (const b of pruned) for (const blob of b.blobs) candidate(blob.digest, blob.size, blob.kind, b.id);
  for (const b of pruned) for (const img of b.images) for (const digest of img.blobs) candidate(digest, null, 'image', b.id);
  for (const blob of facts.blobs) candidate(blob.digest, blob.size, blob.kind);
  for (const d of facts.deployments) {
    if (kept.has(d.id)) continue;
    for (const digest of d.dataDigests) candidate(digest, null, 'object-data');
  }
  return [...candidates.values()].sort((a, b) => a.digest.localeCompare(b.digest));
}
