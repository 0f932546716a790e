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
import type { Docker, SwarmNode } from '../docker/index.js';
import { isOutOfSequence } from '../docker/index.js';
import { AirlockError } from '../errors/index.js';
import { hostLabel, swarmRole, type HostRole, type Inventory, type InventoryHost } from '../remote/inventory.js';
import { forEachHost } from '../remote/for-each-host.js';
import { closeAll, connectAll, onHost, readFacts, type ConnectAllOptions, type HostConnection } from './connect.js';
import { chooseLead, nodeUpdate, planMembership, type Membership, type Observed } from './plan.js';

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
  const { connections, observed } = await connectAll(inventory, opts);
  const run = new UpRun(inventory, opts, connections, observed);
  try {
    return await run.go();
  } finally {
    run.forgetTokens();
    await closeAll(connections);
  }
}

/** The swarm as the lead has it, read once per run (after the init, when this run makes it). */
interface Swarm {
  clusterId: string;
  memberIds: Set<string>;
  /** The lead's swarm address, which the other hosts join through. */
  remoteAddr: string;
}

/** One run of cluster up: the steps of the module comment, and each host's report as they go. */
class UpRun {
  private readonly listenAddr: string;
  private readonly reports = new Map<string, HostReport>();
  private tokens: { Worker: string; Manager: string } | undefined;

  constructor(
    private readonly inventory: Inventory,
    private readonly opts: ClusterUpOptions,
    private readonly connections: Map<string, HostConnection>,
    private readonly observed: Map<string, Observed>,
  ) {
    this.listenAddr = opts.listenAddr ?? DEFAULT_LISTEN_ADDR;
    for (const h of inventory.hosts) {
      const o = observed.get(h.name);
      this.reports.set(h.name, {
        host: h.name,
        address: h.address,
        role: swarmRole(h),
        action: o?.ok ? 'unchanged' : 'error',
        ...(o?.ok ? { engineVersion: o.facts.engineVersion } : {}),
        ...(o && !o.ok ? { error: o.error } : {}),
        changes: [],
      });
    }
  }

  async go(): Promise<ClusterUpReport> {
    const choice = chooseLead(this.inventory.hosts, this.observed);
    if (!choice.ok) {
      this.failRest(() => choice.error);
      return this.result();
    }
    const lead = choice.lead;
    const leadConn = this.connections.get(lead.name)!;
    // The swarm as it is, when there is one.
    const existing = choice.init ? undefined : await this.readSwarm(lead, leadConn);
    if (!choice.init && !existing) return this.result({ manager: lead.name });
    const memberIds = existing?.memberIds ?? new Set<string>();
    const plan = planMembership(this.inventory.hosts, this.observed, { host: lead, init: choice.init, memberIds, ...(existing?.clusterId ? { clusterId: existing.clusterId } : {}) });
    for (const h of this.inventory.hosts) {
      const p = plan.get(h.name)!;
      if (p.kind === 'error') this.fail(h, p.error);
    }
    const swarm = existing ?? (await this.initSwarm(lead, leadConn));
    if (!swarm) return this.result({ manager: lead.name });
    await this.joinAll(plan, swarm.remoteAddr);
    await this.alignNodes(lead, leadConn.docker);
    return this.result({ manager: lead.name, ...(swarm.clusterId ? { clusterId: swarm.clusterId } : {}) });
  }

  /** Join tokens are held for this run only. */
  forgetTokens(): void {
    this.tokens = undefined;
  }

  /**
   * The swarm as the lead has it: its id, its members, and the address to
   * join through; the join tokens are kept in memory only. Undefined (and
   * every host failed) when it cannot be read.
   */
  private async readSwarm(lead: InventoryHost, leadConn: HostConnection): Promise<Swarm | undefined> {
    let clusterId: string;
    let nodes: SwarmNode[];
    try {
      const swarm = await leadConn.docker.swarm.inspect();
      clusterId = swarm.ID;
      this.tokens = { Worker: swarm.JoinTokens.Worker, Manager: swarm.JoinTokens.Manager };
      nodes = await leadConn.docker.nodes.list();
    } catch (e) {
      this.fail(lead, onHost(lead, 'reading the swarm failed', e));
      this.failRest((h) => this.notJoined(lead, h, `the swarm of ${lead.name} could not be read`));
      return undefined;
    }
    const leadNode = nodes.find((n) => n.ID === leadConn.facts.swarm.nodeId);
    return {
      clusterId,
      memberIds: new Set(nodes.map((n) => n.ID)),
      remoteAddr: leadNode?.ManagerStatus?.Addr || `${lead.address}:${SWARM_PORT}`,
    };
  }

