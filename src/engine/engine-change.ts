/**
 * Installing, upgrading and rolling back the Docker Engine itself, step by
 * step in the journal (engine_changes): configure, drain the node, stop,
 * switch, start, check, activate. A new engine that does not come back
 * healthy in time is replaced by the one before, automatically.
 */
import type { EngineRecord } from '../bundle/manifest-format.js';
import { engineState, localEngine } from './engine-state.js';
import { AirlockError, asAirlockError } from '../errors/index.js';
import { EngineChanges, type EngineChangeKind, type EngineChangeRow, type EngineStep } from '../journal/engine-changes.js';
import type { Journal } from '../journal/journal.js';
import type { ContentStore } from '../store/content-store.js';
import { otherActiveNodes, setAvailability } from '../cluster/node-availability.js';
import { drainNode, refuseDrainShort } from '../cluster/node-drain.js';
import type { EngineHostPaths } from './host-paths.js';
import { currentEngine, type InstalledEngine } from './installed.js';
import { placeStaticEngine, switchCurrent } from './static-engine.js';
import { installPackages, packageFiles } from './packages.js';
import { writeUnits } from './units.js';
import { daemonConfig, writeDaemonConfig, type EngineHostConfig } from './daemon-config.js';
import { ensureDockerGroup } from './docker-group.js';
import { pickSupervisor } from './supervisor.js';
import { waitEngineHealthy } from './health.js';
import { BundleRecords } from '../journal/bundles.js';
import { crashPoint, ENGINE_CRASH_POINTS, type EngineCrashPoint } from '../process/fault.js';

const isEngineCrashPoint = (p: string): p is EngineCrashPoint => (ENGINE_CRASH_POINTS as readonly string[]).includes(p);

export interface EngineChangeOptions {
  journal: Journal;
  store: ContentStore;
  paths: EngineHostPaths;
  config: EngineHostConfig;
  /** How long the new engine has to answer, run its version and rejoin the swarm before the old one is restored. */
  timeoutMs: number;
  /** How long a drain may take until the node's tasks run elsewhere. */
  drainTimeoutMs: number;
  /** Accept that services stop while the engine restarts: the node is the only active one, or a worker that cannot drain itself. */
  allowDowntime: boolean;
  /** The caller (the jump box) drained the node through a manager and activates it after. */
  drainedByCaller?: boolean;
  appliedBy: string;
  say: (line: string) => void;
}

export type EngineOutcome = 'installed' | 'upgraded' | 'reconfigured' | 'unchanged' | 'rolled-back';

export interface EngineChangeResult {
  outcome: EngineOutcome;
  change: number | null;
  version: string;
  form: string;
  previous: { version: string; form: string } | null;
  /** The swarm node that was drained and activated again, if any. */
  node: string | null;
}

/** What the engine the change replaces was doing: whether it ran, and its swarm node. */
interface RunningState {
  running: boolean;
  /** What the running engine reports as its version. */
  version: string | null;
  nodeId: string | null;
  manager: boolean;
}

/** The engine a change replaces, as the change needs it: running or not, its version, its node when in a swarm. */
async function runningState(paths: EngineHostPaths): Promise<RunningState> {
  const { reported, swarm } = await engineState(paths);
  const active = swarm?.state === 'active';
  return { running: reported !== null, version: reported?.version ?? null, nodeId: active ? swarm.nodeId : null, manager: active && swarm.manager };
}

/**
 * Makes the engine of `record` (from stored bundle `bundleId`) the one that
 * runs. Nothing changes when it already runs with this configuration.
 */
