/**
 * Setting a swarm node's availability through a manager, and reading how far
 * a drain got (node-drain.ts is the drain that keeps capacity).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Docker } from '../docker/index.js';
import { isOutOfSequence } from '../docker/errors.js';
import type { NodeSpec } from '../docker/types.js';

export type Availability = NonNullable<NodeSpec['Availability']>;

/**
 * Reads the node's spec, changes it and writes it back at the version read;
 * `change` returns undefined for no write. Read again when the write lost
 * the race: another write came between, or the manager read from is a
 * follower a step behind the one written through.
 */
export async function editNodeSpec(manager: Docker, nodeId: string, change: (spec: NodeSpec) => NodeSpec | undefined): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const node = await manager.nodes.inspect(nodeId);
    const spec = change(node.Spec);
    if (!spec) return;
    try {
      await manager.nodes.update(nodeId, node.Version.Index, spec);
      return;
    } catch (e) {
      if (!isOutOfSequence(e) || attempt >= 10) throw e;
      await sleep(200);
    }
  }
}

/** Sets the node's availability; returns what it was. */
export async function setAvailability(manager: Docker, nodeId: string, availability: Availability): Promise<Availability> {
  let before: Availability = 'active';
  await editNodeSpec(manager, nodeId, (spec) => {
    before = spec.Availability ?? 'active';
    return before === availability ? undefined : { ...spec, Availability: availability };
  });
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

/** Each service's counts: desired, running on other nodes, still on the node (running or meant to). */
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
