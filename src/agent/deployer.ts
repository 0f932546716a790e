/**
 * Deploys what the agent queued, inside the maintenance window: the newest
 * waiting version of each bundle, from the content store. Each bundle is
 * deployed at most once: a deployment committed before a crash counts as
 * done, and a try that never returned is not repeated for ever.
 */
import { agentSealing } from './sealing.js';
import { applyStoredBundle } from '../apply/bundle-apply.js';
import { asAirlockError } from '../errors/index.js';
import type { Engine } from '../docker/engine.js';
import { AgentQueue, type QueueRow } from '../journal/agent-queue.js';
import { DeploymentRecords } from '../journal/deployments.js';
import { Journal } from '../journal/journal.js';
import type { TrustStore } from '../trust/trust-store.js';
import semver from 'semver';
import type { AgentConfig } from './config.js';
import type { Logger } from './log.js';
import { isCrashLoop, MAX_DEATHS, noteDeath } from './crash-loop.js';

/** Failures of the host rather than the bundle (unless the health gate rolled it back): tried again at the next chance. */
const TRANSIENT = new Set(['engine', 'busy', 'resources']);
/** Not this bundle's fault either: an interrupted deployment whose previous specs are of a revoked key waits for the operator (src/apply/revocation.ts). */
const WAITS_FOR_OPERATOR = new Set(['revoked-restore']);

export interface DeployerDeps {
  config: AgentConfig;
  docker: Engine;
  trust: () => Promise<TrustStore>;
  log: Logger;
  /** Asked once the older waiting versions are superseded: whether this node may deploy now (a swarm manager). */
  mayDeploy?: () => Promise<boolean>;
}

export async function deployWaiting(deps: DeployerDeps): Promise<void> {
  const journal = Journal.open(deps.config.stateDir);
  try {
    const queue = new AgentQueue(journal);
    const rows = newestPerBundle(queue, deps.config, deps.log);
    if (rows.length === 0 || (deps.mayDeploy && !(await deps.mayDeploy()))) return;
    // Before any try is counted: a trust store that is unsafe or has a bad revocation list stops every deploy, and the bundles wait.
    const trust = await deps.trust();
    for (const row of rows) {
      await deployOne(deps, trust, journal, queue, row);
    }
  } finally {
    journal.close();
  }
}

/** Older waiting versions of a bundle are superseded by the newest one. */
function newestPerBundle(queue: AgentQueue, config: AgentConfig, log: Logger): QueueRow[] {
  const newest = new Map<string, QueueRow>();
  for (const row of queue.waiting()) {
    const other = newest.get(row.name);
    if (!other || semver.gt(row.version, other.version)) newest.set(row.name, row);
  }
  for (const row of queue.waiting()) {
    const keep = newest.get(row.name)!;
    if (keep.bundle_id !== row.bundle_id) {
      const before = config.apply.window ? 'the window opened' : `${row.version} was deployed`;
      queue.finish(row.bundle_id, 'superseded', `${row.name} ${keep.version} arrived before ${before}`);
      log.info('queued bundle superseded by a newer version', { bundle: row.name, version: row.version, by: keep.version });
    }
  }
  return [...newest.values()];
}

async function deployOne(deps: DeployerDeps, trust: TrustStore, journal: Journal, queue: AgentQueue, row: QueueRow): Promise<void> {
  const log = deps.log.with({ bundle: row.name, version: row.version });
  const deployments = new DeploymentRecords(journal);
  const committed = deployments.committedApplies(row.bundle_id);
  if (committed.length > 0) {
    // Deployed before the agent could say so (it was stopped right after the commit).
    queue.finish(row.bundle_id, 'applied', `deployment #${committed.join(', #')}`);
    log.info('bundle was already deployed', { deployments: committed.join(',') });
    return;
  }
  const attempts = queue.countAttempt(row.bundle_id);
  if (attempts > 1) {
    // The try before never returned: a crash this deploy causes, or a kill from outside (crash-loop.ts tells them apart).
    const { noted, deaths } = noteDeath(journal, row.bundle_id, `${row.name} ${row.version}`, attempts);
    const step = deaths[0]?.step ?? 'start';
    if (isCrashLoop(deaths)) {
      queue.finish(row.bundle_id, 'failed', `gave up: ${MAX_DEATHS} tries in a row ended with the agent gone at step ${step}`);
      journal.record({ kind: 'agent.deploy', outcome: 'failed', subject: `${row.name} ${row.version}`, reason: 'crash-loop', message: `gave up after ${MAX_DEATHS} tries that each ended with the agent gone at step ${step}` });
      log.error('giving up on the bundle: its deploy kills the agent, at the same step every time', { tries: attempts - 1, step });
      return;
    }
    if (noted) log.warn('the last try ended with the agent gone; trying again (given up only when tries keep dying at the same step)', { tries: attempts - 1, step, steps: deaths.slice(0, MAX_DEATHS).map((d) => d.step).join(',') });
  }
  log.info('deploying bundle', { attempt: attempts });
  try {
    const r = await applyStoredBundle(row.bundle_id, {
      stateDir: deps.config.stateDir,
      trust,
      docker: deps.docker,
      timeoutMs: deps.config.apply.timeoutMs,
      lockWaitMs: 10 * 60_000,
      source: row.source,
      sealing: agentSealing(deps.config),
      hooks: { onApplyStep: (id, step) => log.info('apply step', { deployment: id, step }) },
    });
    const ids = r.stacks.map((s) => s.deployment);
    queue.finish(row.bundle_id, 'applied', `deployment #${ids.join(', #')}`);
    for (const s of r.stacks) log.info('stack deployed', { stack: s.stack, deployment: s.deployment, services: s.services.map((x) => `${x.name}=${x.ready}/${x.desired}`).join(',') });
  } catch (e) {
    const err = asAirlockError(e);
    const rolledBack = deployments.wasRolledBack(row.bundle_id);
    if ((TRANSIENT.has(err.kind) || WAITS_FOR_OPERATOR.has(err.reason)) && !rolledBack) {
      queue.retryLater(row.bundle_id, err.message);
      log.error('deploy failed for a reason of the host; tried again at the next chance', { class: err.kind, reason: err.reason, error: err.message });
      return;
    }
    queue.finish(row.bundle_id, 'failed', err.message);
    // A revoked key, say: a refusal, recorded as import refusals are.
    if (err.kind === 'signature') journal.record({ kind: 'agent.deploy', outcome: 'refused', subject: `${row.name} ${row.version}`, reason: err.reason, message: err.message });
    log.error('deploy failed; the bundle is not tried again', { class: err.kind, reason: err.reason, error: err.message });
  }
}
