/**
 * How a maintenance takes a node out and puts it back: the one seam between
 * `cluster maintain` and the node's availability. The drain is `node drain`'s
 * (node-drain.ts): the node's replicated tasks start elsewhere before they
 * stop there, journaled where the jump box keeps its journal so that
 * `airlock recover` puts back what a killed run left changed.
 */
import type { Docker } from '../docker/index.js';
import type { DrainProgress } from './node-availability.js';
import { activateNode, drainNode, type NodeOpOptions } from './node-drain.js';

export interface NodeSteps {
  /** Drains the node; returns once its replicated tasks run their counts on other nodes. */
  drain(manager: Docker, nodeId: string, onProgress?: (p: DrainProgress[]) => void): Promise<void>;
  /** Makes the node active again, and waits until it is ready. */
  activate(manager: Docker, nodeId: string): Promise<void>;
}

/** The steps of `node drain` and `node activate`, each wait at most `timeoutMs`, journaled as `journal` says. */
export function availabilitySteps(opts: { timeoutMs: number } & NodeOpOptions): NodeSteps {
  return {
    async drain(manager, nodeId, onProgress) {
      // The swarm's only node: its tasks can go nowhere; maintaining it alone, the operator accepted the down time.
      const alone = (await manager.nodes.list()).every((n) => n.ID === nodeId);
      await drainNode(manager, nodeId, { ...opts, force: alone, ...(onProgress ? { onProgress } : {}) });
    },
    async activate(manager, nodeId) {
      await activateNode(manager, nodeId, opts);
    },
  };
}