export async function applyEngine(bundleId: number, record: EngineRecord, opts: EngineChangeOptions): Promise<EngineChangeResult> {
  const found = await currentEngine(opts.paths);
  const before = await runningState(opts.paths);
  // The previous engine by the version it reports: a package's own version (26.1.5+dfsg1-9) is not what /version says.
  const installed = found && { ...found, version: before.version ?? engineVersionOfPackages(found) };
  const same = found !== undefined && isSameEngine(found, record);
  const cfg = daemonConfig(opts.config);
  const changes = new EngineChanges(opts.journal);
  const kind: EngineChangeKind = installed === undefined ? 'install' : 'upgrade';
  const previousBundle = changes.current()?.bundle_id ?? null;

  const blobPath = (d: string) => opts.store.pathOf(d);
  // A change of engine is decided before anything is placed; the same engine may need no change at all.
  let drainPlan = same && before.running ? undefined : await planDrain(before, opts);
  // Placing binaries and writing configuration change nothing that runs; only what differs is written.
  // (A package set was simulated by apt before it was stored, and is again by the install itself.)
  if (record.form === 'static') await placeStaticEngine(record, blobPath, opts.paths);
  const configChanged = [await writeDaemonConfig(opts.paths, cfg), await writeUnits(record.form, opts.paths), await ensureDockerGroup()].some(Boolean);
  if (same && !configChanged && before.running) {
    const healthy = await waitEngineHealthy(opts.paths.socket, { version: record.version, swarm: before.nodeId !== null, timeoutMs: 5_000 }).then(
      () => true,
      () => false,
    );
    if (healthy) return { outcome: 'unchanged', change: null, version: record.version, form: record.form, previous: null, node: null };
  }
  drainPlan ??= await planDrain(before, opts);

  const id = changes.begin({
    kind,
    bundleId,
    form: record.form,
    version: record.version,
    previous: installed ? { form: installed.form, version: installed.version, bundleId: previousBundle } : null,
    appliedBy: opts.appliedBy,
  });
  const step = (s: EngineStep) => {
    changes.step(id, s);
    const point = `engine-${s}`;
    if (isEngineCrashPoint(point)) crashPoint(point);
  };
  const subject = `${record.form} ${record.version}`;
  try {
    step('drain');
    const drained = await drain(drainPlan, opts);
    changes.drained(id, drained);
    const supervisor = pickSupervisor(record.form, opts.paths);
    if (before.running) {
      step('stop');
      opts.say(`stopping the engine${installed ? ` ${installed.version}` : ''}`);
      await supervisor.stop();
    }
    step('switch');
    if (record.form === 'static') await switchCurrent(opts.paths, record.version);
    else await installPackages(packageFiles(record, blobPath), { allowDowngrades: true, paths: opts.paths });
    step('start');
    opts.say(`starting the engine ${record.version}`);
    try {
      await supervisor.enableAndStart();
      step('check');
      await waitEngineHealthy(opts.paths.socket, { version: record.version, swarm: before.nodeId !== null, timeoutMs: opts.timeoutMs });
    } catch (e) {
      if (!installed) throw e;
      await restore(id, installed, opts, e);
      throw upgradeFailed(record, installed, e);
    }
    step('activate');
    if (drained && !opts.drainedByCaller) await activate(drained, opts);
    changes.finish(id, 'committed');
    const outcome: EngineOutcome = !installed ? 'installed' : same ? 'reconfigured' : 'upgraded';
    opts.journal.record({ kind: kind === 'install' ? 'engine.install' : 'engine.upgrade', outcome: 'ok', subject, message: outcome, details: { change: id, previous: installed ?? null } });
    return { outcome, change: id, version: record.version, form: record.form, previous: installed ? { version: installed.version, form: installed.form } : null, node: drained };
  } catch (e) {
    const err = asAirlockError(e);
    const row = changes.get(id);
    if (row?.status === 'running') changes.finish(id, 'failed', err.reason);
    opts.journal.record({ kind: kind === 'install' ? 'engine.install' : 'engine.upgrade', outcome: 'failed', subject, reason: err.reason, message: err.message, details: { change: id } });
    throw err;
  }
}

/** How the node the engine serves is drained: not at all (no swarm, the caller did, or down time accepted on a worker), or by this host as a manager. */
type DrainPlan = { kind: 'none'; nodeId: string | null } | { kind: 'drain'; nodeId: string; replacements: boolean };

