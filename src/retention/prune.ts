import { findBundleImage, type ImageIdentity } from '../images/identity.js';
import { existsSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { asAirlockError, configError } from '../errors/index.js';
import { encodeFilters, isEngineUnreachable, isNotFound, type Docker } from '../docker/index.js';
import { familiarRef } from '../images/reference.js';
import { Journal } from '../journal/journal.js';
import { contentStoreOf, journalPathIn } from '../store/state-dir.js';
import type { ContentStore } from '../store/content-store.js';
import { acquireApplyLock } from '../journal/lock.js';
import { syncDir } from '../store/durable.js';
import { RetentionRecords } from '../journal/retention-records.js';
import { readJournalFacts } from './facts.js';
import { DEFAULT_KEEP, checkKeep, planPrune, type JournalFacts, type KeepReason, type PrunePlan } from './plan.js';

export interface PruneOptions {
  stateDir: string;
  /** Distinct deployments to keep per stack, the running one included. */
  keep?: number;
  /** List what would go, with sizes; change nothing. */
  dryRun?: boolean;
  /** The engine to remove images from; without it, images are left alone. */
  docker?: Docker | undefined;
  /** How long to wait for an apply or rollback on this host to finish. */
  lockWaitMs?: number;
}

export interface PruneReport {
  dryRun: boolean;
  keep: number;
  kept: {
    deployments: { id: number; stack: string; bundle: string | null; reason: KeepReason }[];
    bundles: { id: number; name: string; version: string; reason: 'deployment' | 'pending' }[];
  };
  /** Bundles whose blobs went (or would go) now; their journal rows stay. */
  bundles: { id: number; name: string; version: string }[];
  /** Blobs removed (or that would be) from the content store, with their size on disk. */
  blobs: { digest: string; kind: string; size: number; bundles: number[] }[];
  /** Images removed (or that would be) from the engine; size is the part no other image shares. */
  images: { id: string; refs: string[]; size: number }[];
  /** What the rule would drop but prune left alone, and why. */
  skipped: { what: 'image' | 'blob'; id: string; reason: string }[];
  /** Bytes freed, or that would be: the store's exact, the engine's measured (an estimate in a dry run). */
  bytes: { blobs: number; images: number; total: number };
  /** The `prune` event in the journal; null for a dry run. */
  event: number | null;
}

interface DiskUsage {
  layersSize: number;
  unique: Map<string, number>;
}

interface ContainerSummary {
  Id: string;
  Names?: string[];
  State?: string;
  Labels?: Record<string, string> | null;
}

const SWARM_TASK_LABEL = 'com.docker.swarm.task.id';
const NO_TAG = '<none>:<none>';

async function diskUsage(docker: Docker): Promise<DiskUsage> {
  const df = await docker.client.json<{ LayersSize?: number; Images?: { Id: string; Size: number; SharedSize: number }[] | null }>('GET', '/system/df');
  const unique = new Map((df.Images ?? []).map((i) => [i.Id, i.SharedSize >= 0 ? Math.max(0, i.Size - i.SharedSize) : i.Size]));
  return { layersSize: df.LayersSize ?? 0, unique };
}

interface ImageCheck {
  /** The config digest: the journal's name for the image. */
  id: string;
  /** What the engine calls it (the manifest digest on the containerd image store). */
  engineId: string;
  refs: string[];
  size: number;
  force: boolean;
}

/**
 * Whether an image airlock loaded may go: only when no other name points at
 * it and no container uses it but the stopped tasks swarm keeps as history.
 * Returns the reason to leave it otherwise; `gone` when the engine lacks it.
 */
async function checkImage(docker: Docker, img: { id: string; refs: string[] }, identity: ImageIdentity | undefined, du: DiskUsage | undefined): Promise<ImageCheck | { skip: string } | 'gone'> {
  const found = identity ? await findBundleImage(docker, identity) : await docker.images.find(img.id);
  if (!found) return 'gone';
  const tags = (found.RepoTags ?? []).filter((t) => t !== NO_TAG);
  const ours = new Set(img.refs.map(familiarRef));
  const foreign = tags.filter((t) => !ours.has(familiarRef(t)));
  if (foreign.length > 0) return { skip: `also tagged ${foreign.join(', ')}, which airlock did not load` };
  const containers = await docker.client.json<ContainerSummary[]>('GET', '/containers/json', { query: { all: true, filters: encodeFilters({ ancestor: [found.Id] }) } });
  const name = (c: ContainerSummary) => (c.Names?.[0] ?? c.Id.slice(0, 12)).replace(/^\//, '');
  const running = containers.find((c) => c.State !== 'exited' && c.State !== 'created' && c.State !== 'dead');
  if (running) return { skip: `in use by container ${name(running)} (${running.State ?? 'unknown state'})` };
  const other = containers.find((c) => !c.Labels?.[SWARM_TASK_LABEL]);
  if (other) return { skip: `used by stopped container ${name(other)}, which is not a swarm task` };
  return { id: img.id, engineId: found.Id, refs: tags, size: du?.unique.get(found.Id) ?? found.Size, force: containers.length > 0 || tags.length > 1 };
}

const emptyFacts: JournalFacts = { bundles: [], deployments: [], images: [], blobs: [] };

/**
 * `airlock prune`: drops what no kept deployment needs (see plan.ts for the
 * rule), under the apply lock so it never races an apply or a rollback, and
 * journals a `prune` event with counts and bytes. A dry run reads only.
 */
export async function prune(opts: PruneOptions): Promise<PruneReport> {
  let keep: number;
  try {
    keep = checkKeep(opts.keep ?? DEFAULT_KEEP);
  } catch (e) {
    throw configError((e as Error).message, { reason: 'bad-keep', hint: 'keep the running deployment and K-1 before it: K is 1 or more' });
  }
  const dryRun = opts.dryRun ?? false;
  if (!existsSync(journalPathIn(opts.stateDir))) return execute(opts, undefined, planPrune(emptyFacts, keep), emptyFacts, dryRun);
  const journal = Journal.open(opts.stateDir, { readonly: dryRun });
  try {
    const release = dryRun ? () => undefined : await acquireApplyLock(journal, `prune --keep ${keep}`, opts.lockWaitMs ?? 60_000);
    try {
      const facts = readJournalFacts(journal);
      return await execute(opts, journal, planPrune(facts, keep), facts, dryRun);
    } catch (e) {
      if (!dryRun) {
        const err = asAirlockError(e);
        journal.record({ kind: 'prune', outcome: 'failed', subject: `keep ${keep}`, reason: err.reason, message: err.message });
      }
      throw e;
    } finally {
      release();
    }
  } finally {
    journal.close();
  }
}

/** Carries out a plan: what the store and the engine still hold is measured, removed (unless a dry run) and journaled. */
async function execute(opts: PruneOptions, journal: Journal | undefined, plan: PrunePlan, facts: JournalFacts, dryRun: boolean): Promise<PruneReport> {
  const store = contentStoreOf(opts.stateDir);
  const report = startReport(plan, facts, dryRun);
  // Blobs: only those the store still holds count.
  for (const b of plan.blobs) {
    const size = await stat(store.pathOf(b.digest)).then((s) => s.size, () => undefined);
    if (size !== undefined) report.blobs.push({ digest: b.digest, kind: b.kind, size, bundles: b.bundles });
  }
  const relink = await relinks(store, plan, facts);
  const images = await judgeImages(opts.docker, plan, facts, report);
  if (dryRun || !journal) {
    report.images = images.removable.map(({ id, refs, size }) => ({ id, refs, size }));
    report.bytes.images = report.images.reduce((n, i) => n + i.size, 0);
    totalBytes(report);
    return report;
  }
  // Images first: a crash after this leaves journal rows that the next prune finds gone.
  await removeImages(opts.docker!, images, report);
  const removed = await removeBlobs(store, report);
  totalBytes(report);
  const absent = plan.blobs.filter((b) => !report.blobs.some((r) => r.digest === b.digest) && !report.skipped.some((s) => s.id === b.digest)).map((b) => b.digest);
  report.event = recordPrune(journal, plan, report, { removed, absent, gone: images.gone, relink });
  return report;
}

function startReport(plan: PrunePlan, facts: JournalFacts, dryRun: boolean): PruneReport {
  const bundleById = new Map(facts.bundles.map((b) => [b.id, b]));
  const deploymentById = new Map(facts.deployments.map((d) => [d.id, d]));
  const label = (bundleId: number | null | undefined) => {
    const b = bundleId == null ? undefined : bundleById.get(bundleId);
    return b ? `${b.name} ${b.version}` : null;
  };
  return {
    dryRun,
    keep: plan.keep,
    kept: {
      deployments: plan.keptDeployments.map((d) => ({ ...d, bundle: label(deploymentById.get(d.id)?.bundleId) })),
      bundles: plan.keptBundles.map((k) => ({ id: k.id, name: bundleById.get(k.id)!.name, version: bundleById.get(k.id)!.version, reason: k.reason })),
    },
    bundles: plan.bundles.filter((b) => !b.alreadyPruned).map(({ id, name, version }) => ({ id, name, version })),
    blobs: [],
    images: [],
    skipped: [],
    bytes: { blobs: 0, images: 0, total: 0 },
    event: null,
  };
}

type Relink = { bundle: number; blobs: { digest: string; size: number; kind: string }[] };

/** Kept bundles that a re-import after an earlier prune made whole again get their links back. */
async function relinks(store: ContentStore, plan: PrunePlan, facts: JournalFacts): Promise<Relink[]> {
  const bundleById = new Map(facts.bundles.map((b) => [b.id, b]));
  const relink: Relink[] = [];
  for (const k of plan.keptBundles) {
    const b = bundleById.get(k.id)!;
    if (b.holdsBlobs) continue;
    const present = await store.missing(b.blobs);
    if (present.digests.length === 0) relink.push({ bundle: b.id, blobs: [...b.blobs] });
  }
  return relink;
}

interface ImageJudgement {
  removable: ImageCheck[];
  /** Images the journal lists that the engine no longer has. */
  gone: string[];
  du: DiskUsage | undefined;
}

/** Each image the plan drops, checked in the engine before anything goes; what may not go is reported skipped. */
async function judgeImages(docker: Docker | undefined, plan: PrunePlan, facts: JournalFacts, report: PruneReport): Promise<ImageJudgement> {
  const judged: ImageJudgement = { removable: [], gone: [], du: undefined };
  if (plan.images.length === 0) return judged;
  if (!docker) {
    for (const img of plan.images) report.skipped.push({ what: 'image', id: img.id, reason: 'no engine to remove it from' });
    return judged;
  }
  try {
    judged.du = await diskUsage(docker).catch((e: unknown) => {
      if (isEngineUnreachable(e)) throw e;
      return undefined;
    });
    const identities = new Map(facts.bundles.flatMap((b) => b.images.map((i) => [i.id, i] as const)));
    for (const img of plan.images) {
      const checked = await checkImage(docker, img, identities.get(img.id), judged.du);
      if (checked === 'gone') judged.gone.push(img.id);
      else if ('skip' in checked) report.skipped.push({ what: 'image', id: img.id, reason: checked.skip });
      else judged.removable.push(checked);
    }
  } catch (e) {
    if (!isEngineUnreachable(e)) throw e;
    const err = asAirlockError(e);
    judged.removable.length = 0;
    for (const img of plan.images) if (!judged.gone.includes(img.id)) report.skipped.push({ what: 'image', id: img.id, reason: `engine unreachable: ${err.message}` });
  }
  return judged;
}

async function removeImages(docker: Docker, images: ImageJudgement, report: PruneReport): Promise<void> {
  for (const img of images.removable) {
    try {
      await docker.images.delete(img.engineId, img.force ? { force: true } : {});
      report.images.push({ id: img.id, refs: img.refs, size: img.size });
    } catch (e) {
      if (isNotFound(e)) {
        images.gone.push(img.id);
        continue;
      }
      report.skipped.push({ what: 'image', id: img.id, reason: asAirlockError(e).message });
    }
  }
  if (report.images.length > 0) {
    const after = images.du ? await diskUsage(docker).catch(() => undefined) : undefined;
    report.bytes.images = images.du && after ? Math.max(0, images.du.layersSize - after.layersSize) : report.images.reduce((n, i) => n + i.size, 0);
  }
}

/** Removes the report's blobs from the store; those that could not go are reported skipped. The digests removed. */
async function removeBlobs(store: ContentStore, report: PruneReport): Promise<string[]> {
  const removed: string[] = [];
  for (const b of report.blobs) {
    try {
      await rm(store.pathOf(b.digest), { force: true });
      removed.push(b.digest);
    } catch (e) {
      report.skipped.push({ what: 'blob', id: b.digest, reason: asAirlockError(e).message });
    }
  }
  if (removed.length > 0) await syncDir(store.blobDir);
  report.blobs = report.blobs.filter((b) => removed.includes(b.digest));
  return removed;
}

function totalBytes(report: PruneReport): void {
  report.bytes.blobs = report.blobs.reduce((n, b) => n + b.size, 0);
  report.bytes.total = report.bytes.blobs + report.bytes.images;
}

/** What went, in the journal's rows and as one `prune` event; the event's id. */
function recordPrune(journal: Journal, plan: PrunePlan, report: PruneReport, done: { removed: string[]; absent: string[]; gone: string[]; relink: Relink[] }): number {
  const now = new Date();
  new RetentionRecords(journal).recordPruned({ bundles: plan.bundles.map((b) => b.id), blobs: [...done.removed, ...done.absent], images: [...report.images.map((i) => i.id), ...done.gone], relink: done.relink }, now);
  return journal.record(
    {
      kind: 'prune',
      outcome: 'ok',
      subject: `keep ${plan.keep}`,
      message: `removed ${report.blobs.length} blobs and ${report.images.length} images; freed ${report.bytes.total} bytes`,
      details: {
        keep: plan.keep,
        bundles: report.bundles.map((b) => ({ id: b.id, name: b.name, version: b.version })),
        blobs: report.blobs.length,
        blobBytes: report.bytes.blobs,
        images: report.images.map((i) => ({ id: i.id, refs: i.refs })),
        imageBytes: report.bytes.images,
        bytes: report.bytes.total,
        forgotten: { images: done.gone.length, blobs: done.absent.length },
        relinked: done.relink.map((r) => r.bundle),
        skipped: report.skipped,
      },
    },
    now,
  );
}
