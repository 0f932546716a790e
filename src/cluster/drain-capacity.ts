/**
 * Whether the rest of the swarm can take a node's tasks before it is drained:
 * a pure planner over the nodes, services and tasks as the Engine API lists
 * them. It filters nodes as swarm's scheduler does (availability, placement
 * constraints, platforms, max replicas per node, host-mode ports, resource
 * reservations), uses placement preferences only to choose among the nodes
 * that fit, and packs the drained node's tasks one at a time in a fixed
 * order, so a refusal names the services that would fall short and why.
 */
import { BlockList, isIP } from 'node:net';
import type { Service, SwarmNode, Task, TaskSpec, TaskState } from '../docker/types.js';
import { notFound } from '../errors/index.js';
import { formatBytes } from '../units/bytes.js';

/** The swarm as the API lists it: `nodes.list()`, `services.list()`, `tasks.list()`. */
export interface SwarmState {
  nodes: readonly SwarmNode[];
  services: readonly Service[];
  tasks: readonly Task[];
}

/** A node that could not take a task, and the first rule that excluded it. */
export interface NodeRefusal {
  node: string;
  reason: string;
}

/** What draining does to one service that has tasks on the drained node(s). */
export interface ServiceCapacity {
  service: string;
  serviceId: string;
  /** `global`: its task on the node simply stops, nothing needs to go elsewhere. */
  mode: 'replicated' | 'global';
  /** Tasks that should run: the replica count; for jobs and global services, the unfinished tasks. */
  desired: number;
  /** Of those, on the drained node(s). */
  onNode: number;
  /** Of those on the node, how many fit elsewhere (0 for a global service). */
  placeable: number;
  /** onNode - placeable for a replicated service; 0 for a global one. */
  shortBy: number;
  /** A global service's task(s) on the node stop there. */
  stops: boolean;
  /** Where each placeable task would go (node names, in packing order). */
  targets: string[];
  /** Why the first task that fit nowhere was refused by each other node. */
  refusals: NodeRefusal[];
  /** One line for the operator when shortBy > 0. */
  why?: string;
}

export interface DrainCapacity {
  /** No replicated service falls short. */
  ok: boolean;
  services: ServiceCapacity[];
}

// ---------------------------------------------------------------------------
// Placement constraints, as swarmkit's manager/constraint package parses and
// evaluates them: `key==value` or `key!=value`, keys and values compared
// case-insensitively, label names case-sensitively, a missing attribute
// matching the empty string, an unknown key matching no node.

export interface Constraint {
  /** As written in the service spec. */
  text: string;
  key: string;
  op: '==' | '!=';
  value: string;
}

const KEY = /^[a-z_][a-z0-9\-_.]+$/i;
const VALUE = /^[a-z0-9:\-_\s.*()?+[\]\\^$|/]+$/i;

/** Parses one constraint; undefined when swarm would reject it (no operator, a bad key or value). */
export function parseConstraint(text: string): Constraint | undefined {
  // `==` is tried first, as swarm does: `a!=b` has no `==`, `a==b!=c` is key `a`.
  for (const op of ['==', '!='] as const) {
    const at = text.indexOf(op);
    if (at < 0) continue;
    const key = text.slice(0, at).trim();
    const value = text.slice(at + op.length).trim();
    if (!KEY.test(key) || !VALUE.test(value)) return undefined;
    return { text, key, op, value };
  }
  return undefined;
}

const NODE_LABEL = 'node.labels.';
const ENGINE_LABEL = 'engine.labels.';

/** The node's value for a constraint or spread key; undefined when swarm knows no such key. */
function attribute(key: string, node: SwarmNode): string | undefined {
  const k = key.toLowerCase();
  const d = node.Description;
  if (k === 'node.id') return node.ID;
  if (k === 'node.hostname') return d?.Hostname ?? '';
  if (k === 'node.role') return node.Spec.Role ?? 'worker';
  if (k === 'node.platform.os') return d?.Platform?.OS ?? '';
  if (k === 'node.platform.arch') return d?.Platform?.Architecture ?? '';
  if (key.length > NODE_LABEL.length && k.startsWith(NODE_LABEL)) return node.Spec.Labels?.[key.slice(NODE_LABEL.length)] ?? '';
  if (key.length > ENGINE_LABEL.length && k.startsWith(ENGINE_LABEL)) return d?.Engine?.Labels?.[key.slice(ENGINE_LABEL.length)] ?? '';
  return undefined;
}

