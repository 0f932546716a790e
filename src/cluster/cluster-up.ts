/**
 * `airlock cluster up`: turns the inventory's Docker hosts into one swarm,
 * through each host's engine API over SSH.
 *
 *  1. connect to every host (bounded parallel) and read its engine: version, swarm state;
 *  2. pick the lead manager (plan.ts) and, when there is no swarm yet, initialise it there
 *     with the lead's inventory address as the advertise address;
 *  3. read the join tokens from the lead (held in memory for this run only: never written,
 *     never printed, scrubbed from error messages);
 *  4. plan the members' roles and labels (membership.ts) and refuse, before
 *     anything is done, a demotion that would lose quorum;
 *  5. join the other managers one at a time, then the workers in parallel;
 *     into a swarm that existed before, paused (no task lands on them);
 *  6. promote, relabel, demote; with --prune drain, demote and remove the
 *     nodes the inventory does not list (otherwise they are only reported);
 *  7. give each node joined paused the bundles of the stacks deployed
 *     (new-node-bundles.ts), then set it active.
 *
 * A host already in the swarm is left alone, a host in another swarm is an
 * error naming it (never a forced leave), and a second run changes nothing.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Docker, SwarmNode } from '../docker/index.js';
import { isOutOfSequence } from '../docker/index.js';
import { AirlockError, asAirlockError } from '../errors/index.js';
import { hostLabel, swarmRole, type HostRole, type Inventory, type InventoryHost } from '../remote/inventory.js';
import { forEachHost } from '../remote/for-each-host.js';
import { closeAll, connectAll, onHost, readFacts, type ConnectAllOptions, type HostConnection } from './connect.js';
import { chooseLead, nodeUpdate, planMembership, type Membership, type Observed } from './plan.js';
import { planNodes, type NodeChange, type NodePlan, type UnlistedNode } from './membership.js';
import { editNodeSpec, setAvailability } from './node-availability.js';
import { drainNode } from './node-drain.js';
import { giveDeployedBundles } from './new-node-bundles.js';

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

/** A swarm node no inventory host is: reported, or removed with --prune. */
export interface UnlistedReport extends UnlistedNode {
  action: 'reported' | 'removed' | 'error';
  error?: AirlockError;
}

export interface ClusterUpReport {
  /** True when every host ended up in the swarm as the inventory says (and, with --prune, every unlisted node left it). */
  ok: boolean;
  /** The manager the run went through. */
  manager?: string;
  clusterId?: string;
  hosts: HostReport[];
  unlisted: UnlistedReport[];
}

export interface ClusterUpOptions extends ConnectAllOptions {
  /** The swarm's listen address on every node (default 0.0.0.0:2377). */
  listenAddr?: string;
  /** Drain, demote and remove the swarm's nodes that the inventory does not list. */
  prune?: boolean;
  /** How long a pruned node's drain may take (default 2 minutes). */
  drainTimeoutMs?: number;
  /** How long a promoted node may take to be a reachable manager (default 1 minute). */
  promoteTimeoutMs?: number;
  /** The airlock command on the hosts (default `airlock`): the manager says what is deployed, a new node imports it. */
  remoteAirlock?: string;
}

const DEFAULT_DRAIN_TIMEOUT_MS = 120_000;
/** The node label on a node joined paused until it holds the deployed bundles. */
export const AWAITING_BUNDLES = 'io.airlock.awaiting-bundles';
const DEFAULT_PROMOTE_TIMEOUT_MS = 60_000;

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
  nodes: SwarmNode[];
  /** The lead's swarm address, which the other hosts join through. */
  remoteAddr: string;
}

