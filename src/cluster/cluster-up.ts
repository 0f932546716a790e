/**
 * `airlock cluster up`: turns the inventory's Docker hosts into one swarm,
 * through each host's engine API over SSH.
 *
 *  1. connect to every host (bounded parallel) and read its engine: version, swarm state;
 *  2. pick the lead manager (plan.ts) and, when there is no swarm yet, initialise it there
 *     with the lead's inventory address as the advertise address;
 *  3. read the join tokens from the lead (held in memory for this run only: never written,
 *     never printed, scrubbed from error messages);
 *  4. join the other managers one at a time, then the workers in parallel;
 *  5. bring every node's role and labels to what the inventory says.
 *
 * A host already in the swarm is left alone, a host in another swarm is an
 * error naming it (never a forced leave), and a second run changes nothing.
 */
import type { SwarmNode } from '../docker/index.js';
import { isOutOfSequence } from '../docker/index.js';
import { AirlockError } from '../errors/index.js';
import { swarmRole, type HostRole, type Inventory, type InventoryHost } from '../remote/inventory.js';
import { forEachHost } from '../remote/for-each-host.js';
import { hostLabel } from '../remote/ssh-errors.js';
import { closeAll, connectAll, onHost, readFacts, type ConnectAllOptions, type HostConnection } from './connect.js';
import { chooseLead, nodeUpdate, planMembership, type Membership } from './plan.js';

export { clusterStatus, type ClusterStatus, type NodeStatus, type HostNotInSwarm } from './status.js';

export const DEFAULT_LISTEN_ADDR = '0.0.0.0:2377';
export const SWARM_PORT = 2377;

export type HostAction = 'initialised' | 'joined' | 'updated' | 'unchanged' | 'error';

export interface HostReport {
  /** The inventory name. */
  host: string;
  address: string;
  /** The swarm role the inventory gives it. */
  role: HostRole;
  /**
   * initialised: the swarm was created here; joined: it joined this run;
   * updated: it was a member already and its labels or role were changed;
   * unchanged: nothing was done; error: see `error`.
   */
  action: HostAction;
  engineVersion?: string;
  nodeId?: string;
  /** What was changed, in order: `swarm initialised …`, `joined as worker …`, `label zone=b`, `role worker -> manager`. */
  changes: string[];
  error?: AirlockError;
}

export interface ClusterUpReport {
  /** True when every host ended up in the swarm as the inventory says. */
  ok: boolean;
  /** The manager the run went through. */
  manager?: string;
  clusterId?: string;
  hosts: HostReport[];
}

export interface ClusterUpOptions extends ConnectAllOptions {
  /** The swarm's listen address on every node (default 0.0.0.0:2377). */
  listenAddr?: string;
}

