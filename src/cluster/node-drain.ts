/**
 * `airlock node drain|activate|pause`: a node's availability changed through
 * a manager, journaled as an operation with who, when and why.
 *
 * The drain keeps capacity. It refuses when the other nodes cannot take the
 * node's replicated tasks (planDrainCapacity), then pauses the node, moves
 * each replicated service's tasks off it start-first (drain-specs.ts: a
 * placement constraint and a rolling update, so a service never runs fewer
 * tasks than it wants), waits until each runs its desired count elsewhere,
 * drains the node (its global services' tasks stop there) and puts each
 * service's placement and update settings back as they were, which restarts
 * nothing. The settings to put back are journaled before the first change;
 * `airlock recover` puts them back after a crash.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Docker, ServiceSpec, SwarmNode } from '../docker/index.js';
import { isNotFound, isOutOfSequence } from '../docker/errors.js';
import { AirlockError, asAirlockError } from '../errors/index.js';
import type { EventKind } from '../journal/event-kinds.js';
import type { Journal } from '../journal/journal.js';
import { Operations, type OperationKind, type OperationRow } from '../journal/operations.js';
import type { InventoryHost } from '../remote/inventory.js';
import { findNode, planDrainCapacity, type DrainCapacity, type ServiceCapacity, type SwarmState } from './drain-capacity.js';
import { heldOf, movingSpec, needsRestore, restoredSpec, type HeldService } from './drain-specs.js';
import { drainProgress, setAvailability, type Availability, type DrainProgress } from './node-availability.js';

export type { DrainProgress } from './node-availability.js';

/** Where and why an operation is journaled. Without a journal nothing is recorded, and a killed drain cannot be recovered. */
export interface NodeOpOptions {
  journal?: Journal;
  /** Who runs it, `user@host` (src/apply/applied-by.ts appliedBy()). */
  who?: string;
  /** The operator's reason (`--reason`). */
  why?: string;
  /** The inventory's hosts, so that a node may be named as the inventory names it. */
  hosts?: readonly InventoryHost[];
  /** The inventory file the manager was reached through, recorded so that `recover` can reach it again; none: the local engine. */
  via?: string;
}

export interface DrainOptions extends NodeOpOptions {
  /** How long to wait for the node's tasks to run elsewhere and stop there. */
  timeoutMs: number;
  /** Drain even when replicated services would fall short, or the node is the only active one: those tasks stop. */
  force: boolean;
  /** Called on every poll with each waited-for service's counts. */
  onProgress?: (p: DrainProgress[]) => void;
  /** Between polls (default 200 ms: a few calls each, and a task start takes about a second). */
  pollMs?: number;
}

export interface NodeRef {
  id: string;
  hostname: string;
}

export interface DrainReport {
  node: NodeRef;
  outcome: 'drained' | 'already-drained';
  /** The journal's operation id, when journaled. */
  operation: number | null;
  /** The replicated services whose tasks were moved, with their counts at the end. */
  moved: DrainProgress[];
  /** Global services whose task on the node stopped. */
  stopped: string[];
  /** Replicated services left short (only with force). */
  short: ServiceCapacity[];
  seconds: number;
}

export interface AvailabilityReport {
  node: NodeRef;
  before: Availability;
  after: Availability;
  /** The node's state at the end (activate waits for `ready`). */
  state: string;
  operation: number | null;
}

/** What a drain journals before its first change: enough for `recover` to put the services back. */
export interface DrainDetails {
  hostname: string;
  before: Availability;
  via: string | null;
  services: HeldService[];
}

/** The node by ID, hostname or inventory name (by the address the swarm knows); not found names the nodes there are. */
export function resolveNode(nodes: readonly SwarmNode[], ref: string, hosts: readonly InventoryHost[] = []): SwarmNode {
  const host = hosts.find((h) => h.name === ref);
  if (host) {
    const at = nodes.filter((n) => n.Status.Addr === host.address || n.ManagerStatus?.Addr?.startsWith(`${host.address}:`));
    const node = at.find((n) => n.Status.State === 'ready') ?? at[0];
    if (node) return node;
  }
  return findNode(nodes, ref);
}

