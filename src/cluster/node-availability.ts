/**
 * Setting a swarm node's availability through a manager, and reading how far
 * a drain got (node-drain.ts is the drain that keeps capacity).
 */
import type { Docker } from '../docker/index.js';
import type { NodeSpec } from '../docker/types.js';

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