/**
 * Decides the drain before anything changes: a worker cannot drain itself,
 * and the only active node has nowhere to move its tasks; both are refused
 * unless the operator accepts the down time.
 */
async function planDrain(before: RunningState, opts: EngineChangeOptions): Promise<DrainPlan> {
  if (before.nodeId === null) return { kind: 'none', nodeId: null };
  if (opts.drainedByCaller) return { kind: 'none', nodeId: before.nodeId };
  if (!before.manager) {
    if (opts.allowDowntime) return { kind: 'none', nodeId: null };
    throw new AirlockError('policy', `this host is a swarm worker: it cannot drain itself, and its tasks would stop with the engine`, {
      reason: 'drain-needs-manager',
      hint: 'drain it through a manager first (docker node update --availability drain) and pass --drained-by-caller, or pass --allow-downtime',
    });
  }
  const docker = localEngine(opts.paths);
  try {
    const others = await otherActiveNodes(docker, before.nodeId);
    if (others === 0 && !opts.allowDowntime) {
      throw new AirlockError('policy', `node ${before.nodeId} is the only active node of its swarm: its services stop while the engine restarts`, {
        reason: 'drain-no-capacity',
        hint: 'pass --allow-downtime to upgrade anyway, or add a node first',
      });
    }
    // Before anything changes: the other nodes must be able to take the node's tasks.
    if (others > 0 && !opts.allowDowntime) await refuseDrainShort(docker, before.nodeId);
    return { kind: 'drain', nodeId: before.nodeId, replacements: others > 0 };
  } finally {
    await docker.close();
  }
}

/** Drains as planned; returns the node to activate after (null when this run does not activate one). */
async function drain(plan: DrainPlan, opts: EngineChangeOptions): Promise<string | null> {
  if (plan.kind === 'none') return opts.drainedByCaller ? plan.nodeId : null;
  const docker = localEngine(opts.paths);
  try {
    opts.say(`draining node ${plan.nodeId}${plan.replacements ? '' : ' (the only active node: its services stop until the engine is back)'}`);
    // Journaled as a node operation too: `airlock recover` puts back what a killed drain changed.
    await drainNode(docker, plan.nodeId, {
      timeoutMs: opts.drainTimeoutMs,
      // The only node, or down time accepted: services may fall short while the engine restarts.
      force: !plan.replacements || opts.allowDowntime,
      journal: opts.journal,
      who: opts.appliedBy,
      why: 'engine change',
      onProgress: (ps) => {
        for (const p of ps) opts.say(`  ${p.service}: ${p.runningElsewhere}/${p.desired} elsewhere, ${p.stillOnNode} still here`);
      },
    });
    return plan.nodeId;
  } finally {
    await docker.close();
  }
}

async function activate(nodeId: string, opts: EngineChangeOptions): Promise<void> {
  const docker = localEngine(opts.paths);
  try {
    await setAvailability(docker, nodeId, 'active');
    opts.say(`node ${nodeId} active again`);
  } finally {
    await docker.close();
  }
}

/** Puts the engine that ran before back: its binaries (or packages), started and checked. */
async function restore(id: number, previous: InstalledEngine, opts: EngineChangeOptions, cause: unknown): Promise<void> {
  const changes = new EngineChanges(opts.journal);
  const row = changes.get(id)!;
  opts.say(`the new engine is not healthy (${asAirlockError(cause).message}): restoring ${previous.version}`);
  const current = pickSupervisor(row.form as EngineRecord['form'], opts.paths);
  await current.stop().catch(() => undefined);
  await switchBack(row, previous, opts);
  const supervisor = pickSupervisor(previous.form, opts.paths);
  await supervisor.enableAndStart();
  await waitEngineHealthy(opts.paths.socket, { version: previous.version, swarm: row.drained_node !== null, timeoutMs: opts.timeoutMs });
  if (row.drained_node && !opts.drainedByCaller) await activate(row.drained_node, opts);
  changes.finish(id, 'rolled-back', asAirlockError(cause).reason);
  opts.journal.record({
    kind: 'engine.rollback',
    outcome: 'ok',
    subject: `${previous.form} ${previous.version}`,
    message: `restored ${previous.version} after ${row.version} failed its check`,
    details: { change: id, cause: asAirlockError(cause).message },
  });
}