/** Refuses an engine that cannot manage the swarm, before anything is read or changed. */
async function mustManage(manager: Docker): Promise<void> {
  const info = await manager.system.info();
  if (info.Swarm.ControlAvailable) return;
  throw new AirlockError('engine', `this engine (${info.Name}) is not a swarm manager: it cannot change a node's availability`, {
    reason: 'not-swarm-manager',
    hint: 'run it on a manager, or from the jump box with --inventory hosts.yml',
  });
}

/** The swarm as the capacity planner reads it. */
async function readSwarm(manager: Docker): Promise<SwarmState> {
  const [nodes, services, tasks] = await Promise.all([manager.nodes.list(), manager.services.list(), manager.tasks.list()]);
  return { nodes, services, tasks };
}

const refOf = (n: SwarmNode): NodeRef => ({ id: n.ID, hostname: n.Description?.Hostname ?? n.ID });
const availabilityOf = (n: SwarmNode): Availability => n.Spec.Availability ?? 'active';
const label = (n: NodeRef) => `${n.hostname} (${n.id.slice(0, 12)})`;

const EVENT_OF: Record<OperationKind, EventKind> = { drain: 'node.drain', activate: 'node.activate', pause: 'node.pause' };

/** Journals an operation's begin, steps and end when a journal is given. */
class Recorder {
  private readonly ops: Operations | undefined;
  id: number | null = null;

  constructor(
    private readonly opts: NodeOpOptions,
    private readonly kind: OperationKind,
    private readonly node: NodeRef,
  ) {
    this.ops = opts.journal ? new Operations(opts.journal) : undefined;
  }

  begin(details: object): void {
    if (!this.ops) return;
    this.id = this.ops.begin({ kind: this.kind, node: this.node.id, who: this.opts.who ?? 'unknown', why: this.opts.why, details });
  }

  step(step: string): void {
    if (this.ops && this.id !== null) this.ops.step(this.id, step);
  }

  event(outcome: 'ok' | 'refused' | 'failed' | 'info', message: string, reason?: string, details: Record<string, unknown> = {}): void {
    this.opts.journal?.record({
      kind: EVENT_OF[this.kind],
      outcome,
      subject: this.node.hostname,
      ...(reason ? { reason } : {}),
      message,
      details: { node: this.node.id, operation: this.id, who: this.opts.who ?? null, why: this.opts.why ?? null, ...details },
    });
  }

  finish(status: 'done' | 'failed', reason?: string): void {
    if (this.ops && this.id !== null) this.ops.finish(this.id, status, reason);
  }
}

/**
 * Drains `nodeRef` (node ID, hostname or inventory name) through `manager`
 * keeping every replicated service at its desired count throughout; see the
 * file's comment. Refuses (exit 14, `drain-short`) when services would fall
 * short, naming each, unless `force`. On a failure after the first change the
 * services' settings are put back and the node stays paused (or drained).
 */
