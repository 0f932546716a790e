/**
 * `airlock cluster maintain`: the inventory's hosts taken out of the swarm
 * one at a time (or a few, within capacity and quorum), each drained, given
 * its maintenance (a command over SSH, or an engine upgrade), waited for,
 * activated, and the swarm's services waited for, before the next. The swarm
 * is driven through a manager that is not being maintained. The first
 * failure stops the run with that node left drained; each node carries the
 * run's mark (MAINTAIN_LABEL), so that a re-run resumes where it stopped.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Docker } from '../docker/index.js';
import { AirlockError, asAirlockError } from '../errors/index.js';
import type { Inventory } from '../remote/inventory.js';
import { connectHost } from '../remote/ssh.js';
import { closeAll, connectAll, type HostConnection } from './connect.js';
import { availabilitySteps, type NodeSteps } from './maintain-drain.js';
import { editNodeSpec } from './node-availability.js';
import { MAINTAIN_LABEL, markOf, markText, nextBatch, refusals, runOrder, type MaintainStep, type MaintainTarget, type Mark } from './maintain-plan.js';
import { rolloutBundle } from './rollout.js';

export type MaintainAction = { run: string } | { engine: string; remoteAirlock?: string };

export interface MaintainOptions {
  inventory: Inventory;
  /** The hosts to maintain, in this order (default: every inventory host). */
  hosts?: string[];
  action: MaintainAction;
  /** Hosts down at once, at most (default 1). */
  parallel?: number;
  /** The longest each step may take (the command, each wait). */
  timeoutMs: number;
  acceptNew?: boolean;
  /** How nodes are drained and activated (default: availabilitySteps). */
  steps?: NodeSteps;
  onProgress?: (host: string, step: MaintainStep | 'skip' | 'done' | 'failed', detail: string) => void;
}

export interface HostOutcome {
  host: string;
  outcome: 'done' | 'skipped' | 'failed' | 'not-started';
  /** Each step taken and its seconds. */
  steps: { step: MaintainStep; seconds: number }[];
  seconds: number;
  /** Where it failed, and why. */
  failedAt?: MaintainStep;
  error?: AirlockError;
  /** The last lines the command printed (stdout, then stderr). */
  outputTail?: string;
}

export interface MaintainReport {
  ok: boolean;
  runId: string;
  /** The run resumed, when it was one. */
  resumed?: string;
  hosts: HostOutcome[];
}

const OUTPUT_TAIL_LINES = 20;
/** Between two looks at the swarm while waiting: an operator's tool, a few calls each time. */
const POLL_MS = 100;

/** The last lines of a command's output, as the failure report shows them. */
export function outputTail(stdout: string, stderr: string): string {
  return [...stdout.trimEnd().split('\n'), ...stderr.trimEnd().split('\n')].filter((l) => l !== '').slice(-OUTPUT_TAIL_LINES).join('\n');
}

export async function clusterMaintain(opts: MaintainOptions): Promise<MaintainReport> {
  const names = opts.hosts ?? opts.inventory.hosts.map((h) => h.name);
  const unknown = names.filter((n) => !opts.inventory.hosts.some((h) => h.name === n));
  if (unknown.length > 0) {
    throw new AirlockError('usage', `--hosts names ${unknown.join(', ')}, not in the inventory`, { reason: 'unknown-host', hint: `the inventory's hosts: ${opts.inventory.hosts.map((h) => h.name).join(', ')}` });
  }
  const { connections, observed } = await connectAll(opts.inventory, opts.acceptNew ? { acceptNew: true } : {});
  try {
    await reachUnfinished(opts, names, connections);
    const unreachable = names.filter((n) => !connections.has(n));
    if (unreachable.length > 0) {
      const why = unreachable.map((n) => {
        const o = observed.get(n);
        return o && !o.ok ? o.error.message : `${n}: not reached`;
      });
      throw new AirlockError('remote', `cannot maintain unreachable hosts: ${why.join('; ')}`, { reason: 'unreachable', hint: 'nothing was changed; bring the hosts back or leave them out with --hosts' });
    }
    return await maintainConnected(opts, names, connections);
  } finally {
    await closeAll(connections);
  }
}

/**
 * A host a previous run left unfinished may have no engine answering (its
 * command stopped dockerd and failed): reached over SSH alone, it is taken
 * again, so that the new command can bring it back. Its node is the one at
 * its address that carries the run's unfinished mark.
 */