export async function clusterUp(inventory: Inventory, opts: ClusterUpOptions = {}): Promise<ClusterUpReport> {
  const listenAddr = opts.listenAddr ?? DEFAULT_LISTEN_ADDR;
  const note = (h: InventoryHost, event: string) => opts.onHost?.(h, event);
  const { connections, observed } = await connectAll(inventory, opts);
  const reports = new Map<string, HostReport>();
  for (const h of inventory.hosts) {
    const o = observed.get(h.name);
    reports.set(h.name, {
      host: h.name,
      address: h.address,
      role: swarmRole(h),
      action: o?.ok ? 'unchanged' : 'error',
      ...(o?.ok ? { engineVersion: o.facts.engineVersion } : {}),
      ...(o && !o.ok ? { error: o.error } : {}),
      changes: [],
    });
  }
  const report = (h: InventoryHost) => reports.get(h.name)!;
  const fail = (h: InventoryHost, error: AirlockError) => {
    const r = report(h);
    if (r.action === 'error') return;
    r.action = 'error';
    r.error = error;
    note(h, `failed: ${error.message}`);
  };
  /** Every host still without an error gets one: the run could not go on. */
  const failRest = (why: (h: InventoryHost) => AirlockError) => {
    for (const h of inventory.hosts) if (report(h).action !== 'error') fail(h, why(h));
  };
  const result = (extra: { manager?: string; clusterId?: string } = {}): ClusterUpReport => {
    const hosts = inventory.hosts.map((h) => report(h));
    return { ok: hosts.every((r) => r.action !== 'error'), ...extra, hosts };
  };
  let tokens: { Worker: string; Manager: string } | undefined;
  const scrub = (e: AirlockError): AirlockError => {
    if (!tokens) return e;
    const clean = (s: string) => s.replaceAll(tokens!.Worker, '<worker token>').replaceAll(tokens!.Manager, '<manager token>');
    const text = `${e.message}\n${e.hint ?? ''}`;
    if (!text.includes(tokens.Worker) && !text.includes(tokens.Manager)) return e;
    return new AirlockError(e.kind, clean(e.message), { reason: e.reason, ...(e.subject ? { subject: e.subject } : {}), ...(e.hint ? { hint: clean(e.hint) } : {}) });
  };

  try {
    const choice = chooseLead(inventory.hosts, observed);
    if (!choice.ok) {
      failRest(() => choice.error);
      return result();
    }
    const lead = choice.lead;
    const leadConn = connections.get(lead.name)!;
    const d = leadConn.docker;
    const notJoined = (h: InventoryHost, why: string) =>
      new AirlockError('remote', `${hostLabel(h)}: not joined: ${why}`, { reason: 'no-manager', subject: h.name, hint: `fix ${lead.name} first (see its error), then run again` });

    // The swarm as it is, when there is one.
    let clusterId: string | undefined;
    let memberIds = new Set<string>();
    if (!choice.init) {
      try {
        clusterId = (await d.swarm.inspect()).ID;
        memberIds = new Set((await d.nodes.list()).map((n) => n.ID));
      } catch (e) {
        fail(lead, onHost(lead, 'reading the swarm failed', e));
        failRest((h) => notJoined(h, `the swarm of ${lead.name} could not be read`));
        return result({ manager: lead.name });
      }
    }
    const plan = planMembership(inventory.hosts, observed, { host: lead, init: choice.init, memberIds, ...(clusterId ? { clusterId } : {}) });
    for (const h of inventory.hosts) {
      const p = plan.get(h.name)!;
      if (p.kind === 'error') fail(h, p.error);
    }

    if (choice.init) {
      try {
        await d.swarm.init({ ListenAddr: listenAddr, AdvertiseAddr: lead.address });
        leadConn.facts = await readFacts(d);
      } catch (e) {
        fail(lead, onHost(lead, 'swarm init failed', e));
        failRest((h) => notJoined(h, `the swarm could not be initialised on ${lead.name}`));
        return result({ manager: lead.name });
      }
      report(lead).action = 'initialised';
      report(lead).changes.push(`swarm initialised (advertise ${lead.address}, listen ${listenAddr})`);
      note(lead, `swarm initialised, advertising ${lead.address}`);
    }

    // Join tokens and the address to join through: from the lead, in memory only.
    let nodes: SwarmNode[];
    try {
      const swarm = await d.swarm.inspect();
      clusterId = swarm.ID;
      tokens = { Worker: swarm.JoinTokens.Worker, Manager: swarm.JoinTokens.Manager };
      nodes = await d.nodes.list();
    } catch (e) {
      fail(lead, onHost(lead, 'reading the swarm failed', e));
      failRest((h) => notJoined(h, `the swarm of ${lead.name} could not be read`));
      return result({ manager: lead.name });
    }
    const leadNode = nodes.find((n) => n.ID === leadConn.facts.swarm.nodeId);
    const remoteAddr = leadNode?.ManagerStatus?.Addr || `${lead.address}:${SWARM_PORT}`;

    const join = async (h: InventoryHost, role: HostRole): Promise<void> => {
      const c = connections.get(h.name)!;
      try {
        await c.docker.swarm.join({
          ListenAddr: listenAddr,
          AdvertiseAddr: h.address,
          RemoteAddrs: [remoteAddr],
          JoinToken: role === 'manager' ? tokens!.Manager : tokens!.Worker,
        });
        c.facts = await readFacts(c.docker);
      } catch (e) {
        fail(h, scrub(onHost(h, `swarm join as ${role} through ${remoteAddr} failed`, e)));
        return;
      }
      const r = report(h);
      r.action = 'joined';
      r.changes.push(`joined as ${role} through ${remoteAddr} (advertise ${h.address})`);
      note(h, `joined as ${role}`);
    };
    const joining = (role: HostRole) =>
      inventory.hosts.filter((h) => {
        const p: Membership = plan.get(h.name)!;
        return p.kind === 'join' && p.role === role && report(h).action !== 'error';
      });
    // Managers one at a time (each changes the raft membership), then the workers together.
    for (const h of joining('manager')) await join(h, 'manager');
    await forEachHost(joining('worker'), opts.parallel, (h) => join(h, 'worker'));

    // Roles and labels as the inventory says, through the lead.
    const members = inventory.hosts.filter((h) => report(h).action !== 'error');
    await forEachHost(members, opts.parallel, async (h) => {
      const nodeId = connections.get(h.name)!.facts.swarm.nodeId;
      report(h).nodeId = nodeId;
      try {
        for (let attempt = 1; ; attempt++) {
          const node = await d.nodes.inspect(nodeId);
          const u = nodeUpdate(h, node);
          if (!u) return;
          try {
            await d.nodes.update(nodeId, node.Version.Index, u.spec);
          } catch (e) {
            if (isOutOfSequence(e) && attempt < 5) continue;
            throw e;
          }
          const r = report(h);
          r.changes.push(...u.changes);
          if (r.action === 'unchanged') r.action = 'updated';
          note(h, u.changes.join(', '));
          return;
        }
      } catch (e) {
        fail(h, onHost(h, `updating node ${nodeId.slice(0, 12)} through ${lead.name} failed`, e));
      }
    });
    return result({ manager: lead.name, ...(clusterId ? { clusterId } : {}) });
  } finally {
    tokens = undefined;
    await closeAll(connections as Map<string, HostConnection>);
  }
}