const family = (ip: string) => (isIP(ip) === 6 ? 'ipv6' : 'ipv4');

/** `node.ip` against an address or a CIDR subnet; a malformed one matches no node, whatever the operator. */
function ipMatches(c: Constraint, addr: string | undefined): boolean {
  const [net = '', bits, extra] = c.value.split('/');
  const list = new BlockList();
  try {
    if (bits === undefined && isIP(net)) list.addAddress(net, family(net));
    else if (bits !== undefined && extra === undefined && isIP(net) && /^\d+$/.test(bits)) list.addSubnet(net, Number(bits), family(net));
    else return false;
  } catch {
    return false; // a prefix longer than the address
  }
  const inside = addr !== undefined && isIP(addr) !== 0 && list.check(addr, family(addr));
  return c.op === '==' ? inside : !inside;
}

/** Whether the node satisfies the constraint. */
export function constraintMatches(c: Constraint, node: SwarmNode): boolean {
  if (c.key.toLowerCase() === 'node.ip') return ipMatches(c, node.Status.Addr);
  const actual = attribute(c.key, node);
  if (actual === undefined) return false;
  const equal = actual.toLowerCase() === c.value.toLowerCase();
  return c.op === '==' ? equal : !equal;
}

// ---------------------------------------------------------------------------
// The planner.

const STATES: readonly TaskState[] = ['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running'];

/** A task that holds its node's resources: scheduled and not yet finished (swarm counts pending to running). */
function holdsNode(t: Task): boolean {
  return t.NodeID !== undefined && t.NodeID !== '' && STATES.indexOf(t.Status.State) >= STATES.indexOf('pending');
}

/** A task the orchestrator will replace when its node drains: unfinished and still wanted (jobs want `complete`). */
function wanted(t: Task): boolean {
  return STATES.includes(t.Status.State) && (t.DesiredState === 'running' || t.DesiredState === 'ready' || t.DesiredState === 'complete');
}

function nodeName(n: SwarmNode): string {
  return n.Description?.Hostname || n.Spec.Name || n.ID;
}

function isGlobal(s: Service): boolean {
  const m = s.Spec.Mode;
  return m?.Global !== undefined || m?.GlobalJob !== undefined;
}

function isJob(s: Service): boolean {
  const m = s.Spec.Mode;
  return m?.ReplicatedJob !== undefined || m?.GlobalJob !== undefined;
}

/** What a target node has left while the plan fills it. */
interface Room {
  node: SwarmNode;
  name: string;
  /** Why it can take nothing at all (down, paused, drained), or undefined. */
  closed: string | undefined;
  freeCpu: number;
  freeMemory: number;
  byService: Map<string, number>;
  total: number;
  /** `tcp/8080` for every host-mode published port in use. */
  hostPorts: Set<string>;
}

function reservations(spec: TaskSpec | undefined): { cpu: number; memory: number } {
  const r = spec?.Resources?.Reservations;
  return { cpu: r?.NanoCPUs ?? 0, memory: r?.MemoryBytes ?? 0 };
}

function hostPorts(s: Service | undefined): string[] {
  const ports = s?.Spec.EndpointSpec?.Ports ?? [];
  return ports.filter((p) => p.PublishMode === 'host' && p.PublishedPort).map((p) => `${p.Protocol ?? 'tcp'}/${p.PublishedPort}`);
}

const ARCH_ALIASES: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64' };
const arch = (a: string | undefined) => (a === undefined ? '' : (ARCH_ALIASES[a] ?? a));

function formatCpus(nano: number): string {
  return `${Number((nano / 1e9).toFixed(2))} CPUs`;
}