async function reachUnfinished(opts: MaintainOptions, names: string[], connections: Map<string, HostConnection>): Promise<void> {
  const missing = names.filter((n) => !connections.has(n));
  if (missing.length === 0) return;
  const nodes = await (await managerOutside(connections, new Set())).nodes.list().catch(() => []);
  for (const name of missing) {
    const host = opts.inventory.hosts.find((h) => h.name === name)!;
    const node = nodes.find((n) => n.Status.Addr === host.address && markOf(n) !== undefined && markOf(n)!.step !== 'done');
    if (!node) continue;
    const session = await connectHost(host, opts.acceptNew ? { acceptNew: true } : {}).catch(() => undefined);
    if (!session) continue;
    connections.set(name, {
      host,
      session,
      docker: session.docker(),
      facts: { engineVersion: '', apiVersion: '', engineId: '', swarm: { state: '', nodeId: node.ID, controlAvailable: false, error: 'the engine does not answer' } },
    });
  }
}

async function maintainConnected(opts: MaintainOptions, names: string[], connections: Map<string, HostConnection>): Promise<MaintainReport> {
  const progress = opts.onProgress ?? (() => undefined);
  const steps = opts.steps ?? availabilitySteps({ timeoutMs: opts.timeoutMs });
  const manager = await managerOutside(connections, new Set());
  const nodes = await manager.nodes.list();
  const targets: MaintainTarget[] = names.map((host) => {
    const nodeId = connections.get(host)!.facts.swarm.nodeId;
    if (!nodeId || !nodes.some((n) => n.ID === nodeId)) {
      throw new AirlockError('notFound', `${host} is not a node of the swarm: nothing to drain there`, { reason: 'not-in-swarm', subject: host, hint: 'airlock cluster up joins it; or leave it out with --hosts' });
    }
    return { host, nodeId };
  });
  const refused = refusals(nodes, targets);
  if (refused.length > 0) {
    throw new AirlockError('policy', `nothing was started: ${refused.join('; ')}`, {
      reason: 'quorum',
      hint: 'maintain the other hosts (--hosts), or add managers first (cluster up) so that one can be down',
    });
  }
  const order = runOrder(targets, nodes);
  const runId = order.resumed ?? `${new Date().toISOString().replace(/[-:]|\.\d+/g, '')}-${randomBytes(3).toString('hex')}`;
  const outcomes = new Map<string, HostOutcome>(names.map((host) => [host, { host, outcome: 'not-started', steps: [], seconds: 0 }]));
  for (const host of order.skipped) {
    outcomes.get(host)!.outcome = 'skipped';
    progress(host, 'skip', `done by run ${runId} already`);
  }
  let pending = order.order;
  let ok = true;
  while (pending.length > 0 && ok) {
    const down = new Set<string>();
    const api = await managerOutside(connections, down, pending[0]);
    const [n, services, tasks] = await Promise.all([api.nodes.list(), api.services.list(), api.tasks.list()]);
    const batch = nextBatch({ nodes: n, services, tasks }, pending, opts.parallel ?? 1);
    if (batch.blocked) {
      const first = outcomes.get(pending[0]!.host)!;
      first.outcome = 'failed';
      first.failedAt = 'drain';
      first.error = new AirlockError('maintenance', `${pending[0]!.host}: not drained: ${batch.blocked}`, { reason: 'capacity', subject: pending[0]!.host, hint: 'make room on the other nodes (or lower the replicas), then run again: the run resumes here' });
      progress(pending[0]!.host, 'failed', first.error.message);
      ok = false;
      break;
    }
    for (const t of batch.hosts) down.add(t.nodeId);
    const results = await Promise.all(batch.hosts.map((t) => maintainHost(opts, steps, connections, t, down, runId, outcomes.get(t.host)!)));
    ok = results.every(Boolean);
    pending = pending.filter((t) => !batch.hosts.includes(t));
  }
  if (ok) await clearMarks(await managerOutside(connections, new Set()), runId);
  return { ok, runId, ...(order.resumed ? { resumed: order.resumed } : {}), hosts: names.map((h) => outcomes.get(h)!) };
}

