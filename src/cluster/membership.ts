/**
 * The swarm's membership brought to the inventory's, planned whole before
 * anything is changed: pure, from the node list a manager returns.
 *
 * - Promotions come first, then label updates, then demotions (an
 *   unreachable manager's first: it takes no reachable vote away), so that
 *   quorum holds at every step. A demotion that would lose it refuses the
 *   whole plan, naming the host (quorum.ts).
 * - Nodes no inventory host is are `unlisted`: reported, or with `prune`
 *   drained, demoted if managers (quorum checked like any demotion) and
 *   removed.
 */
import { AirlockError } from '../errors/index.js';
import type { NodeSpec, SwarmNode } from '../docker/index.js';
import { hostLabel, type InventoryHost } from '../remote/inventory.js';
import { nodeUpdate } from './plan.js';
import { demoteBreaksQuorum } from './quorum.js';

/** One node update of the plan. */
export interface NodeChange {
  host: InventoryHost;
  nodeId: string;
  spec: NodeSpec;
  changes: string[];
}

/** A swarm node that is no inventory host. */
export interface UnlistedNode {
  nodeId: string;
  hostname: string;
  /** The address the swarm knows it by. */
  address: string;
  role: 'manager' | 'worker';
  state: SwarmNode['Status']['State'];
}

export interface NodePlan {
  promote: NodeChange[];
  update: NodeChange[];
  demote: NodeChange[];
  unlisted: UnlistedNode[];
  /** Why the plan cannot be carried out (a demotion would lose quorum): nothing of it is done. */
  refusal?: AirlockError;
}

export interface PlanNodesInput {
  /** The inventory hosts that are swarm members, by the node id their engines report. */
  members: readonly { host: InventoryHost; nodeId: string }[];
  /** Inventory hosts that could not be reached: matched to nodes by address, never unlisted. */
  unreached: readonly InventoryHost[];
  /** Node ids of inventory hosts reached but left out of this run (a locked swarm, a failed join): never unlisted. */
  otherNodeIds?: readonly string[];
  /** The swarm's nodes, as the manager lists them. */
  nodes: readonly SwarmNode[];
  prune: boolean;
  /** Managers that join before the plan is carried out (cluster up joins first): counted as reachable. */
  joiningManagers?: number;
}

export function planNodes(input: PlanNodesInput): NodePlan {
  const plan: NodePlan = { promote: [], update: [], demote: [], unlisted: unlistedNodes(input) };
  const byId = new Map(input.nodes.map((n) => [n.ID, n]));
  for (const { host, nodeId } of input.members) {
    const node = byId.get(nodeId);
    if (!node) continue;
    const u = nodeUpdate(host, node);
    if (!u) continue;
    const change = { host, nodeId, spec: u.spec, changes: u.changes };
    (u.role === 'promote' ? plan.promote : u.role === 'demote' ? plan.demote : plan.update).push(change);
  }
  // An unreachable manager's demotion first: it lowers the count needed without taking a vote.
  const reachable = (c: NodeChange) => byId.get(c.nodeId)?.ManagerStatus?.Reachability === 'reachable';
  plan.demote.sort((a, b) => Number(reachable(a)) - Number(reachable(b)));
  const refusal = quorumRefusal(plan, input);
  return refusal ? { ...plan, refusal } : plan;
}

/** Whether the plan is empty: nothing would be changed (unlisted nodes are only reported). */
export function planIsEmpty(p: NodePlan, prune: boolean): boolean {
  return p.promote.length + p.update.length + p.demote.length === 0 && (!prune || p.unlisted.length === 0);
}

/** The nodes as they stand after each step, checking every demotion (and a pruned manager's) against them. */
function quorumRefusal(plan: NodePlan, input: PlanNodesInput): AirlockError | undefined {
  let nodes: SwarmNode[] = input.nodes.map((n) => ({ ...n }));
  const promoted = new Set(plan.promote.map((c) => c.nodeId));
  // A node promoted while ready becomes a reachable manager.
  nodes = nodes.map((n) => (promoted.has(n.ID) && !n.ManagerStatus && n.Status.State === 'ready' ? { ...n, ManagerStatus: { Reachability: 'reachable', Addr: '' } } : n));
  for (let i = 0; i < (input.joiningManagers ?? 0); i++) nodes.push({ ID: `joining-${i}`, Version: { Index: 0 }, Spec: { Role: 'manager' }, Status: { State: 'ready' }, ManagerStatus: { Reachability: 'reachable', Addr: '' } } as SwarmNode);
  const demotions = [
    ...plan.demote.map((c) => ({ nodeId: c.nodeId, name: hostLabel(c.host), subject: c.host.name, why: 'the inventory makes it a worker' })),
    ...(input.prune ? plan.unlisted.filter((u) => u.role === 'manager').map((u) => ({ nodeId: u.nodeId, name: `node ${u.hostname || u.nodeId.slice(0, 12)}`, subject: u.nodeId, why: 'it is no inventory host (--prune)' })) : []),
  ];
  for (const d of demotions) {
    const breaks = demoteBreaksQuorum(nodes, d.nodeId);
    if (breaks) {
      return new AirlockError('remote', `demoting ${d.name} would lose the swarm's quorum: ${breaks}; nothing was changed`, {
        reason: 'would-lose-quorum',
        subject: d.subject,
        hint: `${d.why}. Add or repair managers first (make unreachable ones reachable, or promote others in the inventory and run cluster up), then run again`,
      });
    }
    nodes = nodes.map((n) => {
      if (n.ID !== d.nodeId) return n;
      const { ManagerStatus: _gone, ...rest } = n;
      return rest;
    });
  }
  return undefined;
}

function unlistedNodes(input: PlanNodesInput): UnlistedNode[] {
  const listed = new Set([...input.members.map((m) => m.nodeId), ...(input.otherNodeIds ?? [])]);
  const addressOf = (n: SwarmNode) => n.ManagerStatus?.Addr?.replace(/:\d+$/, '') || n.Status.Addr || '';
  const unreachedAt = new Set(input.unreached.map((h) => h.address));
  return input.nodes
    .filter((n) => !listed.has(n.ID) && !unreachedAt.has(addressOf(n)))
    .map((n) => ({ nodeId: n.ID, hostname: n.Description?.Hostname ?? '', address: addressOf(n), role: n.Spec.Role ?? (n.ManagerStatus ? 'manager' : 'worker'), state: n.Status.State }));
}
