/**
 * Setting a swarm node's availability through a manager, and a drain that
 * waits: Docker's own returns at once, while the node's tasks still run and
 * before their replacements do (moby 33220, 34139).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Docker } from '../docker/index.js';
import type { NodeSpec } from '../docker/types.js';
import { AirlockError } from '../errors/index.js';

export type Availability = NonNullable<NodeSpec['Availability']>;

/** Sets the node's availability (read, change, write back at the version read); returns what it was. */
export async function setAvailability(manager: Docker, nodeId: string, availability: Availability): Promise<Availability> {
  const node = await manager.nodes.inspect(nodeId);
  const before = node.Spec.Availability ?? 'active';
  if (before !== availability) await manager.nodes.update(nodeId, node.Version.Index, { ...node.Spec, Availability: availability });
  return before;
}

/** A service the drain waits for: how many of its tasks must run, and how many do elsewhere. */
export interface DrainProgress {
  service: string;
  desired: number;
  runningElsewhere: number;
  stillOnNode: number;
}

/** Whether another node than `nodeId` is ready and active, so that tasks have somewhere to go. */
export async function otherActiveNodes(manager: Docker, nodeId: string): Promise<number> {
  const nodes = await manager.nodes.list();
  return nodes.filter((n) => n.ID !== nodeId && n.Status.State === 'ready' && (n.Spec.Availability ?? 'active') === 'active').length;
}

/**
 * Drains the node and waits until none of its tasks runs and every
 * replicated service that had a task there runs its desired count on other
 * nodes (a global service's task simply stops). With `replacements: false`
 * (the node is the only one; the caller accepted the down time) it waits only
 * for the node's tasks to stop.
 */
export async function drainAndWait(
  manager: Docker,
  nodeId: string,
  opts: { timeoutMs: number; replacements: boolean; onProgress?: (p: DrainProgress[]) => void },
): Promise<void> {
  const onNode = await manager.tasks.list({ filters: { node: [nodeId], 'desired-state': ['running'] } });
  const affected = [...new Set(onNode.map((t) => t.ServiceID))];
  await setAvailability(manager, nodeId, 'drain');
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const progress = await drainProgress(manager, nodeId, affected);
    opts.onProgress?.(progress);
    const done = progress.every((p) => p.stillOnNode === 0 && (!opts.replacements || p.runningElsewhere >= p.desired));
    if (done) return;
    if (Date.now() > deadline) {
      const short = progress.filter((p) => p.stillOnNode > 0 || (opts.replacements && p.runningElsewhere < p.desired));
      throw new AirlockError('engine', `node ${nodeId} drained, but after ${Math.round(opts.timeoutMs / 1000)} s ${short.map((p) => `${p.service} runs ${p.runningElsewhere}/${p.desired} elsewhere (${p.stillOnNode} still on the node)`).join('; ')}`, {
        reason: 'drain-timeout',
        subject: nodeId,
        hint: 'the other nodes may lack capacity or the image; the node stays drained: airlock node activate, or fix and run again',
      });
    }
    await sleep(500);
  }
}

/** Per service of `services`: its desired count, its tasks running elsewhere than `nodeId`, and those still on it. */
export async function drainProgress(manager: Docker, nodeId: string, services: string[]): Promise<DrainProgress[]> {
  return Promise.all(
    services.map(async (id) => {
      const service = await manager.services.inspect(id).catch(() => undefined);
      const tasks = await manager.tasks.list({ filters: { service: [id] } });
      const running = tasks.filter((t) => t.Status.State === 'running');
      const replicas = service?.Spec.Mode?.Replicated?.Replicas;
      return {
        service: service?.Spec.Name ?? id,
        // A global service (or one gone meanwhile) needs nothing elsewhere.
        desired: replicas ?? 0,
        runningElsewhere: running.filter((t) => t.NodeID !== nodeId).length,
        stillOnNode: tasks.filter((t) => t.NodeID === nodeId && (t.Status.State === 'running' || t.DesiredState === 'running')).length,
      };
    }),
  );
}