/** The first rule by which the node refuses one more task of the service; undefined when it fits. */
function refusal(room: Room, service: Service, constraints: readonly (Constraint | string)[]): string | undefined {
  if (room.closed) return room.closed;
  for (const c of constraints) {
    if (typeof c === 'string') return `constraint "${c}" is not valid`;
    if (!constraintMatches(c, room.node)) return `constraint ${c.text.trim()}`;
  }
  const placement = service.Spec.TaskTemplate?.Placement;
  const platforms = placement?.Platforms ?? [];
  if (platforms.length > 0) {
    const p = room.node.Description?.Platform;
    const fits = platforms.some((want) => (!want.Architecture || arch(want.Architecture) === arch(p?.Architecture)) && (!want.OS || want.OS === p?.OS));
    if (!fits) return `platform ${p?.OS ?? '?'}/${p?.Architecture ?? '?'} is not one the service runs on`;
  }
  const max = placement?.MaxReplicas ?? 0;
  if (max > 0 && (room.byService.get(service.ID) ?? 0) >= max) return `max replicas per node (${max}) reached`;
  const taken = hostPorts(service).find((p) => room.hostPorts.has(p));
  if (taken) return `host port ${taken} already in use`;
  const need = reservations(service.Spec.TaskTemplate);
  if (need.memory > room.freeMemory) return `not enough memory (needs ${formatBytes(need.memory)}, ${formatBytes(Math.max(0, room.freeMemory))} free)`;
  if (need.cpu > room.freeCpu) return `not enough CPU (needs ${formatCpus(need.cpu)}, ${formatCpus(Math.max(0, room.freeCpu))} free)`;
  return undefined;
}

/** Preference keys (node.labels.X / engine.labels.X) for spreading the service's tasks. */
function spreadKeys(service: Service): string[] {
  const prefs = service.Spec.TaskTemplate?.Placement?.Preferences ?? [];
  // Swarm spreads over labels only; any other descriptor is refused when the service is created.
  const isLabel = (d: string) => [NODE_LABEL, ENGINE_LABEL].some((p) => d.length > p.length && d.toLowerCase().startsWith(p));
  return prefs.map((p) => p.Spread?.SpreadDescriptor).filter((d): d is string => d !== undefined && isLabel(d));
}

/**
 * Orders the nodes that fit, best first: for each spread preference the group
 * (label value) that runs fewest of the service's tasks, then the node that
 * runs fewest of them, then fewest tasks at all, then by name.
 */
