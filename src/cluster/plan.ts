/**
 * What `cluster up` does to each host, decided from what the hosts' engines
 * report: pure functions, so the rules are tested without any engine.
 *
 * - The lead is the first inventory manager that already manages a swarm;
 *   with none, the first inventory manager, where the swarm is initialised.
 *   A manager that cannot be reached blocks the init: it may be managing a
 *   swarm already, and a second swarm must never be made beside it.
 * - A host in no swarm joins the lead's swarm with its inventory role.
 * - A host already in the lead's swarm is left alone; a host in another
 *   swarm is an error (airlock never makes a node leave a swarm).
 * - Node labels are set as the inventory says; labels airlock set before and
 *   the inventory no longer lists are removed, others are kept. The node's
 *   role is brought to the inventory's (membership.ts orders the changes).
 */
import { AirlockError } from '../errors/index.js';
import type { LocalNodeState, NodeSpec, SwarmNode } from '../docker/index.js';
import { hostLabel, swarmRole, type HostRole, type InventoryHost } from '../remote/inventory.js';

/** What a host's engine said about itself (GET /version and /info). */
export interface EngineFacts {
  engineVersion: string;
  apiVersion: string;
  /** Info.ID: the engine's own identity. */
  engineId: string;
  swarm: {
    state: LocalNodeState;
    nodeId: string;
    /** True on a manager. */
    controlAvailable: boolean;
    /** Only managers know it. */
    clusterId?: string;
    error: string;
  };
}

/** A host's facts, or why they could not be read. */
export type Observed = { ok: true; facts: EngineFacts } | { ok: false; error: AirlockError };

export type LeadChoice =
  | { ok: true; lead: InventoryHost; init: boolean }
  | { ok: false; error: AirlockError };

export function chooseLead(hosts: readonly InventoryHost[], observed: ReadonlyMap<string, Observed>): LeadChoice {
  const managers = hosts.filter((h) => swarmRole(h) === 'manager');
  for (const h of managers) {
    const o = observed.get(h.name);
    if (o?.ok && o.facts.swarm.state === 'active' && o.facts.swarm.controlAvailable) return { ok: true, lead: h, init: false };
  }
  const unreachable = managers.filter((h) => !observed.get(h.name)?.ok);
  if (unreachable.length > 0) {
    const names = unreachable.map((h) => hostLabel(h)).join(', ');
    return {
      ok: false,
      error: new AirlockError('remote', `no manager to work through: ${names} could not be reached, and no other inventory manager manages a swarm`, {
        reason: 'no-manager',
        subject: unreachable[0]!.name,
        hint: `airlock does not create a swarm while a manager it cannot see may already run one: make ${unreachable[0]!.name} reachable and run again`,
      }),
    };
  }
  const first = managers.find((h) => {
    const o = observed.get(h.name);
    return o?.ok && o.facts.swarm.state === 'inactive';
  });
  if (!first) {
    return {
      ok: false,
      error: new AirlockError('remote', `no inventory manager can lead the swarm: each is in a swarm without managing it, or in a state airlock does not change`, {
        reason: 'no-manager',
        hint: 'see each manager\'s own error; a node in another swarm must leave it first (docker swarm leave), which airlock never does for you',
      }),
    };
  }
  return { ok: true, lead: first, init: true };
}

export type Membership =
  | { kind: 'init' }
  | { kind: 'join'; role: HostRole }
  | { kind: 'member'; nodeId: string }
  | { kind: 'error'; error: AirlockError };

/**
 * Each host's part, once the lead is known. `clusterId` and `memberIds` are
 * the lead's swarm (empty when it is still to be initialised).
 */
