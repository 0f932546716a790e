/**
 * The fake engine's tasks (fake-engine.ts): swarm's scheduler as far as the
 * tests need it. Time is mostly polls: every `tick` moves each task one step
 * (pending → running, or to the end state its image is set to with `fail`,
 * at once or once it ran `runsForMs`; a stopped task → shutdown), and a
 * replica whose task failed gets a new task, as swarm's restart policy does.
 * A task's shape is the recording's (engine-fixtures.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Service, ServiceSpec, Task, TaskSpec, TaskState } from '../../src/docker/types.js';
import type { EngineFixtures } from './engine-fixtures.js';

/** How tasks of an image end instead of running: `failed` (it exits) or `rejected` (it cannot start). */
export interface TaskFailure {
  state: 'failed' | 'rejected';
  err: string;
  /** Milliseconds the task runs before it fails (a process that exits after a moment); default 0: it never runs. */
  runsForMs?: number;
}

/** A fresh swarm object id: 25 lowercase letters and digits. */
export const newId = () => randomBytes(16).toString('base64url').toLowerCase().replace(/[^a-z0-9]/g, '').padEnd(25, '0').slice(0, 25);
export const now = () => new Date().toISOString();

export class TaskScheduler {
  /** Every task, in the order they were made. */
  readonly list: Task[] = [];
  private readonly failures = new Map<string, TaskFailure>();
  private readonly startedAt = new Map<string, number>();
  /** Template fields a task does not carry (the engine keeps them on the service alone). */
  private readonly notCarried: string[];

  /** `services` is the engine's own map (read, never written); `bump` its version index. */
  constructor(
    private readonly fixtures: EngineFixtures,
    private readonly services: ReadonlyMap<string, Service>,
    private readonly bump: () => number,
  ) {
    const carried = new Set(Object.keys(fixtures.tasksRunning[0]!.Spec));
    this.notCarried = Object.keys(fixtures.serviceInspect.Spec.TaskTemplate ?? {}).filter((k) => !carried.has(k));
  }

  /** Tasks of `image` end in `failure` once started, instead of running. */
  fail(image: string, failure: TaskFailure): void {
    this.failures.set(image, failure);
  }

  /** The part of a service's template its tasks carry: a change to it redeploys. */
  carried(spec: ServiceSpec): TaskSpec {
    const template: Record<string, unknown> = { ...spec.TaskTemplate };
    for (const k of this.notCarried) delete template[k];
    return template as TaskSpec;
  }

  /** Node ids the service's tasks go to: one per replica on the first node, or one per ready node (global). */
  slots(service: Service): string[] {
    const nodes = this.fixtures.nodes.filter((n) => n.Status.State === 'ready');
    if (service.Spec.Mode?.Global !== undefined) return nodes.map((n) => n.ID);
    return Array.from({ length: service.Spec.Mode?.Replicated?.Replicas ?? 1 }, () => nodes[0]!.ID);
  }

  /** Makes the service's tasks match its spec: a new task per slot when `redeploy`, else as many as the slots need. */
  schedule(service: Service, redeploy: boolean): void {
    const live = this.list.filter((t) => t.ServiceID === service.ID && t.DesiredState === 'running');
    const slots = this.slots(service);
    const keep = redeploy ? [] : live.slice(0, slots.length);
    for (const t of live) if (!keep.includes(t)) t.DesiredState = 'shutdown';
    for (let slot = keep.length; slot < slots.length; slot++) this.list.push(this.newTask(service, slot + 1, slots[slot]!));
  }

  /** A removed service's tasks go at the next tick. */
  remove(serviceId: string): void {
    for (const t of this.list) if (t.ServiceID === serviceId) t.DesiredState = 'remove';
  }

  /** One step of the swarm: tasks start (or fail), stopped ones end, failed replicas are replaced. */
  tick(): void {
    for (const t of [...this.list]) {
      const service = this.services.get(t.ServiceID);
      if (t.DesiredState === 'remove' || (!service && t.DesiredState !== 'running')) {
        this.list.splice(this.list.indexOf(t), 1);
      } else if (t.DesiredState === 'shutdown' && t.Status.State === 'running') {
        this.setState(t, 'shutdown', 'shutdown');
      } else if (t.DesiredState === 'running' && (t.Status.State === 'pending' || t.Status.State === 'running')) {
        const failure = this.failures.get(t.Spec.ContainerSpec?.Image ?? '');
        // A task not started yet ran 0 ms (two clock reads could make it -1, and let a failing task run once).
        const started = this.startedAt.get(t.ID);
        const ranMs = started === undefined ? 0 : Date.now() - started;
        if (failure && (failure.runsForMs ?? 0) <= ranMs) {
          this.setState(t, failure.state, failure.state === 'rejected' ? 'preparing' : 'started', failure.err);
          t.DesiredState = 'shutdown';
          // Swarm's restart policy: the slot gets a new task.
          if (service) this.list.push(this.newTask(service, t.Slot ?? 1, t.NodeID!));
        } else if (t.Status.State === 'pending') {
          this.setState(t, 'running', 'started');
          this.startedAt.set(t.ID, Date.now());
        }
      }
    }
    for (const service of this.services.values()) {
      if (service.UpdateStatus?.State !== 'updating') continue;
      const current = this.list.filter((t) => t.ServiceID === service.ID && t.DesiredState === 'running');
      if (current.length > 0 && current.every((t) => t.Status.State === 'running')) service.UpdateStatus = { ...service.UpdateStatus, State: 'completed', CompletedAt: now(), Message: 'update completed' };
    }
  }

  /** What `services.list` with `status` says of a service's tasks, in the recording's shape. */
  statusOf(s: Service): NonNullable<Service['ServiceStatus']> {
    const mine = this.list.filter((t) => t.ServiceID === s.ID);
    const shape = this.fixtures.serviceListStatus[0]?.ServiceStatus ?? { RunningTasks: 0, DesiredTasks: 0 };
    return { ...shape, RunningTasks: mine.filter((t) => t.Status.State === 'running').length, DesiredTasks: this.slots(s).length, ...('CompletedTasks' in shape ? { CompletedTasks: 0 } : {}) };
  }

  private newTask(service: Service, slot: number, nodeId: string): Task {
    const base = this.fixtures.tasksRunning[0]!;
    return {
      ...structuredClone(base),
      ID: newId(),
      Version: { Index: this.bump() },
      CreatedAt: now(),
      UpdatedAt: now(),
      Spec: structuredClone(this.carried(service.Spec)),
      ServiceID: service.ID,
      Slot: slot,
      NodeID: nodeId,
      Status: { Timestamp: now(), State: 'pending', Message: 'pending task scheduling' },
      DesiredState: 'running',
    };
  }

  private setState(t: Task, state: TaskState, message: string, err?: string): void {
    t.Status = { ...t.Status, Timestamp: now(), State: state, Message: message, ...(err === undefined ? {} : { Err: err }) };
    t.Version = { Index: this.bump() };
  }
}