async function switchBack(row: EngineChangeRow, previous: InstalledEngine, opts: EngineChangeOptions): Promise<void> {
  if (previous.form === 'static') {
    await switchCurrent(opts.paths, previous.version);
    return;
  }
  const engine = row.previous_bundle_id === null ? undefined : new BundleRecords(opts.journal).manifest(row.previous_bundle_id).engine;
  if (!engine) {
    throw new AirlockError('engine', `the packages of ${previous.version} were not installed from a bundle airlock holds: it cannot put them back`, {
      reason: 'no-previous-engine',
      hint: 'import the engine bundle of the previous version and run airlock engine install with it',
    });
  }
  await installPackages(packageFiles(engine, (d) => opts.store.pathOf(d)), { allowDowngrades: true, paths: opts.paths });
}

function upgradeFailed(record: EngineRecord, previous: InstalledEngine, cause: unknown): AirlockError {
  const err = asAirlockError(cause);
  return new AirlockError('engine', `the engine ${record.version} did not come back healthy (${err.message}); ${previous.version} was restored and runs`, {
    reason: 'engine-upgrade-rolled-back',
    hint: `see the engine's log (airlock engine status) and the journal; the bundle stays stored`,
    cause,
  });
}

/**
 * `airlock engine rollback`: back to the engine the newest committed change
 * replaced, the same way an upgrade goes (drain, stop, switch, start, check,
 * activate), journaled as a change of kind rollback.
 */
export async function rollbackEngine(opts: EngineChangeOptions): Promise<EngineChangeResult> {
  const changes = new EngineChanges(opts.journal);
  const last = changes.current();
  const installed = await currentEngine(opts.paths);
  if (!last || last.previous_version === null || last.previous_form === null || !installed) {
    throw new AirlockError('notFound', 'no engine change to roll back: the engine running now is the first airlock installed, or airlock installed none', {
      reason: 'no-previous-engine',
      hint: 'airlock engine status lists the changes',
    });
  }
  const target = { form: last.previous_form as EngineRecord['form'], version: last.previous_version };
  const before = await runningState(opts.paths);
  const plan = await planDrain(before, opts);
  const id = changes.begin({ kind: 'rollback', bundleId: last.previous_bundle_id, form: target.form, version: target.version, previous: { form: installed.form, version: installed.version, bundleId: last.bundle_id }, appliedBy: opts.appliedBy });
  const subject = `${target.form} ${target.version}`;
  try {
    changes.step(id, 'drain');
    const drained = await drain(plan, opts);
    changes.drained(id, drained);
    changes.step(id, 'stop');
    await pickSupervisor(installed.form, opts.paths).stop();
    changes.step(id, 'switch');
    await switchBack({ ...changes.get(id)!, previous_bundle_id: last.previous_bundle_id }, { form: target.form, version: target.version }, opts);
    changes.step(id, 'start');
    await pickSupervisor(target.form, opts.paths).enableAndStart();
    changes.step(id, 'check');
    await waitEngineHealthy(opts.paths.socket, { version: target.version, swarm: before.nodeId !== null, timeoutMs: opts.timeoutMs });
    changes.step(id, 'activate');
    if (drained && !opts.drainedByCaller) await activate(drained, opts);
    changes.finish(id, 'committed');
    opts.journal.record({ kind: 'engine.rollback', outcome: 'ok', subject, message: `rolled back from ${installed.version}`, details: { change: id } });
    return { outcome: 'rolled-back', change: id, version: target.version, form: target.form, previous: { version: installed.version, form: installed.form }, node: drained };
  } catch (e) {
    const err = asAirlockError(e);
    if (changes.get(id)?.status === 'running') changes.finish(id, 'failed', err.reason);
    opts.journal.record({ kind: 'engine.rollback', outcome: 'failed', subject, reason: err.reason, message: err.message, details: { change: id } });
    throw err;
  }
}