/** One run of cluster up: the steps of the module comment, and each host's report as they go. */
class UpRun {
  private readonly listenAddr: string;
  private readonly reports = new Map<string, HostReport>();
  private tokens: { Worker: string; Manager: string } | undefined;
  private readonly unlisted: UnlistedReport[] = [];
  /** A promotion did not complete: no manager is demoted or pruned this run. */
  private blockDemotions = false;
  /** Hosts that joined paused this run: active only once they hold what is deployed. */
  private readonly paused: InventoryHost[] = [];

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
    // The members' changes, planned before anything is done: a refusal leaves the swarm as it was.
    if (existing) {
      const members = this.inventory.hosts.flatMap((h) => {
        const p = plan.get(h.name)!;
        return p.kind === 'member' ? [{ host: h, nodeId: p.nodeId }] : [];
      });
      // A node an earlier run paused and could not give the bundles to: given them now.
      for (const m of members) if (existing.nodes.find((n) => n.ID === m.nodeId)?.Spec.Labels?.[AWAITING_BUNDLES] !== undefined) this.paused.push(m.host);
      const joiningManagers = [...plan.values()].filter((p) => p.kind === 'join' && p.role === 'manager').length;
      const otherNodeIds = this.otherNodeIds(members.map((m) => m.host));
      if (this.refused(planNodes({ members, unreached: this.unreached(), otherNodeIds, nodes: existing.nodes, prune: this.opts.prune === true, joiningManagers }))) return this.result({ manager: lead.name, clusterId: existing.clusterId });
    }
    const swarm = existing ?? (await this.initSwarm(lead, leadConn));
    if (!swarm) return this.result({ manager: lead.name });
    const ids = { manager: lead.name, ...(swarm.clusterId ? { clusterId: swarm.clusterId } : {}) };
    // Into a swarm made before this run stacks may run: a new node is paused until it holds their bundles.
    await this.joinAll(plan, swarm.remoteAddr, existing ? 'pause' : 'active');
    const nodes = await this.alignNodes(lead, leadConn.docker);
    if (!nodes) return this.result(ids);
    await this.prune(lead, leadConn.docker, nodes.unlisted);
    await this.giveBundles(lead, leadConn);
    return this.result(ids);
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
      nodes,
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
  private async joinAll(plan: Map<string, Membership>, remoteAddr: string, availability: 'pause' | 'active'): Promise<void> {
    const joining = (role: HostRole) =>
      this.inventory.hosts.filter((h) => {
        const p: Membership = plan.get(h.name)!;
        return p.kind === 'join' && p.role === role && this.report(h).action !== 'error';
      });
    for (const h of joining('manager')) await this.join(h, 'manager', remoteAddr, availability);
    await forEachHost(joining('worker'), this.opts.parallel, (h) => this.join(h, 'worker', remoteAddr, availability));
  }

  private async join(h: InventoryHost, role: HostRole, remoteAddr: string, availability: 'pause' | 'active'): Promise<void> {
    const c = this.connections.get(h.name)!;
    try {
      await c.docker.swarm.join({
        ListenAddr: this.listenAddr,
        AdvertiseAddr: h.address,
        RemoteAddrs: [remoteAddr],
        JoinToken: role === 'manager' ? this.tokens!.Manager : this.tokens!.Worker,
        Availability: availability,
      });
      c.facts = await readFacts(c.docker);
    } catch (e) {
      this.fail(h, this.scrub(onHost(h, `swarm join as ${role} through ${remoteAddr} failed`, e)));
      return;
    }
    const r = this.report(h);
    r.action = 'joined';
    r.changes.push(`joined as ${role} through ${remoteAddr} (advertise ${h.address})${availability === 'pause' ? ', paused' : ''}`);
    this.note(h, `joined as ${role}${availability === 'pause' ? ', paused until it holds the deployed bundles' : ''}`);
    if (availability === 'pause') this.paused.push(h);
  }

  /**
   * Roles and labels as the inventory says, through the lead: promotions one
   * at a time, label updates together, then demotions one at a time. The
   * plan is made again from the nodes as they are after the joins; returns
   * it, or undefined when the nodes could not be read or it was refused.
   */
  private async alignNodes(lead: InventoryHost, d: Docker): Promise<NodePlan | undefined> {
    const members = this.inventory.hosts.filter((h) => this.report(h).action !== 'error');
    const withIds = members.map((h) => ({ host: h, nodeId: this.connections.get(h.name)!.facts.swarm.nodeId }));
    for (const m of withIds) this.report(m.host).nodeId = m.nodeId;
    let nodes: SwarmNode[];
    try {
      nodes = await d.nodes.list();
    } catch (e) {
      this.fail(lead, onHost(lead, 'listing the nodes failed', e));
      this.failRest((h) => this.notJoined(lead, h, `the nodes of ${lead.name}'s swarm could not be read`));
      return undefined;
    }
    const plan = planNodes({ members: withIds, unreached: this.unreached(), otherNodeIds: this.otherNodeIds(members), nodes, prune: this.opts.prune === true });
    if (this.refused(plan)) return undefined;
    for (const c of plan.promote) await this.updateNode(lead, d, c);
    // A promoted node counts for quorum once it is a reachable manager; the demotions wait for that.
    await this.untilManagers(lead, d, plan.promote.filter((c) => this.report(c.host).action !== 'error'));
    await forEachHost(plan.update.map((c) => c.host), this.opts.parallel, (h) => this.updateNode(lead, d, plan.update.find((c) => c.host === h)!));
    if (this.blockDemotions) {
      for (const c of plan.demote) this.fail(c.host, new AirlockError('remote', `${hostLabel(c.host)}: not demoted: a node promoted this run is not a reachable manager yet`, { reason: 'promotion-pending', subject: c.host.name, hint: 'see the promoted host\'s error; run again once it manages' }));
    } else {
      for (const c of plan.demote) await this.updateNode(lead, d, c);
    }
    return plan;
  }