  /** Initialises the swarm on the lead, advertising its inventory address, and reads it; undefined (and every host failed) when either fails. */
  private async initSwarm(lead: InventoryHost, leadConn: HostConnection): Promise<Swarm | undefined> {
    try {
      await leadConn.docker.swarm.init({ ListenAddr: this.listenAddr, AdvertiseAddr: lead.address });
      leadConn.facts = await readFacts(leadConn.docker);
    } catch (e) {
      this.fail(lead, onHost(lead, 'swarm init failed', e));
      this.failRest((h) => this.notJoined(lead, h, `the swarm could not be initialised on ${lead.name}`));
      return undefined;
    }
    this.report(lead).action = 'initialised';
    this.report(lead).changes.push(`swarm initialised (advertise ${lead.address}, listen ${this.listenAddr})`);
    this.note(lead, `swarm initialised, advertising ${lead.address}`);
    return this.readSwarm(lead, leadConn);
  }

  /** Managers one at a time (each changes the raft membership), then the workers together. */
  private async joinAll(plan: Map<string, Membership>, remoteAddr: string): Promise<void> {
    const joining = (role: HostRole) =>
      this.inventory.hosts.filter((h) => {
        const p: Membership = plan.get(h.name)!;
        return p.kind === 'join' && p.role === role && this.report(h).action !== 'error';
      });
    for (const h of joining('manager')) await this.join(h, 'manager', remoteAddr);
    await forEachHost(joining('worker'), this.opts.parallel, (h) => this.join(h, 'worker', remoteAddr));
  }

  private async join(h: InventoryHost, role: HostRole, remoteAddr: string): Promise<void> {
    const c = this.connections.get(h.name)!;
    try {
      await c.docker.swarm.join({
        ListenAddr: this.listenAddr,
        AdvertiseAddr: h.address,
        RemoteAddrs: [remoteAddr],
        JoinToken: role === 'manager' ? this.tokens!.Manager : this.tokens!.Worker,
      });
      c.facts = await readFacts(c.docker);
    } catch (e) {
      this.fail(h, this.scrub(onHost(h, `swarm join as ${role} through ${remoteAddr} failed`, e)));
      return;
    }
    const r = this.report(h);
    r.action = 'joined';
    r.changes.push(`joined as ${role} through ${remoteAddr} (advertise ${h.address})`);
    this.note(h, `joined as ${role}`);
  }

  /** Roles and labels as the inventory says, through the lead. */
  private async alignNodes(lead: InventoryHost, d: Docker): Promise<void> {
    const members = this.inventory.hosts.filter((h) => this.report(h).action !== 'error');
    await forEachHost(members, this.opts.parallel, async (h) => {
      const nodeId = this.connections.get(h.name)!.facts.swarm.nodeId;
      this.report(h).nodeId = nodeId;
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
          const r = this.report(h);
          r.changes.push(...u.changes);
          if (r.action === 'unchanged') r.action = 'updated';
          this.note(h, u.changes.join(', '));
          return;
        }
      } catch (e) {
        this.fail(h, onHost(h, `updating node ${nodeId.slice(0, 12)} through ${lead.name} failed`, e));
      }
    });
  }

  private note(h: InventoryHost, event: string): void {
    this.opts.onHost?.(h, event);
  }

  private report(h: InventoryHost): HostReport {
    return this.reports.get(h.name)!;
  }

  private fail(h: InventoryHost, error: AirlockError): void {
    const r = this.report(h);
    if (r.action === 'error') return;
    r.action = 'error';
    r.error = error;
    this.note(h, `failed: ${error.message}`);
  }

  /** Every host still without an error gets one: the run could not go on. */
  private failRest(why: (h: InventoryHost) => AirlockError): void {
    for (const h of this.inventory.hosts) if (this.report(h).action !== 'error') this.fail(h, why(h));
  }

  private notJoined(lead: InventoryHost, h: InventoryHost, why: string): AirlockError {
    return new AirlockError('remote', `${hostLabel(h)}: not joined: ${why}`, { reason: 'no-manager', subject: h.name, hint: `fix ${lead.name} first (see its error), then run again` });
  }

  private result(extra: { manager?: string; clusterId?: string } = {}): ClusterUpReport {
    const hosts = this.inventory.hosts.map((h) => this.report(h));
    return { ok: hosts.every((r) => r.action !== 'error'), ...extra, hosts };
  }

  /** A join token never reaches a message. */
  private scrub(e: AirlockError): AirlockError {
    const tokens = this.tokens;
    if (!tokens) return e;
    const clean = (s: string) => s.replaceAll(tokens.Worker, '<worker token>').replaceAll(tokens.Manager, '<manager token>');
    const text = `${e.message}\n${e.hint ?? ''}`;
    if (!text.includes(tokens.Worker) && !text.includes(tokens.Manager)) return e;
    return new AirlockError(e.kind, clean(e.message), { reason: e.reason, ...(e.subject ? { subject: e.subject } : {}), ...(e.hint ? { hint: clean(e.hint) } : {}) });
  }
}