export async function drainNode(manager: Docker, nodeRef: string, opts: DrainOptions): Promise<DrainReport> {
  const started = Date.now();
  await mustManage(manager);
  const { nodes, services, tasks } = await readSwarm(manager);
  const target = resolveNode(nodes, nodeRef, opts.hosts);
  const node = refOf(target);
  const rec = new Recorder(opts, 'drain', node);
  const before = availabilityOf(target);
  if (before === 'drain') {
    rec.event('info', `node ${label(node)} is drained already: nothing changed`, 'already-drained');
    return { node, outcome: 'already-drained', operation: null, moved: [], stopped: [], short: [], seconds: 0 };
  }
  const plan = planDrainCapacity({ nodes, services, tasks }, target.ID);
  try {
    refuseUnlessForced(nodes, target, plan, opts.force);
  } catch (e) {
    const err = asAirlockError(e);
    rec.event('refused', err.message, err.reason);
    throw err;
  }
  const byId = new Map(services.map((s) => [s.ID, s]));
  const moving = plan.services.filter((s) => s.mode === 'replicated' && s.shortBy === 0 && byId.get(s.serviceId)?.Spec.Mode?.Replicated !== undefined);
  const short = plan.services.filter((s) => s.shortBy > 0);
  const held = moving.map((s) => heldOf(s.serviceId, byId.get(s.serviceId)!.Spec));
  const details: DrainDetails = { hostname: node.hostname, before, via: opts.via ?? null, services: held };
  rec.begin(details);
  const poll = opts.pollMs ?? 200;
  const deadline = Date.now() + opts.timeoutMs;
  let moved: DrainProgress[] = [];
  try {
    rec.step('pause');
    await setAvailability(manager, target.ID, 'pause');
    rec.step('move');
    for (const h of held) await updateSpec(manager, h.id, (spec) => movingSpec(spec, target.ID));
    moved = await waitFor(manager, target.ID, held.map((h) => h.id), true, deadline, poll, opts.onProgress);
    rec.step('drain');
    await setAvailability(manager, target.ID, 'drain');
    const rest = plan.services.filter((s) => !held.some((h) => h.id === s.serviceId)).map((s) => s.serviceId);
    await waitFor(manager, target.ID, rest, false, deadline, poll, opts.onProgress);
    rec.step('restore');
    await restoreServices(manager, held);
    rec.step('done');
    rec.finish('done');
    const stopped = plan.services.filter((s) => s.stops).map((s) => s.service);
    rec.event('ok', `node ${label(node)} drained: ${moved.length} service(s) moved, ${stopped.length} global stopped there${short.length ? `, ${short.length} left short (--force)` : ''}`, undefined, {
      moved: moved.map((p) => p.service),
      stopped,
      short: short.map((s) => s.service),
    });
    return { node, outcome: 'drained', operation: rec.id, moved, stopped, short, seconds: (Date.now() - started) / 1000 };
  } catch (e) {
    const err = asAirlockError(e);
    // The services go back to their own settings; the node stays out of scheduling for the operator to decide.
    const putBack = await restoreServices(manager, held).then(
      () => undefined,
      (re: unknown) => asAirlockError(re).message,
    );
    // Left running when the settings could not be put back: `airlock recover` does it.
    if (putBack === undefined) rec.finish('failed', err.reason);
    rec.event('failed', err.message, err.reason);
    const services = held.length === 0 ? 'no service was changed' : putBack === undefined ? 'the services\' placement and update settings were put back' : `putting the services' settings back failed too (${putBack}): run airlock recover`;
    throw new AirlockError(err.kind, `draining ${label(node)} failed: ${err.message}; ${services}; the node stays ${(await availabilityNow(manager, target.ID)) ?? 'as it is'}`, {
      reason: err.reason,
      subject: node.hostname,
      hint: err.hint ?? `airlock node activate ${node.hostname} to take it back, or fix the cause and drain again`,
      cause: err,
    });
  }
}

/** Refuses, before anything changes, a drain of `nodeId` that would leave a replicated service short, or the node is the only active one (exit 14). */
export async function refuseDrainShort(manager: Docker, nodeId: string): Promise<void> {
  const { nodes, services, tasks } = await readSwarm(manager);
  const target = findNode(nodes, nodeId);
  refuseUnlessForced(nodes, target, planDrainCapacity({ nodes, services, tasks }, target.ID), false);
}

function refuseUnlessForced(nodes: readonly SwarmNode[], target: SwarmNode, plan: DrainCapacity, force: boolean): void {
  if (force) return;
  const others = nodes.filter((n) => n.ID !== target.ID && n.Status.State === 'ready' && availabilityOf(n) === 'active');
  const name = label(refOf(target));
  if (others.length === 0) {
    throw new AirlockError('resources', `node ${name} is the only active node of the swarm: draining it stops every service`, {
      reason: 'only-active-node',
      subject: refOf(target).hostname,
      hint: 'activate or add another node first, or pass --force to stop its services',
    });
  }
  const short = plan.services.filter((s) => s.shortBy > 0);
  if (short.length === 0) return;
  const lines = short.map((s) => `${s.service} wants ${s.desired}, ${s.desired - s.shortBy} would run (${s.why ?? `${s.shortBy} fit nowhere else`})`);
  throw new AirlockError('resources', `draining ${name} would leave ${short.length} service(s) short: ${lines.join('; ')}`, {
    reason: 'drain-short',
    subject: refOf(target).hostname,
    hint: 'free or add room on the other nodes (labels, reservations, max replicas per node), or pass --force to drain anyway: those tasks stop',
  });
}