function rank(fits: Room[], service: Service): Room[] {
  const keys = spreadKeys(service);
  const groupLoad = keys.map((key) => {
    const load = new Map<string, number>();
    for (const r of fits) {
      const v = attribute(key, r.node) ?? '';
      load.set(v, (load.get(v) ?? 0) + (r.byService.get(service.ID) ?? 0));
    }
    return (r: Room) => load.get(attribute(key, r.node) ?? '') ?? 0;
  });
  const score = (r: Room) => [...groupLoad.map((f) => f(r)), r.byService.get(service.ID) ?? 0, r.total];
  return [...fits].sort((a, b) => {
    const sa = score(a);
    const sb = score(b);
    for (let i = 0; i < sa.length; i++) if (sa[i] !== sb[i]) return (sa[i] ?? 0) - (sb[i] ?? 0);
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
}

/** Resolves a node by ID or hostname. */
export function findNode(nodes: readonly SwarmNode[], ref: string): SwarmNode {
  const node = nodes.find((n) => n.ID === ref) ?? nodes.find((n) => n.Description?.Hostname === ref);
  if (!node) {
    throw notFound(`no node ${ref} in the swarm (nodes: ${nodes.map(nodeName).sort().join(', ') || 'none'})`, {
      reason: 'node-not-found',
      subject: ref,
      hint: 'name a node by its ID or hostname, as `airlock cluster status` lists them',
    });
  }
  return node;
}

function openRooms(state: SwarmState, draining: ReadonlySet<string>): Room[] {
  const services = new Map(state.services.map((s) => [s.ID, s]));
  const rooms = state.nodes
    .filter((n) => !draining.has(n.ID))
    .map((node): Room => {
      const availability = node.Spec.Availability ?? 'active';
      const closed =
        node.Status.State !== 'ready' ? `node is ${node.Status.State}` : availability === 'pause' ? 'node is paused' : availability === 'drain' ? 'node is drained' : undefined;
      const res = node.Description?.Resources;
      return { node, name: nodeName(node), closed, freeCpu: res?.NanoCPUs ?? 0, freeMemory: res?.MemoryBytes ?? 0, byService: new Map(), total: 0, hostPorts: new Set() };
    });
  const byId = new Map(rooms.map((r) => [r.node.ID, r]));
  for (const t of state.tasks) {
    const room = t.NodeID === undefined ? undefined : byId.get(t.NodeID);
    if (!room || !holdsNode(t)) continue;
    const r = reservations(t.Spec);
    room.freeCpu -= r.cpu;
    room.freeMemory -= r.memory;
    room.byService.set(t.ServiceID, (room.byService.get(t.ServiceID) ?? 0) + 1);
    room.total++;
    for (const p of hostPorts(services.get(t.ServiceID))) room.hostPorts.add(p);
  }
  return rooms.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function place(room: Room, service: Service): void {
  const need = reservations(service.Spec.TaskTemplate);
  room.freeCpu -= need.cpu;
  room.freeMemory -= need.memory;
  room.byService.set(service.ID, (room.byService.get(service.ID) ?? 0) + 1);
  room.total++;
  for (const p of hostPorts(service)) room.hostPorts.add(p);
}

/**
 * Plans draining `drain` (node IDs or hostnames; several for a parallel
 * drain): per service with tasks there, whether the other ready, active
 * nodes can take them. Services are packed in name order, each task in slot
 * order onto the best node that fits, and what one takes is gone for the next.
 */
export function planDrainCapacity(state: SwarmState, drain: string | readonly string[]): DrainCapacity {
  const draining = new Set((typeof drain === 'string' ? [drain] : drain).map((ref) => findNode(state.nodes, ref).ID));
  const rooms = openRooms(state, draining);
  const services = [...state.services].sort((a, b) => (a.Spec.Name < b.Spec.Name ? -1 : a.Spec.Name > b.Spec.Name ? 1 : a.ID < b.ID ? -1 : 1));
  const result: ServiceCapacity[] = [];
  for (const service of services) {
    const live = state.tasks.filter((t) => t.ServiceID === service.ID && wanted(t));
    const moving = live
      .filter((t) => t.NodeID !== undefined && draining.has(t.NodeID))
      .sort((a, b) => (a.Slot ?? 0) - (b.Slot ?? 0) || (a.ID < b.ID ? -1 : 1));
    if (moving.length === 0) continue;
    const replicas = service.Spec.Mode?.Replicated?.Replicas;
    const desired = isJob(service) || isGlobal(service) || replicas === undefined ? live.length : replicas;
    const base = { service: service.Spec.Name, serviceId: service.ID, desired, onNode: moving.length };
    if (isGlobal(service)) {
      result.push({ ...base, mode: 'global', placeable: 0, shortBy: 0, stops: true, targets: [], refusals: [] });
      continue;
    }
    const parsed = (service.Spec.TaskTemplate?.Placement?.Constraints ?? []).map((c) => parseConstraint(c) ?? c);
    const targets: string[] = [];
    let refusals: NodeRefusal[] = [];
    for (let i = 0; i < moving.length; i++) {
      const verdicts = rooms.map((room) => ({ room, reason: refusal(room, service, parsed) }));
      const best = rank(verdicts.filter((v) => v.reason === undefined).map((v) => v.room), service)[0];
      if (best) {
        place(best, service);
        targets.push(best.name);
        continue;
      }
      refusals = verdicts.map((v) => ({ node: v.room.name, reason: v.reason ?? '' }));
      break;
    }
    const shortBy = moving.length - targets.length;
    const why =
      shortBy === 0
        ? undefined
        : `${shortBy} of its ${moving.length} task(s) on the node fit nowhere else: ` +
          (refusals.length === 0 ? 'no other node in the swarm' : refusals.map((r) => `${r.node}: ${r.reason}`).join('; '));
    result.push({ ...base, mode: 'replicated', placeable: targets.length, shortBy, stops: false, targets, refusals, ...(why === undefined ? {} : { why }) });
  }
  return { ok: result.every((s) => s.shortBy === 0), services: result };
}