/** One host through its steps; false (with the outcome filled) when a step failed. */
async function maintainHost(
  opts: MaintainOptions,
  steps: NodeSteps,
  connections: Map<string, HostConnection>,
  t: MaintainTarget,
  down: Set<string>,
  runId: string,
  outcome: HostOutcome,
): Promise<boolean> {
  const progress = opts.onProgress ?? (() => undefined);
  const conn = connections.get(t.host)!;
  // One manager for the host's steps, looked for once (each look asks the managers whether they lead).
  let chosen: Docker | undefined;
  const api = async () => (chosen ??= await managerOutside(connections, down, t));
  const started = Date.now();
  let step: MaintainStep = 'drain';
  const timed = async (s: MaintainStep, detail: string, body: () => Promise<void>) => {
    step = s;
    progress(t.host, s, detail);
    const t0 = Date.now();
    await body();
    outcome.steps.push({ step: s, seconds: (Date.now() - t0) / 1000 });
  };
  // The node's mark says the run took it (and, after a failure, the step it stopped at); each write
  // is a raft round, so only those, not one per step.
  try {
    await mark(await api(), t.nodeId, { runId, step });
    await timed('drain', 'draining: its tasks start elsewhere first', async () => {
      await steps.drain(await api(), t.nodeId, (p) => {
        const moving = p.filter((s) => s.desired > 0).map((s) => `${s.service} ${s.runningElsewhere}/${s.desired}`);
        if (moving.length > 0) progress(t.host, 'drain', `elsewhere: ${moving.join(', ')}`);
      });
    });
    await timed('run', describe(opts.action), () => runAction(opts, conn, outcome));
    await timed('ready', 'waiting for its engine and node', () => waitReady(conn, t, api, opts.timeoutMs));
    await timed('activate', 'activating', async () => steps.activate(await api(), t.nodeId));
    await timed('settle', "waiting for the swarm's services to run their counts", async () => waitServices(await api(), opts.timeoutMs));
    await mark(await api(), t.nodeId, { runId, step: 'done' });
    outcome.outcome = 'done';
    outcome.seconds = (Date.now() - started) / 1000;
    progress(t.host, 'done', `in ${outcome.seconds.toFixed(1)} s`);
    return true;
  } catch (e) {
    const err = asAirlockError(e);
    outcome.outcome = 'failed';
    outcome.failedAt = step;
    outcome.seconds = (Date.now() - started) / 1000;
    outcome.error =
      err.kind === 'maintenance'
        ? err
        : new AirlockError('maintenance', `${t.host}: ${step} failed: ${err.message}`, {
            reason: `maintain-${step}-failed`,
            subject: t.host,
            hint: `${err.hint ? `${err.hint.replace(/\.$/, '')}; ` : ''}the node stays as it is (drained once the drain began); run again to resume from ${t.host}`,
            cause: err,
          });
    progress(t.host, 'failed', outcome.error.message);
    await mark(await api(), t.nodeId, { runId, step }).catch(() => undefined);
    return false;
  }
}

const describe = (a: MaintainAction): string => ('run' in a ? `running \`${a.run}\`` : `installing the engine of ${a.engine}`);

/** The host's maintenance: the command over SSH (its exit code checked), or the engine upgrade the jump box drained it for. */
async function runAction(opts: MaintainOptions, conn: HostConnection, outcome: HostOutcome): Promise<void> {
  const a = opts.action;
  if ('run' in a) {
    const r = await conn.session.exec(a.run, { timeoutMs: opts.timeoutMs });
    outcome.outputTail = outputTail(r.stdout, r.stderr);
    if (r.code !== 0) {
      throw new AirlockError('maintenance', `${conn.host.name}: \`${a.run}\` exited ${r.code}${outcome.outputTail ? `; its output ends:\n${outcome.outputTail}` : ''}`, {
        reason: 'maintain-command-failed',
        subject: conn.host.name,
        hint: `the node stays drained; fix the host, then run again to resume from ${conn.host.name}`,
      });
    }
    return;
  }
  const report = await rolloutBundle({
    inventory: { ...opts.inventory, hosts: [conn.host] },
    bundle: a.engine,
    install: 'engine',
    drainedByCaller: true,
    ...(opts.acceptNew ? { acceptNew: true } : {}),
    ...(a.remoteAirlock ? { remoteAirlock: a.remoteAirlock } : {}),
    timeout: `${Math.ceil(opts.timeoutMs / 1000)}s`,
  });
  const h = report.hosts[0];
  if (h?.error) throw new AirlockError('maintenance', `${conn.host.name}: engine not installed (${h.error.step}): ${h.error.message}`, { reason: `maintain-engine-${h.error.reason}`, subject: conn.host.name, ...(h.error.hint ? { hint: h.error.hint } : {}) });
}

