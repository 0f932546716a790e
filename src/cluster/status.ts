/**
 * `airlock cluster status`: the swarm's nodes as a manager sees them, matched
 * to the inventory, and the inventory hosts that are not in it.
 */
import type { SwarmNode } from '../docker/index.js';
import { AirlockError } from '../errors/index.js';
import { hostLabel, managersOf, swarmRole, type Inventory, type InventoryHost } from '../remote/inventory.js';
import { closeAll, connectAll, onHost, type ConnectAllOptions, type HostConnection } from './connect.js';
import type { Observed } from './plan.js';
import { certificateOf, DEFAULT_CERT_WARN_MS, expiryState, expiryWarning, type CertificateFacts, type ExpiryState } from './certificates.js';
import { hostCertificates } from './host-certs.js';
import { quorumOf, type Quorum } from './quorum.js';

/** A certificate's end and whether it is within the warning margin. */
export interface CertificateStatus extends CertificateFacts {
  state: ExpiryState;
}

export interface NodeStatus {
  id: string;
  hostname: string;
  /** The inventory host it is, when it is one. */
  host?: string;
  /** The address the swarm knows it by. */
  address?: string;
  role: 'manager' | 'worker';
  availability: string;
  state: string;
  labels: Record<string, string>;
  engineVersion?: string;
  /** Managers only: reachable, unreachable, unknown. */
  managerReachability?: string;
  leader: boolean;
  /** Its swarm certificate, read on the host (inventory hosts reached only). */
  certificate?: CertificateStatus;
  /** Why it could not be read. */
  certificateError?: string;
}

export interface HostNotInSwarm {
  host: string;
  address: string;
  /** not-joined, other-swarm, unreachable, swarm-<state>. */
  reason: string;
  message: string;
}

export interface ClusterStatus {
  /** The manager asked; none when no inventory host manages a swarm. */
  manager?: string;
  clusterId?: string;
  nodes: NodeStatus[];
  /** The swarm's root CA, as the manager has it. */
  ca?: CertificateStatus;
  /** The managers reachable against the majority the swarm needs. */
  quorum?: Quorum;
  /** How long before a certificate's end it is warned about. */
  certWarnMs: number;
  /** Certificates within the margin or past their end, and quorum at its edge or lost: one line each. */
  warnings: string[];
  /** Inventory hosts that are not nodes of this swarm. */
  notInSwarm: HostNotInSwarm[];
  /** Hosts that could not be reached or read. */
  errors: { host: string; error: AirlockError }[];
}

export interface ClusterStatusOptions extends ConnectAllOptions {
  /** Warn of a certificate this close to its end (default 30 days). */
  certWarnMs?: number;
  now?: () => Date;
}

export async function clusterStatus(inventory: Inventory, opts: ClusterStatusOptions = {}): Promise<ClusterStatus> {
  const certWarnMs = opts.certWarnMs ?? DEFAULT_CERT_WARN_MS;
  const now = opts.now?.() ?? new Date();
  const { connections, observed } = await connectAll(inventory, opts);
  try {
    const errors: ClusterStatus['errors'] = [];
    for (const h of inventory.hosts) {
      const o = observed.get(h.name)!;
      if (!o.ok) errors.push({ host: h.name, error: o.error });
    }
    const { manager, nodes, clusterId, trustRoot } = await askAManager(inventory, connections, errors);
    const nodeOf = hostsOfNodes(inventory, connections, nodes);
    const list = nodes.map((n) => nodeStatus(n, nodeOf.get(n.ID)));
    await readCertificates(list, connections, certWarnMs, now);
    const caFacts = trustRoot ? certificateOf(trustRoot, 'the swarm root CA') : undefined;
    const ca = caFacts ? { ...caFacts, state: expiryState(caFacts.notAfter, certWarnMs, now) } : undefined;
    const quorum = manager ? quorumOf(nodes) : undefined;
    const order = new Map(inventory.hosts.map((h, i) => [h.name, i]));
    list.sort((a, b) => (order.get(a.host ?? '') ?? 1e9) - (order.get(b.host ?? '') ?? 1e9) || a.hostname.localeCompare(b.hostname));
    return {
      ...(manager ? { manager: manager.name } : {}),
      ...(clusterId ? { clusterId } : {}),
      nodes: list,
      ...(ca ? { ca } : {}),
      ...(quorum ? { quorum } : {}),
      certWarnMs,
      warnings: warningsOf(list, ca, quorum, certWarnMs, now),
      notInSwarm: hostsNotIn(inventory, observed, new Set(nodeOf.values())),
      errors,
    };
  } finally {
    await closeAll(connections);
  }
}

/** The swarm's nodes from the first host that manages one: inventory managers first, in order; then any host. */
async function askAManager(
  inventory: Inventory,
  connections: Map<string, HostConnection>,
  errors: ClusterStatus['errors'],
): Promise<{ manager?: InventoryHost; nodes: SwarmNode[]; clusterId?: string; trustRoot?: string }> {
  const byPreference = [...managersOf(inventory), ...inventory.hosts.filter((h) => swarmRole(h) !== 'manager')];
  for (const h of byPreference) {
    const c = connections.get(h.name);
    if (!c || c.facts.swarm.state !== 'active' || !c.facts.swarm.controlAvailable) continue;
    try {
      const nodes = await c.docker.nodes.list();
      const trustRoot = (await c.docker.swarm.inspect()).TLSInfo?.TrustRoot;
      return { manager: h, nodes, ...(c.facts.swarm.clusterId ? { clusterId: c.facts.swarm.clusterId } : {}), ...(trustRoot ? { trustRoot } : {}) };
    } catch (e) {
      errors.push({ host: h.name, error: onHost(h, 'listing the nodes failed', e) });
    }
  }
  return { nodes: [] };
}