export function planMembership(
  hosts: readonly InventoryHost[],
  observed: ReadonlyMap<string, Observed>,
  lead: { host: InventoryHost; init: boolean; clusterId?: string; memberIds: ReadonlySet<string> },
): Map<string, Membership> {
  const plan = new Map<string, Membership>();
  for (const h of hosts) {
    const o = observed.get(h.name);
    if (!o) {
      plan.set(h.name, { kind: 'error', error: new AirlockError('internal', `${h.name} was not observed`) });
      continue;
    }
    if (!o.ok) {
      plan.set(h.name, { kind: 'error', error: o.error });
      continue;
    }
    const s = o.facts.swarm;
    if (h === lead.host) {
      plan.set(h.name, lead.init ? { kind: 'init' } : { kind: 'member', nodeId: s.nodeId });
      continue;
    }
    switch (s.state) {
      case 'inactive':
      case '':
        plan.set(h.name, { kind: 'join', role: swarmRole(h) });
        break;
      case 'active': {
        const sameCluster = s.clusterId === undefined || lead.clusterId === undefined || s.clusterId === lead.clusterId;
        if (!lead.init && lead.memberIds.has(s.nodeId) && sameCluster) plan.set(h.name, { kind: 'member', nodeId: s.nodeId });
        else plan.set(h.name, { kind: 'error', error: otherSwarm(h, s.nodeId, s.clusterId, lead.host) });
        break;
      }
      case 'locked':
        plan.set(h.name, {
          kind: 'error',
          error: new AirlockError('remote', `${hostLabel(h)}: the engine's swarm is locked (autolock)`, {
            reason: 'swarm-locked',
            subject: h.name,
            hint: `unlock it on the host (docker swarm unlock) with the unlock key, then run again`,
          }),
        });
        break;
      default:
        plan.set(h.name, {
          kind: 'error',
          error: new AirlockError('remote', `${hostLabel(h)}: the engine's swarm state is ${s.state || 'unknown'}${s.error ? ` (${s.error})` : ''}`, {
            reason: 'swarm-state',
            subject: h.name,
            hint: 'a node stuck joining or in error must be sorted out on the host (docker info; docker swarm leave if it should start over); airlock never makes a node leave',
          }),
        });
    }
  }
  return plan;
}

function otherSwarm(h: InventoryHost, nodeId: string, clusterId: string | undefined, lead: InventoryHost): AirlockError {
  const which = clusterId ? `cluster ${clusterId.slice(0, 12)}, node ${nodeId.slice(0, 12)}` : `node ${nodeId.slice(0, 12)}`;
  return new AirlockError('remote', `${hostLabel(h)} is already in another swarm (${which}), not the one ${lead.name} manages`, {
    reason: 'other-swarm',
    subject: h.name,
    hint: `airlock never makes a node leave a swarm. If ${h.name} belongs in this one, run \`docker swarm leave\` on it (--force for a manager) and run cluster up again; otherwise take it out of the inventory`,
  });
}

/**
 * The node label listing, comma-separated, the label keys airlock set from
 * the inventory: the only labels it removes once the inventory stops listing
 * them. Labels set by hand, or by another tool, are never in it.
 */
export const MANAGED_LABELS = 'io.airlock.labels';

/** The label keys airlock set on a node from the inventory (MANAGED_LABELS). */
export function managedLabelKeys(labels: Record<string, string> | undefined): string[] {
  return (labels?.[MANAGED_LABELS] ?? '').split(',').filter((k) => k !== '');
}

export interface NodeUpdate {
  spec: NodeSpec;
  changes: string[];
  /** The role changes: a promotion or a demotion (ordered for quorum by planNodes). */
  role?: 'promote' | 'demote';
}

/**
 * The node spec the inventory wants, and what would change; undefined when
 * the node already matches. Labels the inventory lists are set; labels
 * airlock set before (MANAGED_LABELS) and the inventory no longer lists are
 * removed; any other label is kept.
 */
export function nodeUpdate(host: InventoryHost, node: Pick<SwarmNode, 'Spec'>): NodeUpdate | undefined {
  const changes: string[] = [];
  const now = node.Spec.Labels ?? {};
  const labels: Record<string, string> = { ...now };
  const spec: NodeSpec = { ...node.Spec, Labels: labels };
  const role = swarmRole(host);
  let roleChange: NodeUpdate['role'];
  if (node.Spec.Role !== role) {
    changes.push(`role ${node.Spec.Role ?? 'unknown'} -> ${role}`);
    spec.Role = role;
    roleChange = role === 'manager' ? 'promote' : 'demote';
  }
  for (const k of managedLabelKeys(now)) {
    if (k in host.labels || !(k in labels)) continue;
    changes.push(`label ${k} removed`);
    delete labels[k];
  }
  for (const [k, v] of Object.entries(host.labels).sort(([a], [b]) => a.localeCompare(b))) {
    if (now[k] === v) continue;
    changes.push(now[k] === undefined ? `label ${k}=${v}` : `label ${k}: ${now[k]} -> ${v}`);
    labels[k] = v;
  }
  const keys = Object.keys(host.labels).sort().join(',');
  if (keys) labels[MANAGED_LABELS] = keys;
  else delete labels[MANAGED_LABELS];
  // A node labelled by an airlock that did not track its keys yet: only the list is new.
  if (changes.length === 0 && labels[MANAGED_LABELS] !== now[MANAGED_LABELS]) changes.push(keys ? `labels tracked: ${keys}` : 'no labels tracked');
  return changes.length === 0 ? undefined : { spec, changes, ...(roleChange ? { role: roleChange } : {}) };
}