/**
 * A reachable manager that is not among `down` (the nodes maintained now),
 * nor `avoid`; the first that answers. Managers restarted earlier answer
 * again through their forwarded socket (the client retries a restarting engine).
 */
async function managerOutside(connections: Map<string, HostConnection>, down: Set<string>, avoid?: MaintainTarget): Promise<Docker> {
  const candidates = [...connections.values()].filter((c) => c.facts.swarm.controlAvailable && !down.has(c.facts.swarm.nodeId) && c.host.name !== avoid?.host);
  for (const c of candidates) {
    const info = await c.docker.system.info().catch(() => undefined);
    if (info?.Swarm.ControlAvailable) return c.docker;
  }
  // A swarm of one: its manager is the host maintained, and drives itself.
  const only = [...connections.values()].find((c) => c.facts.swarm.controlAvailable);
  if (only && candidates.length === 0 && connections.size === 1) return only.docker;
  throw new AirlockError('engine', `no swarm manager of the inventory answers${down.size > 0 || avoid ? ' besides the hosts under maintenance' : ''}`, {
    reason: 'no-manager',
    hint: 'check the managers (airlock cluster status); the run resumes when started again',
  });
}

/** Writes the run's mark on the node (read, change, write back at the version read). */
function mark(manager: Docker, nodeId: string, m: Mark): Promise<void> {
  return editNodeSpec(manager, nodeId, (spec) => (spec.Labels?.[MAINTAIN_LABEL] === markText(m) ? undefined : { ...spec, Labels: { ...spec.Labels, [MAINTAIN_LABEL]: markText(m) } }));
}

/** A finished run leaves no marks: the next run starts anew. */
async function clearMarks(manager: Docker, runId: string): Promise<void> {
  const marked = (await manager.nodes.list()).filter((n) => markOf(n)?.runId === runId);
  await Promise.all(
    marked.map((n) =>
      editNodeSpec(manager, n.ID, (spec) => {
        const { [MAINTAIN_LABEL]: _, ...labels } = spec.Labels ?? {};
        return { ...spec, Labels: labels };
      }),
    ),
  );
}

async function until<T>(what: string, subject: string, timeoutMs: number, probe: () => Promise<T | undefined>, lastSeen: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) {
      throw new AirlockError('engine', `${subject}: ${what} not within ${Math.round(timeoutMs / 1000)} s (${lastSeen()})`, { reason: 'not-ready', subject });
    }
    await sleep(POLL_MS);
  }
}

/** The host's engine answers as the same swarm node, and the manager lists the node ready (a manager: reachable). */
async function waitReady(conn: HostConnection, t: MaintainTarget, api: () => Promise<Docker>, timeoutMs: number): Promise<void> {
  let seen = 'its engine did not answer';
  await until('engine and node ready', t.host, timeoutMs, async () => {
    const info = await conn.docker.system.info();
    seen = `its engine says swarm ${info.Swarm.LocalNodeState || 'unknown'}`;
    if (info.Swarm.NodeID !== t.nodeId || info.Swarm.LocalNodeState !== 'active') return undefined;
    const node = await (await api()).nodes.inspect(t.nodeId);
    seen = `the manager lists the node ${node.Status.State}${node.ManagerStatus ? `, ${node.ManagerStatus.Reachability}` : ''}`;
    if (node.Status.State !== 'ready') return undefined;
    if (node.ManagerStatus && (node.ManagerStatus.Reachability !== 'reachable' || !info.Swarm.ControlAvailable)) return undefined;
    return true;
  }, () => seen);
}

/** Every replicated service of the swarm runs its count. */
async function waitServices(manager: Docker, timeoutMs: number): Promise<void> {
  let short: string[] = [];
  await until("the swarm's services at their counts", 'swarm', timeoutMs, async () => {
    const [services, tasks] = await Promise.all([manager.services.list(), manager.tasks.list({ filters: { 'desired-state': ['running'] } })]);
    short = services.flatMap((s) => {
      const want = s.Spec.Mode?.Replicated?.Replicas;
      if (want === undefined) return [];
      const running = tasks.filter((t) => t.ServiceID === s.ID && t.Status.State === 'running').length;
      return running < want ? [`${s.Spec.Name} ${running}/${want}`] : [];
    });
    return short.length === 0 ? true : undefined;
  }, () => short.join(', '));
}
