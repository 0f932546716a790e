import { readFileSync } from 'node:fs';
import semver from 'semver';
import { notFound, policyError } from '../errors/index.js';
import { checkExpiry, checkSignature, openBundleFile, readBundleHead, sha256Hex } from '../bundle/reader.js';
import { parseManifest, type Manifest } from '../bundle/manifest.js';
import type { Limits } from '../bundle/limits.js';
import type { Engine, SwarmEngine } from '../docker/engine.js';
import { DockerError, isShutdownAnswer } from '../docker/index.js';
import { loadBundleImages, storeBundle } from '../import/import-bundle.js';
import { contentStoreOf, journalPresence } from '../store/state-dir.js';
import { BundleRecords } from '../journal/bundles.js';
import { DeploymentRecords, type DeploymentRow } from '../journal/deployments.js';
import { Journal } from '../journal/journal.js';
import { acquireApplyLock } from '../journal/lock.js';
import { currentProgress, type ServiceProgress } from '../stack/converge.js';
import { desiredStack } from '../stack/desired.js';
import type { TrustStore } from '../trust/trust-store.js';
import { bundleStackFiles } from './bundle-files.js';
import { checkNoSecretInClear } from '../import/sealing-check.js';
import { hostKeysOf, type SealingOptions } from '../seal/sealing-options.js';
import type { ApplyContext } from './context.js';
import { journalRecorder } from './recorder.js';
import { runPipeline } from './run-pipeline.js';
import { appliedBy } from './applied-by.js';
import { recoverUnfinished } from './recover.js';
import { runningDeployments } from './unchanged.js';
import type { RevocationGate } from './revocation.js';

export interface ApplyOptions {
  stateDir: string;
  trust: TrustStore;
  docker: Engine;
  timeoutMs: number;
  /** How long to wait for another apply on this host to finish. */
  lockWaitMs?: number;
  allowDowngrade?: boolean;
  /** Initialise a single-node swarm first when the engine is in none. */
  initSwarm?: { advertiseAddr: string } | undefined;
  limits?: Partial<Limits>;
  hooks?: Pick<ApplyContext, 'onChange' | 'onProgress' | 'onApplyStep'>;
  /** Where the site identities are, and whether secrets must arrive sealed. */
  sealing?: SealingOptions;
}

export interface ApplyResult {
  bundle: { name: string; version: string };
  /** `unchanged`: the stack already ran this bundle as that deployment; nothing was started. */
  stacks: { stack: string; deployment: number; services: ServiceProgress[]; unchanged?: true }[];
}

/** What every journaled deploy needs; `revocation` decides whether recorded specs of a bundle may run again (rollback, recovery). */
export type DeployOptions = Pick<ApplyOptions, 'stateDir' | 'docker' | 'timeoutMs' | 'lockWaitMs' | 'hooks' | 'sealing'> & { revocation: RevocationGate };

/** The gate of an apply: its own trust store, and no override. */
const gateOf = (opts: ApplyOptions): DeployOptions => ({ ...opts, revocation: { trust: async () => opts.trust } });

/** Opens the journal and takes the host's apply lock for the length of `run`, after recovering any crashed apply. */
export async function withApplyContext<T>(
  opts: DeployOptions,
  what: string,
  run: (ctx: ApplyContext, recovered: DeploymentRow[]) => Promise<T>,
): Promise<T> {
  const journal = Journal.open(opts.stateDir);
  try {
    const release = await acquireApplyLock(journal, what, opts.lockWaitMs ?? 60_000);
    try {
      const deployments = new DeploymentRecords(journal);
      const store = contentStoreOf(opts.stateDir);
      const ctx: ApplyContext = {
        docker: opts.docker,
        journal,
        deployments,
        store,
        keys: hostKeysOf(opts.stateDir, opts.sealing),
        recorder: journalRecorder(journal, deployments, store),
        timeoutMs: opts.timeoutMs,
        ...opts.hooks,
      };
      const wasManager = await isManager(opts.docker);
      try {
        const recovered = await recoverUnfinished(ctx, opts.revocation);
        return await run(ctx, recovered);
      } catch (e) {
        throw await explainEngineLoss(opts.docker, what, wasManager, e);
      }
    } finally {
      release();
    }
  } finally {
    journal.close();
  }
}