async function availabilityNow(manager: Docker, nodeId: string): Promise<Availability | undefined> {
  return manager.nodes.inspect(nodeId).then(availabilityOf, () => undefined);
}

/** Reads, changes and writes a service spec, reading again when it changed meanwhile. */
async function updateSpec(manager: Docker, id: string, change: (s: ServiceSpec) => ServiceSpec | undefined): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const service = await manager.services.inspect(id);
    const next = change(service.Spec);
    if (next === undefined) return;
    try {
      await manager.services.update(id, service.Version.Index, next);
      return;
    } catch (e) {
      if (!isOutOfSequence(e) || attempt >= 4) throw e;
    }
  }
}

/** Puts each service's placement and update settings back where they differ; a service removed meanwhile is left out. */
export async function restoreServices(manager: Docker, held: readonly HeldService[]): Promise<string[]> {
  const restored: string[] = [];
  for (const h of held) {
    try {
      await updateSpec(manager, h.id, (spec) => (needsRestore(spec, h) ? restoredSpec(spec, h) : undefined));
      restored.push(h.name);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
  return restored;
}

/**
 * Waits until none of the services' tasks runs on the node and, with
 * `replacements`, each runs its desired count elsewhere. Times out with the
 * counts of the services still short.
 */
async function waitFor(
  manager: Docker,
  nodeId: string,
  serviceIds: string[],
  replacements: boolean,
  deadline: number,
  pollMs: number,
  onProgress?: (p: DrainProgress[]) => void,
): Promise<DrainProgress[]> {
  if (serviceIds.length === 0) return [];
  for (;;) {
    const progress = await drainProgress(manager, nodeId, serviceIds);
    onProgress?.(progress);
    const pending = progress.filter((p) => p.stillOnNode > 0 || (replacements && p.runningElsewhere < p.desired));
    if (pending.length === 0) return progress;
    if (replacements) await refuseIfPaused(manager, serviceIds.filter((_, i) => pending.includes(progress[i]!)));
    if (Date.now() > deadline) {
      throw new AirlockError('engine', `after the timeout ${pending.map((p) => `${p.service} runs ${p.runningElsewhere}/${p.desired} elsewhere, ${p.stillOnNode} still on the node`).join('; ')}`, {
        reason: 'drain-timeout',
        subject: nodeId,
        hint: "the other nodes may lack the image or room (docker service ps shows why a task does not start); a longer --timeout, or fix and drain again",
      });
    }
    await sleep(pollMs);
  }
}

/**
 * A move whose update paused: a new task failed to start on the node the
 * scheduler chose (no such image there, a failing command). Said at once,
 * with the task's error, rather than after the whole timeout; the old task
 * still runs, since the new one never did.
 */
async function refuseIfPaused(manager: Docker, serviceIds: string[]): Promise<void> {
  for (const id of serviceIds) {
    const service = await manager.services.inspect(id);
    if (service.UpdateStatus?.State !== 'paused') continue;
    const tasks = await manager.tasks.list({ filters: { service: [id] } });
    const failed = tasks.filter((t) => t.Status.Err).sort((a, b) => (b.Status.Timestamp ?? '').localeCompare(a.Status.Timestamp ?? ''))[0];
    const where = failed?.NodeID ? ` on node ${failed.NodeID.slice(0, 12)}` : '';
    throw new AirlockError('engine', `${service.Spec.Name}: a replacement task failed to start${where}${failed ? ` (${failed.Status.Err})` : ''}, and the move paused${service.UpdateStatus.Message ? ` (${service.UpdateStatus.Message})` : ''}`, {
      reason: 'drain-update-paused',
      subject: service.Spec.Name,
      hint: 'give the other nodes what the service needs (its image: airlock bundle apply --inventory loads it on every host), then drain again',
    });
  }
}

/** `node activate`: the node takes tasks again; waits (up to timeoutMs) until it is ready. */
export async function activateNode(manager: Docker, nodeRef: string, opts: NodeOpOptions & { timeoutMs: number }): Promise<AvailabilityReport> {
  return changeAvailability(manager, nodeRef, 'activate', 'active', opts, async (id) => {
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
      const n = await manager.nodes.inspect(id);
      if (n.Status.State === 'ready' || Date.now() > deadline) return n.Status.State;
      await sleep(500);
    }
  });
}

/** `node pause`: no new task lands on the node; those there keep running. */
export async function pauseNode(manager: Docker, nodeRef: string, opts: NodeOpOptions = {}): Promise<AvailabilityReport> {
  return changeAvailability(manager, nodeRef, 'pause', 'pause', opts, async (id) => (await manager.nodes.inspect(id)).Status.State);
}

async function changeAvailability(
  manager: Docker,
  nodeRef: string,
  kind: Exclude<OperationKind, 'drain'>,
  availability: Availability,
  opts: NodeOpOptions & { timeoutMs?: number },
  settle: (nodeId: string) => Promise<string>,
): Promise<AvailabilityReport> {
  await mustManage(manager);
  const target = resolveNode(await manager.nodes.list(), nodeRef, opts.hosts);
  const node = refOf(target);
  const rec = new Recorder(opts, kind, node);
  const before = availabilityOf(target);
  rec.begin({ hostname: node.hostname, before, via: opts.via ?? null });
  try {
    rec.step('set');
    await setAvailability(manager, target.ID, availability);
    rec.step('wait');
    const state = await settle(target.ID);
    if (kind === 'activate' && state !== 'ready') {
      throw new AirlockError('engine', `node ${label(node)} is active, but ${state}, not ready, after ${Math.round((opts.timeoutMs ?? 0) / 1000)} s`, {
        reason: 'node-not-ready',
        subject: node.hostname,
        hint: "its engine may be down or unreachable from the managers: check it (airlock cluster status), it takes tasks once it is ready",
      });
    }
    rec.step('done');
    rec.finish('done');
    rec.event('ok', before === availability ? `node ${label(node)} was ${availability} already` : `node ${label(node)}: ${before} -> ${availability}`);
    return { node, before, after: availability, state, operation: rec.id };
  } catch (e) {
    const err = asAirlockError(e);
    rec.finish('failed', err.reason);
    rec.event('failed', err.message, err.reason);
    throw err;
  }
}

/** What `recover` did with an operation a kill left running. */
export interface RecoveredOperation {
  operation: number;
  kind: OperationKind;
  node: string;
  hostname: string;
  step: string;
  /** The services whose settings were put back. */
  restored: string[];
  /** The node's availability now (left as it is: the operator decides). */
  availability: Availability | 'unknown';
}

/** Closes an unfinished operation: a drain's services get their settings back; the node is left as it is. */
export async function recoverOperation(manager: Docker, journal: Journal, row: OperationRow): Promise<RecoveredOperation> {
  const details = JSON.parse(row.details) as Partial<DrainDetails>;
  const restored = row.kind === 'drain' ? await restoreServices(manager, details.services ?? []) : [];
  const availability = (await availabilityNow(manager, row.node)) ?? 'unknown';
  const ops = new Operations(journal);
  ops.finish(row.id, 'failed', 'interrupted');
  const hostname = details.hostname ?? row.node;
  journal.record({
    kind: 'node.recover',
    outcome: 'ok',
    subject: hostname,
    reason: 'interrupted',
    message: `${row.kind} of node ${hostname} interrupted at step ${row.step}: ${restored.length ? `settings of ${restored.join(', ')} put back` : 'nothing to put back'}; the node is ${availability}`,
    details: { operation: row.id, node: row.node, restored },
  });
  return { operation: row.id, kind: row.kind, node: row.node, hostname, step: row.step, restored, availability };
}