  /** Waits until each promoted node is a reachable manager; one that is not in time fails, and the demotions are not made. */
  private async untilManagers(lead: InventoryHost, d: Docker, promoted: NodeChange[]): Promise<void> {
    const deadline = Date.now() + (this.opts.promoteTimeoutMs ?? DEFAULT_PROMOTE_TIMEOUT_MS);
    let waiting = promoted;
    while (waiting.length > 0) {
      const nodes = await d.nodes.list().catch(() => [] as SwarmNode[]);
      waiting = waiting.filter((c) => nodes.find((n) => n.ID === c.nodeId)?.ManagerStatus?.Reachability !== 'reachable');
      if (waiting.length === 0) return;
      if (Date.now() > deadline) break;
      await sleep(250);
    }
    if (waiting.length === 0) return;
    for (const c of waiting) {
      this.fail(c.host, new AirlockError('remote', `${hostLabel(c.host)}: promoted through ${lead.name}, but not a reachable manager after ${Math.round((this.opts.promoteTimeoutMs ?? DEFAULT_PROMOTE_TIMEOUT_MS) / 1000)} s`, {
        reason: 'promotion-pending',
        subject: c.host.name,
        hint: 'the node must reach the other managers on port 2377; no manager was demoted this run: check the node (docker info on it), then run again',
      }));
    }
    this.blockDemotions = true;
  }