/** Whether the engine is a swarm manager now; false when it cannot be asked. */
export async function isManager(docker: SwarmEngine): Promise<boolean> {
  const info = await docker.system.info({ retry: false }).catch(() => undefined);
  return info?.Swarm.LocalNodeState === 'active' && info.Swarm.ControlAvailable;
}

/**
 * A dockerd that is being stopped or restarted answers swarm calls for a
 * moment with 503 "This node is not a swarm manager" or a 500 from its
 * closing swarm connection. Said as it is, the first sends the operator off
 * to create a swarm. When the engine was a manager as the command began, and
 * it says one of those or is no longer a manager now, the error says what
 * happened instead.
 */
async function explainEngineLoss(docker: SwarmEngine, what: string, wasManager: boolean, e: unknown): Promise<unknown> {
  if (!wasManager || !(e instanceof DockerError) || e.kind !== 'engine' || e.reason === 'engine-unreachable') return e;
  const telling = e.reason === 'not-swarm-manager' || isShutdownAnswer(e.daemonMessage ?? '');
  if (!telling && (await isManager(docker))) return e;
  return new DockerError('engine', `Docker Engine at ${docker.client.endpoint} stopped serving as a swarm manager in the middle of ${what}: dockerd is stopping or restarting, or the node was demoted (${e.daemonMessage ?? e.message})`, {
    reason: 'engine-unreachable',
    subject: docker.client.endpoint,
    hint: `check 'systemctl status docker' and 'docker node ls'; once dockerd runs as a manager, run the command again: an interrupted deployment is recovered first`,
    cause: e,
  });
}

/** `airlock recover`: the recovery rule alone, under the apply lock; the deployments it closed, as they ended. */
export async function recoverHost(opts: DeployOptions): Promise<DeploymentRow[]> {
  // No journal, nothing to recover; and none is made up in place of a lost one.
  if (journalPresence(opts.stateDir) !== 'present') return [];
  return withApplyContext(opts, 'recover', async (_, recovered) => recovered);
}

/** Anti-downgrade against what runs: applying an older version than one applied is refused; rollback is the way back. */
function checkNotOlderThanApplied(ctx: ApplyContext, name: string, version: string, allowDowngrade: boolean): void {
  const applied = ctx.deployments.appliedVersions(name);
  const newest = applied.sort(semver.rcompare)[0];
  if (newest && semver.lt(version, newest)) {
    if (allowDowngrade) {
      ctx.journal.record({ kind: 'bundle.apply', outcome: 'info', subject: `${name} ${version}`, reason: 'downgrade-allowed', message: `applying ${version} over ${newest} with --allow-downgrade` });
      return;
    }
    throw policyError(`${name} ${version} is older than ${newest}, which was applied here`, {
      reason: 'downgrade',
      hint: "use 'airlock rollback STACK --to VERSION' to go back, or --allow-downgrade to apply it anyway",
    });
  }
}

async function ensureSwarm(docker: SwarmEngine, advertiseAddr: string): Promise<void> {
  const info = await docker.system.info();
  if (info.Swarm.LocalNodeState === 'active') return;
  await docker.swarm.init({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: advertiseAddr });
}

/**
 * `airlock bundle apply` on one host: verify, store, load images, then for
 * each stack prepare, update services, wait for convergence, commit and
 * clean up, every step journaled. One deployment per stack.
 */
export async function applyBundle(file: string, opts: ApplyOptions): Promise<ApplyResult> {
  return withApplyContext(gateOf(opts), `bundle apply ${file}`, async (ctx) => {
    if (opts.initSwarm) await ensureSwarm(opts.docker, opts.initSwarm.advertiseAddr);
    // verify: the signed head alone says which stacks this apply will touch.
    const head = await readBundleHead(await openBundleFile(file), opts.limits);
    checkSignature(head, opts.trust);
    const manifest = parseManifest(head.manifestBytes);
    return deployBundle(ctx, opts, manifest, `sha256:${sha256Hex(head.manifestBytes)}`, file, async () => {
      // With the engine: a bundle without images for its platform is refused before anything is stored.
      const stored = await storeBundle(
        file,
        {
          stateDir: opts.stateDir,
          trust: opts.trust,
          docker: opts.docker,
          allowDowngrade: opts.allowDowngrade ?? false,
          ...(opts.limits ? { limits: opts.limits } : {}),
          ...(opts.sealing ? { sealing: opts.sealing } : {}),
        },
        ctx.journal,
        ctx.store,
      );
      return stored.bundleId;
    });
  });
}

