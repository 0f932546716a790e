/**
 * How a maintenance takes a node out and puts it back: the one seam between
 * `cluster maintain` and the node's availability. Docker's drain stops the
 * node's tasks while their replacements start, so a service runs below its
 * count meanwhile (moby 33220, 34139). Here the node is paused first, each
 * replicated service with tasks there is raised by that many replicas (they
 * can start only elsewhere); once those run the node is drained, and once
 * swarm's replacements of its tasks run too the count is set back: the
 * service never runs fewer than it should.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Docker } from '../docker/index.js';
import { AirlockError } from '../errors/index.js';
import { drainAndWait, drainProgress, setAvailability, type DrainProgress } from './node-availability.js';

export interface NodeSteps {
  /** Drains the node; returns once its replicated tasks run their counts on other nodes. */
  drain(manager: Docker, nodeId: string, onProgress?: (p: DrainProgress[]) => void): Promise<void>;
  /** Makes the node active again. */
  activate(manager: Docker, nodeId: string): Promise<void>;
}

/** The steps over the node's availability (node-availability.ts), each wait at most `timeoutMs`. */
export function availabilitySteps(opts: { timeoutMs: number }): NodeSteps {
  return {
    async drain(manager, nodeId, onProgress) {
      const others = (await manager.nodes.list()).filter((n) => n.ID !== nodeId);
      if (others.length === 0) {
        // The swarm's only node: its tasks can go nowhere; the operator maintains it alone, down time accepted.
        await drainAndWait(manager, nodeId, { timeoutMs: opts.timeoutMs, replacements: false, ...(onProgress ? { onProgress } : {}) });
        return;
      }
      await surgeAway(manager, nodeId, opts.timeoutMs, onProgress);
    },
    async activate(manager, nodeId) {
      await retryStale(() => setAvailability(manager, nodeId, 'active'));
    },
  };
}

/** Replicated services with running tasks on the node, and how many there. */
async function tasksOnNode(manager: Docker, nodeId: string): Promise<Map<string, number>> {
  const onNode = await manager.tasks.list({ filters: { node: [nodeId], 'desired-state': ['running'] } });
  const counts = new Map<string, number>();
  for (const t of onNode) counts.set(t.ServiceID, (counts.get(t.ServiceID) ?? 0) + 1);
  return counts;
}

/**
 * Runs a read-change-write of a swarm object again when it lost the race:
 * another write came between (the orchestrator, a deploy), or the manager
 * read from is a follower a step behind the one written through.
 */
export async function retryStale<T>(write: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await write();
    } catch (e) {
      if (attempt >= 10 || !(e instanceof AirlockError) || e.reason !== 'out-of-sequence') throw e;
      await sleep(200);
    }
  }
}

/** Adds `delta` to the service's replicas; undefined for a service that is not replicated. */
function scaleBy(manager: Docker, serviceId: string, delta: number): Promise<number | undefined> {
  return retryStale(async () => {
    const s = await manager.services.inspect(serviceId);
    const replicas = s.Spec.Mode?.Replicated?.Replicas;
    if (replicas === undefined) return undefined;
    await manager.services.update(serviceId, s.Version.Index, { ...s.Spec, Mode: { Replicated: { Replicas: replicas + delta } } });
    return replicas;
  });
}

async function surgeAway(manager: Docker, nodeId: string, timeoutMs: number, onProgress?: (p: DrainProgress[]) => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const onNode = await tasksOnNode(manager, nodeId);
  if ((await manager.nodes.inspect(nodeId)).Spec.Availability === 'drain') {
    // Drained already (a run resumed): nothing to raise, only what is left there to see gone.
    await waitFor(manager, nodeId, [...onNode.keys()], deadline, timeoutMs, (p) => p.stillOnNode === 0 && p.runningElsewhere >= p.desired, onProgress);
    return;
  }
  await retryStale(() => setAvailability(manager, nodeId, 'pause'));
  const raised = new Map<string, number>();
  try {
    for (const [id, k] of onNode) {
      const before = await scaleBy(manager, id, k);
      if (before !== undefined) raised.set(id, k);
    }
    // The extra replicas run elsewhere (the node is paused): as many as the node holds now run off it.
    await waitFor(manager, nodeId, [...raised.keys()], deadline, timeoutMs, (p, id) => p.runningElsewhere >= p.desired - raised.get(id)!, onProgress);
    await retryStale(() => setAvailability(manager, nodeId, 'drain'));
    // Swarm replaces the node's tasks even so, and scaling down while a replacement is on its way
    // may remove a running task and keep the slot being replaced (seen on the lab): the count is set
    // back once each replacement runs, or waits for a node (those go first).
    await replacementsPlaced(manager, nodeId, [...raised.keys()], deadline, timeoutMs);
  } finally {
    for (const [id, k] of raised) await scaleBy(manager, id, -k);
  }
  await waitFor(manager, nodeId, [...onNode.keys()], deadline, timeoutMs, (p) => p.stillOnNode === 0 && p.runningElsewhere >= p.desired, onProgress);
}

async function waitFor(
  manager: Docker,
  nodeId: string,
  services: string[],
  deadline: number,
  timeoutMs: number,
  done: (p: DrainProgress, serviceId: string) => boolean,
  onProgress?: (p: DrainProgress[]) => void,
): Promise<void> {
  for (;;) {
    const progress = await drainProgress(manager, nodeId, services);
    onProgress?.(progress);
    const short = progress.filter((p, i) => !done(p, services[i]!));
    if (short.length === 0) return;
    if (Date.now() > deadline) {
      throw new AirlockError('engine', `node ${nodeId}: after ${Math.round(timeoutMs / 1000)} s ${short.map((p) => `${p.service} runs ${p.runningElsewhere}/${p.desired} elsewhere (${p.stillOnNode} still on the node)`).join('; ')}`, {
        reason: 'drain-timeout',
        subject: nodeId,
        hint: 'the other nodes may lack the image or room; the node stays paused or drained: fix it and run again, or activate it',
      });
    }
    await sleep(100);
  }
}

/**
 * Until, for each service, the drained node's tasks have stopped and swarm's
 * replacements exist (it creates one only once the task it replaces has
 * stopped) and each runs, or waits for a node: no task is starting on one.
 */
async function replacementsPlaced(manager: Docker, nodeId: string, services: string[], deadline: number, timeoutMs: number): Promise<void> {
  for (;;) {
    const waiting: string[] = [];
    for (const id of services) {
      const [service, tasks] = await Promise.all([manager.services.inspect(id), manager.tasks.list({ filters: { service: [id] } })]);
      const replicas = service.Spec.Mode?.Replicated?.Replicas ?? 0;
      const live = tasks.filter((t) => t.DesiredState === 'running' || t.DesiredState === 'ready');
      const stopping = tasks.filter((t) => t.NodeID === nodeId && t.Status.State === 'running').length;
      const starting = live.filter((t) => t.NodeID && t.NodeID !== nodeId && t.Status.State !== 'running').length;
      if (stopping > 0 || starting > 0 || live.length < replicas) waiting.push(`${service.Spec.Name}: ${stopping} stopping on the node, ${live.length}/${replicas} placed, ${starting} starting`);
    }
    if (waiting.length === 0) return;
    if (Date.now() > deadline) {
      throw new AirlockError('engine', `node ${nodeId}: after ${Math.round(timeoutMs / 1000)} s, ${waiting.join('; ')}`, {
        reason: 'drain-timeout',
        subject: nodeId,
        hint: 'the other nodes may lack the image or room; the node stays drained: fix it and run again, or activate it',
      });
    }
    await sleep(100);
  }
}