  /** A planned node update, made again from the node as it is now (another run or an operator may have changed it). */
  private async updateNode(lead: InventoryHost, d: Docker, c: NodeChange): Promise<void> {
    const h = c.host;
    try {
      for (let attempt = 1; ; attempt++) {
        const node = await d.nodes.inspect(c.nodeId);
        const u = nodeUpdate(h, node);
        if (!u) return;
        try {
          await d.nodes.update(c.nodeId, node.Version.Index, u.spec);
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
      this.fail(h, onHost(h, `updating node ${c.nodeId.slice(0, 12)} through ${lead.name} failed`, e));
    }
  }

  /** A plan refused (quorum): the host it names fails with the reason, every other one with "nothing was changed". */
  private refused(plan: NodePlan): boolean {
    const refusal = plan.refusal;
    if (!refusal) return false;
    const named = this.inventory.hosts.find((h) => h.name === refusal.subject);
    if (named) this.fail(named, refusal);
    const hint = refusal.hint;
    this.failRest((h) => new AirlockError('remote', `${hostLabel(h)}: nothing changed: ${refusal.message}`, { reason: refusal.reason, subject: h.name, ...(hint ? { hint } : {}) }));
    return true;
  }

  /** The node ids of the inventory hosts reached but not among `members` (in error): their nodes are never pruned. */
  private otherNodeIds(members: readonly InventoryHost[]): string[] {
    return this.inventory.hosts.filter((h) => !members.includes(h)).flatMap((h) => {
      const id = this.connections.get(h.name)?.facts.swarm.nodeId;
      return id ? [id] : [];
    });
  }

  /** Inventory hosts this run could not reach: the swarm may know them, by address. */
  private unreached(): InventoryHost[] {
    return this.inventory.hosts.filter((h) => !this.observed.get(h.name)?.ok);
  }

  /**
   * The nodes no inventory host is: reported; with --prune drained (their
   * tasks running elsewhere first), demoted when managers, and removed. They
   * are not reachable over SSH (not in the inventory), so the removal is
   * forced: the host's engine still believes itself in the swarm.
   */
  private async prune(lead: InventoryHost, d: Docker, unlisted: UnlistedNode[]): Promise<void> {
    for (const u of unlisted) {
      const report: UnlistedReport = { ...u, action: 'reported' };
      this.unlisted.push(report);
      if (!this.opts.prune) continue;
      const name = `node ${u.hostname || u.nodeId.slice(0, 12)} (${u.address || 'no address'})`;
      if (u.role === 'manager' && this.blockDemotions) {
        report.action = 'error';
        report.error = new AirlockError('remote', `${name}: not pruned: a node promoted this run is not a reachable manager yet`, { reason: 'promotion-pending', subject: u.nodeId, hint: 'run again once it manages' });
        continue;
      }
      try {
        // A node that is down cannot stop its tasks (swarm moved them when it went down): drained without waiting.
        if (u.state === 'down') await setAvailability(d, u.nodeId, 'drain');
        // Its tasks move elsewhere first, counts held; it leaves the swarm even where they would fall short.
        else await drainNode(d, u.nodeId, { timeoutMs: this.opts.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS, force: true });
        if (u.role === 'manager') {
          await editNodeSpec(d, u.nodeId, (spec) => (spec.Role === 'worker' ? undefined : { ...spec, Role: 'worker' }));
          // The demotion completes when the node has left the raft: swarm refuses to remove a member of it.
          const deadline = Date.now() + (this.opts.promoteTimeoutMs ?? DEFAULT_PROMOTE_TIMEOUT_MS);
          while ((await d.nodes.inspect(u.nodeId)).ManagerStatus && Date.now() < deadline) await sleep(250);
        }
        await d.nodes.remove(u.nodeId, { force: true });
        report.action = 'removed';
        this.note(lead, `${name}: drained and removed from the swarm (--prune)`);
      } catch (e) {
        report.action = 'error';
        const err = asAirlockError(e);
        report.error = new AirlockError(err.kind, `${name}: not pruned: ${err.message}`, { reason: err.reason, subject: u.nodeId, ...(err.hint ? { hint: err.hint } : {}) });
      }
    }
  }

  /**
   * Each host that joined paused gets the bundles of the stacks deployed,
   * imported with its own airlock, then is set active; one that fails stays
   * paused and the run fails naming it.
   */
  private async giveBundles(lead: InventoryHost, leadConn: HostConnection): Promise<void> {
    const paused = this.paused.filter((h) => this.report(h).action !== 'error');
    if (paused.length === 0) return;
    const nodeIdOf = (h: InventoryHost) => this.connections.get(h.name)!.facts.swarm.nodeId;
    // Marked, so that a run that fails from here on leaves a node the next run gives the bundles to.
    for (const h of paused) {
      await editNodeSpec(leadConn.docker, nodeIdOf(h), (spec) => (spec.Labels?.[AWAITING_BUNDLES] !== undefined ? undefined : { ...spec, Labels: { ...spec.Labels, [AWAITING_BUNDLES]: 'true' } })).catch((e: unknown) =>
        this.fail(h, onHost(h, `marking the paused node through ${lead.name} failed`, e)),
      );
    }
    const outcome = await giveDeployedBundles({
      manager: leadConn,
      nodes: paused.filter((h) => this.report(h).action !== 'error').map((h) => this.connections.get(h.name)!),
      airlock: this.opts.remoteAirlock ?? 'airlock',
      parallel: this.opts.parallel,
      onHost: (h, event) => this.note(h, event),
    });
    for (const h of paused) {
      const o = outcome.get(h.name);
      if (!o) continue;
      if (!o.ok) {
        this.fail(h, o.error);
        continue;
      }
      try {
        await editNodeSpec(leadConn.docker, nodeIdOf(h), (spec) => {
          const labels = { ...spec.Labels };
          delete labels[AWAITING_BUNDLES];
          return { ...spec, Availability: 'active', Labels: labels };
        });
      } catch (e) {
        this.fail(h, onHost(h, `setting the node active through ${lead.name} failed; it stays paused`, e));
        continue;
      }
      const r = this.report(h);
      r.changes.push(o.bundles.length > 0 ? `given ${o.bundles.join(', ')}; set active` : 'nothing deployed to give; set active');
      if (r.action === 'unchanged') r.action = 'updated';
      this.note(h, 'set active');
    }
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
    return { ok: hosts.every((r) => r.action !== 'error') && this.unlisted.every((u) => u.action !== 'error'), ...extra, hosts, unlisted: this.unlisted };
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