/**
 * Deploys a bundle imported earlier, from the content store alone: the
 * agent imports on arrival and deploys inside the maintenance window. The
 * stored signature is checked again against today's trust store, so a key
 * revoked in between stops the deploy.
 */
export async function applyStoredBundle(bundleId: number, opts: ApplyOptions & { source: string }): Promise<ApplyResult> {
  return withApplyContext(gateOf(opts), `bundle apply ${opts.source}`, async (ctx) => {
    const head = new BundleRecords(ctx.journal).signedHead(bundleId);
    checkSignature(head, opts.trust);
    const manifest = parseManifest(head.manifestBytes);
    return deployBundle(ctx, opts, manifest, `sha256:${sha256Hex(head.manifestBytes)}`, opts.source, async () => {
      const missing = await ctx.store.missing(manifest.blobs);
      if (missing.digests.length > 0) {
        throw notFound(`bundle ${manifest.name} ${manifest.version} lacks ${missing.digests.length} blobs (${missing.bytes} bytes) in the content store: it was pruned since import`, {
          reason: 'blobs-pruned',
          subject: missing.digests[0],
          hint: 'import the bundle file again, then apply it',
        });
      }
      // Imported while the host allowed secrets in clear, deployed after it stopped: refused here too.
      if (opts.sealing?.requireSealed) checkNoSecretInClear(manifest, (d) => readFileSync(ctx.store.pathOf(d)));
      return bundleId;
    });
  });
}

/** The shared body of an apply: one deployment per stack, through the pipeline. */
async function deployBundle(ctx: ApplyContext, opts: ApplyOptions, manifest: Manifest, manifestDigest: string, source: string, store: () => Promise<number>): Promise<ApplyResult> {
  checkExpiry(manifest, new Date());
  if (manifest.stacks.length === 0) throw policyError(`bundle ${manifest.name} ${manifest.version} has no stacks to apply`, { reason: 'no-stacks', hint: "use 'airlock bundle import' for a bundle of images and files only" });
  const running = await runningDeployments(opts.docker, ctx.journal, ctx.deployments, { manifestDigest, stacks: manifest.stacks.map((s) => s.name), images: manifest.images });
  if (running) return alreadyRunning(ctx, manifest, running);
  const stacks = manifest.stacks.map((stack) => ({
    id: ctx.deployments.start({ stack: stack.name, bundleId: null, kind: 'apply', replaces: ctx.deployments.current(stack.name)?.id ?? null, appliedBy: appliedBy(), source }),
    stack: stack.name,
    desired: async () => (await desiredStack({ stack: stack.name, apiVersion: await opts.docker.client.apiVersion(), ...(await bundleStackFiles(ctx.store, manifest, stack, ctx.keys)) })).desired,
  }));
  const outcomes = await runPipeline(ctx, {
    stacks,
    prune: true,
    bundle: {
      verify: async () => checkNotOlderThanApplied(ctx, manifest.name, manifest.version, opts.allowDowngrade ?? false),
      store,
      // Services are pinned to the variant loaded here, the one for this host's platform.
      load: async (w) => {
        const { images } = await loadBundleImages({ docker: opts.docker }, ctx.journal, ctx.store, w.bundleId!);
        return new Map(images.flatMap((i) => i.refs.map((r) => [r, i.id] as const)));
      },
    },
  });
  return { bundle: { name: manifest.name, version: manifest.version }, stacks: outcomes.map((o) => ({ stack: o.stack, deployment: o.id, services: o.converged })) };
}

/** The answer to an apply of what already runs: an event, the stacks' progress now, no deployment. */
async function alreadyRunning(ctx: ApplyContext, manifest: Manifest, running: DeploymentRow[]): Promise<ApplyResult> {
  const stacks: ApplyResult['stacks'] = [];
  for (const d of running) {
    const names = ctx.deployments.services(d.id).flatMap((s) => (s.after ? [s.name] : []));
    stacks.push({ stack: d.stack, deployment: d.id, services: await currentProgress(ctx.docker, names, ctx.signal), unchanged: true });
  }
  ctx.journal.record({
    kind: 'bundle.apply',
    outcome: 'info',
    subject: `${manifest.name} ${manifest.version}`,
    reason: 'unchanged',
    message: `already running: ${running.map((d) => `stack ${d.stack} as deployment #${d.id}`).join(', ')}; nothing was changed`,
  });
  return { bundle: { name: manifest.name, version: manifest.version }, stacks };
}
