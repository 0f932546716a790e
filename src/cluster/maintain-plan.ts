/**
 * Which hosts a rolling maintenance takes, in what order and how many at
 * once: pure, over the swarm as a manager lists it. A host goes with others
 * only when the rest of the swarm can hold all their tasks together
 * (planDrainCapacity) and the managers left up keep quorum (downBreaksQuorum).
 * A run is remembered on the swarm itself, as a node label, so that a re-run
 * from any jump box resumes it.
 */
import type { SwarmNode } from '../docker/types.js';
import { planDrainCapacity, type SwarmState } from './drain-capacity.js';
import { downBreaksQuorum, quorumOf } from './quorum.js';

/** The node label that remembers a run: `<run id>:drain` once the run takes the host, `<run id>:<step>` where it stopped after a failure, `<run id>:done` after. */
export const MAINTAIN_LABEL = 'io.airlock.maintain';

export const MAINTAIN_STEPS = ['drain', 'run', 'ready', 'activate', 'settle'] as const;
export type MaintainStep = (typeof MAINTAIN_STEPS)[number];

export interface MaintainTarget {
  host: string;
  nodeId: string;
}

export interface Mark {
  runId: string;
  step: MaintainStep | 'done';
}

export function markText(m: Mark): string {
  return `${m.runId}:${m.step}`;
}

export function parseMark(value: string | undefined): Mark | undefined {
  const at = value?.lastIndexOf(':') ?? -1;
  if (value === undefined || at <= 0) return undefined;
  const step = value.slice(at + 1);
  if (step !== 'done' && !(MAINTAIN_STEPS as readonly string[]).includes(step)) return undefined;
  return { runId: value.slice(0, at), step: step as Mark['step'] };
}

export const markOf = (node: SwarmNode | undefined): Mark | undefined => parseMark(node?.Spec.Labels?.[MAINTAIN_LABEL]);

export interface RunOrder {
  /** The run resumed, when nodes carry one's marks; undefined: a new run. */
  resumed?: string;
  /** Hosts to maintain, the one a previous run left unfinished first. */
  order: MaintainTarget[];
  /** Hosts the resumed run finished already. */
  skipped: string[];
}

/**
 * The order of a run over `targets` (in the operator's order): a run whose
 * marks are on the nodes is resumed, its finished hosts skipped and its
 * unfinished host (left drained where it failed) taken first.
 */
export function runOrder(targets: readonly MaintainTarget[], nodes: readonly SwarmNode[]): RunOrder {
  const marks = nodes.map(markOf).filter((m): m is Mark => m !== undefined);
  const resumed = (marks.find((m) => m.step !== 'done') ?? marks[0])?.runId;
  if (resumed === undefined) return { order: [...targets], skipped: [] };
  const mark = (t: MaintainTarget) => {
    const m = markOf(nodes.find((n) => n.ID === t.nodeId));
    return m?.runId === resumed ? m.step : undefined;
  };
  const unfinished = targets.filter((t) => mark(t) !== undefined && mark(t) !== 'done');
  const fresh = targets.filter((t) => mark(t) === undefined);
  return { resumed, order: [...unfinished, ...fresh], skipped: targets.filter((t) => mark(t) === 'done').map((t) => t.host) };
}

/**
 * Why hosts cannot be maintained at all, before anything starts: a manager
 * whose going down alone loses quorum (named, with the count), the only
 * manager of a swarm that has other nodes (nothing would be left to drive
 * the swarm while it is down).
 */
export function refusals(nodes: readonly SwarmNode[], targets: readonly MaintainTarget[]): string[] {
  const out: string[] = [];
  const q = quorumOf(nodes);
  for (const t of targets) {
    const node = nodes.find((n) => n.ID === t.nodeId);
    if (!node?.ManagerStatus) continue;
    if (q.managers === 1) {
      if (nodes.length > 1) out.push(`${t.host} is the swarm's only manager: while it is down no manager is left to drain, check and reactivate the other nodes, and the swarm takes no orders`);
      continue;
    }
    const why = downBreaksQuorum(nodes, t.nodeId);
    if (why) out.push(`${t.host} is a manager, and taking it down would lose the swarm's quorum: ${why}`);
  }
  return out;
}

export interface Batch {
  hosts: MaintainTarget[];
  /** Set when not even the first pending host can go: why (the services that would fall short). */
  blocked?: string;
}

/**
 * The hosts to take down together next: the first pending one, then each
 * following one that still fits, up to `parallel`: the other nodes hold all
 * their replicated tasks together, and quorum survives all their managers
 * down at once. One manager always stays up to drive the swarm.
 */
export function nextBatch(state: SwarmState, pending: readonly MaintainTarget[], parallel: number): Batch {
  const hosts: MaintainTarget[] = [];
  const isManager = (t: MaintainTarget) => state.nodes.some((n) => n.ID === t.nodeId && n.ManagerStatus);
  const managers = state.nodes.filter((n) => n.ManagerStatus).length;
  for (const t of pending) {
    if (hosts.length >= parallel) break;
    const together = [...hosts, t];
    const capacity = planDrainCapacity(state, together.map((h) => h.nodeId));
    if (!capacity.ok) {
      if (hosts.length === 0) {
        const short = capacity.services.filter((s) => s.shortBy > 0).map((s) => `${s.service}: ${s.why ?? `${s.shortBy} task(s) fit nowhere else`}`);
        return { hosts: [], blocked: `the other nodes cannot take ${t.host}'s tasks: ${short.join('; ')}` };
      }
      continue;
    }
    if (isManager(t) && hosts.length > 0) {
      const down = hosts.filter(isManager);
      if (down.length + 1 >= managers || downBreaksQuorum(state.nodes, t.nodeId, down.map((h) => h.nodeId))) continue;
    }
    hosts.push(t);
  }
  return { hosts };
}