/** The inventory host each node is, by node id (read from the host's engine) or, for a host not reached, by address. */
function hostsOfNodes(inventory: Inventory, connections: Map<string, HostConnection>, nodes: SwarmNode[]): Map<string, InventoryHost> {
  const nodeOf = new Map<string, InventoryHost>();
  for (const h of inventory.hosts) {
    const c = connections.get(h.name);
    let node = c ? nodes.find((n) => n.ID === c.facts.swarm.nodeId) : undefined;
    // A host that could not be reached: by the address the swarm knows, a ready node first
    // (a host that left and joined again leaves its old node behind).
    if (!node && !c) {
      const at = nodes.filter((n) => n.Status.Addr === h.address || n.ManagerStatus?.Addr?.startsWith(`${h.address}:`));
      node = at.find((n) => n.Status.State === 'ready') ?? at[0];
    }
    if (node) nodeOf.set(node.ID, h);
  }
  return nodeOf;
}

function nodeStatus(n: SwarmNode, h: InventoryHost | undefined): NodeStatus {
  const address = n.ManagerStatus?.Addr?.replace(/:\d+$/, '') || n.Status.Addr;
  return {
    id: n.ID,
    hostname: n.Description?.Hostname ?? '',
    ...(h ? { host: h.name } : {}),
    ...(address ? { address } : {}),
    role: n.Spec.Role ?? 'worker',
    availability: n.Spec.Availability ?? '',
    state: n.Status.State,
    labels: n.Spec.Labels ?? {},
    ...(n.Description?.Engine?.EngineVersion ? { engineVersion: n.Description.Engine.EngineVersion } : {}),
    ...(n.ManagerStatus ? { managerReachability: n.ManagerStatus.Reachability } : {}),
    leader: n.ManagerStatus?.Leader === true,
  };
}

/** Each reached node's certificate, read on its host at once. */
async function readCertificates(list: NodeStatus[], connections: Map<string, HostConnection>, marginMs: number, now: Date): Promise<void> {
  await Promise.all(
    list.map(async (n) => {
      const c = n.host ? connections.get(n.host) : undefined;
      if (!c || c.facts.swarm.nodeId !== n.id) return;
      try {
        const { node } = await hostCertificates(c);
        n.certificate = { ...node, state: expiryState(node.notAfter, marginMs, now) };
      } catch (e) {
        n.certificateError = (e as Error).message;
      }
    }),
  );
}

/** What an operator must act on: certificates near or past their end, a quorum with no manager to spare. */
function warningsOf(list: NodeStatus[], ca: CertificateStatus | undefined, quorum: Quorum | undefined, marginMs: number, now: Date): string[] {
  const warnings: string[] = [];
  if (ca) {
    const w = expiryWarning('the swarm root CA', ca.notAfter, marginMs, now);
    if (w) warnings.push(`${w}: rotate it with airlock cluster certs --rotate`);
  }
  for (const n of list) {
    const who = n.host ?? n.hostname;
    if (n.certificateError) warnings.push(`${who}: node certificate not read: ${n.certificateError}`);
    const w = n.certificate ? expiryWarning(`${who}'s node certificate`, n.certificate.notAfter, marginMs, now) : null;
    if (w) warnings.push(`${w}: a running node renews it by itself; one left off past it cannot rejoin (docs/operations.md)`);
  }
  if (quorum && quorum.spare < 0) warnings.push(`quorum lost: ${quorum.reachable} of ${quorum.managers} managers reachable, ${quorum.needed} needed`);
  else if (quorum && quorum.spare === 0 && quorum.managers > 0) {
    warnings.push(`losing one more manager loses quorum: ${quorum.reachable} of ${quorum.managers} managers reachable, ${quorum.needed} needed`);
  }
  return warnings;
}

/** Why each inventory host that is no node of this swarm is not. */
function hostsNotIn(inventory: Inventory, observed: Map<string, Observed>, inSwarm: Set<InventoryHost>): HostNotInSwarm[] {
  const notInSwarm: HostNotInSwarm[] = [];
  for (const h of inventory.hosts) {
    if (inSwarm.has(h)) continue;
    const o = observed.get(h.name)!;
    const entry = (reason: string, message: string) => notInSwarm.push({ host: h.name, address: h.address, reason, message });
    if (!o.ok) entry('unreachable', o.error.message);
    else if (o.facts.swarm.state === 'inactive' || o.facts.swarm.state === '') entry('not-joined', `${hostLabel(h)}: in no swarm (run airlock cluster up)`);
    else if (o.facts.swarm.state === 'active') entry('other-swarm', `${hostLabel(h)}: in another swarm (node ${o.facts.swarm.nodeId.slice(0, 12)})`);
    else entry(`swarm-${o.facts.swarm.state}`, `${hostLabel(h)}: swarm state ${o.facts.swarm.state}${o.facts.swarm.error ? ` (${o.facts.swarm.error})` : ''}`);
  }
  return notInSwarm;
}