/**
 * After a kill -9 in the middle of a change: ends with one working engine.
 * A change killed before its switch puts the engine that ran back; one
 * killed after it keeps the new engine if it comes up healthy, else puts the
 * previous one back. A drained node is activated again either way.
 */
export async function recoverEngine(opts: EngineChangeOptions): Promise<{ change: number; outcome: 'committed' | 'failed' | 'rolled-back' } | undefined> {
  const changes = new EngineChanges(opts.journal);
  const row = changes.unfinished();
  if (!row) return undefined;
  changes.countRecovery(row.id);
  const previous: InstalledEngine | undefined = row.previous_form && row.previous_version ? { form: row.previous_form as EngineRecord['form'], version: row.previous_version } : undefined;
  const installed = await currentEngine(opts.paths);
  const onNew = installed?.version === row.version && installed.form === row.form;
  const swarm = row.drained_node !== null;
  const finishWith = async (status: 'committed' | 'failed' | 'rolled-back', message: string) => {
    if (row.drained_node && !opts.drainedByCaller) await activate(row.drained_node, opts);
    changes.finish(row.id, status, status === 'committed' ? undefined : 'interrupted');
    opts.journal.record({ kind: 'engine.recover', outcome: 'ok', subject: `${row.form} ${row.version}`, message, details: { change: row.id, step: row.step } });
    return { change: row.id, outcome: status };
  };
  const healthy = async (version: string, timeoutMs: number) =>
    waitEngineHealthy(opts.paths.socket, { version, swarm, timeoutMs }).then(
      () => true,
      () => false,
    );
  const startAndCheck = async (form: EngineRecord['form'], version: string) => {
    if (await healthy(version, 2_000)) return true;
    await pickSupervisor(form, opts.paths).enableAndStart();
    return healthy(version, opts.timeoutMs);
  };
  if (onNew && (await startAndCheck(row.form as EngineRecord['form'], row.version))) {
    return finishWith('committed', `the change to ${row.version} was interrupted at ${row.step}; the new engine runs and is healthy`);
  }
  if (!previous) {
    changes.finish(row.id, 'failed', 'interrupted');
    throw new AirlockError('engine', `the install of ${row.version} was interrupted at ${row.step} and the engine does not come up`, {
      reason: 'engine-unhealthy',
      hint: 'run airlock engine install with the bundle again',
    });
  }
  if (onNew) {
    await pickSupervisor(row.form as EngineRecord['form'], opts.paths).stop().catch(() => undefined);
    await switchBack(row, previous, opts);
  }
  if (!(await startAndCheck(previous.form, previous.version))) {
    changes.finish(row.id, 'failed', 'interrupted');
    throw new AirlockError('engine', `neither ${row.version} nor ${previous.version} comes up healthy after the interrupted change`, {
      reason: 'engine-unhealthy',
      hint: "see the engine's log (airlock engine status)",
    });
  }
  const status = onNew ? 'rolled-back' : 'failed';
  return finishWith(status, `the change to ${row.version} was interrupted at ${row.step}; ${previous.version} runs`);
}

/** Whether the installed engine is the record's: the same static version, or the same version of the package that carries dockerd. */
function isSameEngine(installed: InstalledEngine, record: EngineRecord): boolean {
  if (installed.form !== record.form) return false;
  if (record.form === 'static') return installed.version === record.version;
  return record.files.some((f) => f.package?.name === installed.package && f.package?.version === installed.version);
}

/** A stopped package engine's version, as /version would say it: the package's upstream part (before the Debian revision). */
function engineVersionOfPackages(installed: InstalledEngine): string {
  return installed.form === 'static' ? installed.version : installed.version.replace(/-[^-]*$/, '');
}
