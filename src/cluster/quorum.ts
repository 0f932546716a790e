/**
 * Raft quorum of a swarm's managers: how many must be reachable for the swarm
 * to take orders, and whether a change (one more manager down, one demoted,
 * one added) keeps it. Pure: it reads the node list a manager returns.
 */
import type { SwarmNode } from '../docker/types.js';

export interface Quorum {
  managers: number;
  reachable: number;
  /** The majority of the managers: floor(managers / 2) + 1. */
  needed: number;
  /** How many more reachable managers may go down before the swarm stops taking orders (negative: lost). */
  spare: number;
}

export function quorumOf(nodes: readonly SwarmNode[]): Quorum {
  const managers = nodes.filter((n) => n.ManagerStatus);
  const reachable = managers.filter((n) => n.ManagerStatus!.Reachability === 'reachable').length;
  return measure(managers.length, reachable);
}

function measure(managers: number, reachable: number): Quorum {
  const needed = Math.floor(managers / 2) + 1;
  return { managers, reachable, needed, spare: reachable - needed };
}

/** Why taking manager `nodeId` down for a while (maintenance, an engine restart) would lose quorum, or null when it keeps it. */
export function downBreaksQuorum(nodes: readonly SwarmNode[], nodeId: string, alsoDown: readonly string[] = []): string | null {
  const down = new Set([nodeId, ...alsoDown]);
  const q = quorumOf(nodes);
  const lost = nodes.filter((n) => down.has(n.ID) && n.ManagerStatus?.Reachability === 'reachable').length;
  if (lost === 0) return null;
  const after = measure(q.managers, q.reachable - lost);
  return after.spare < 0 ? `${after.reachable} of ${q.managers} managers would be reachable, and the swarm needs ${q.needed}` : null;
}

/** Why demoting manager `nodeId` would lose quorum, or null: the demoted one leaves the count and the reachable. */
export function demoteBreaksQuorum(nodes: readonly SwarmNode[], nodeId: string): string | null {
  const node = nodes.find((n) => n.ID === nodeId);
  if (!node?.ManagerStatus) return null;
  const q = quorumOf(nodes);
  if (q.spare < 0) return `the swarm has lost quorum already (${q.reachable} of ${q.managers} managers reachable, ${q.needed} needed)`;
  const after = measure(q.managers - 1, q.reachable - (node.ManagerStatus.Reachability === 'reachable' ? 1 : 0));
  if (after.managers === 0) return 'it is the last manager';
  return after.spare < 0 ? `${after.reachable} of the ${after.managers} managers left would be reachable, and they need ${after.needed}` : null;
}
