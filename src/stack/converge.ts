import { setTimeout as sleep } from 'node:timers/promises';
import { AirlockError, configError } from '../errors/index.js';
import type { SwarmEngine } from '../docker/engine.js';
import type { Service, SwarmNode, Task, TaskSpec } from '../docker/index.js';
import { admits, eligibleNodes } from './placement.js';
import { stable } from './spec-diff.js';

export interface ConvergeOptions {
  timeoutMs: number;
  pollMs?: number;
  /**
   * How long the same tasks must keep running before the stack counts as
   * converged: a task that starts and exits at once looks "running" for an
   * instant. Swarm's own update monitor defaults to 5 s. Default:
   * stableWindowMs().
   */
  stableMs?: number;
  signal?: AbortSignal;
  onProgress?: (status: ServiceProgress[]) => void;
}

export interface ServiceProgress {
  name: string;
  /** Tasks running (and healthy, where a healthcheck is defined) with the current spec. */
  ready: number;
  desired: number;
  /** Errors of tasks of the current spec that failed or were rejected, newest first. */
  errors: string[];
  /** Short of its tasks with none failed: what its tasks are doing (`1 pending (no suitable node …)`). */
  waiting?: string[];
}

export const DEFAULT_STABLE_MS = 5000;

/**
 * The stability window when a caller names none: DEFAULT_STABLE_MS, or
 * AIRLOCK_STABLE_MS milliseconds, which tests set to shorten every wait of a
 * run (the apply and recovery waits included) without a flag of their own.
 */
export function stableWindowMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env['AIRLOCK_STABLE_MS'];
  if (raw === undefined || raw === '') return DEFAULT_STABLE_MS;
  if (!/^\d+$/.test(raw)) throw configError(`AIRLOCK_STABLE_MS=${raw} is not a number of milliseconds`, { reason: 'bad-env', subject: 'AIRLOCK_STABLE_MS', hint: 'set it to a whole number of milliseconds (5000 is the default), or unset it' });
  return Number(raw);
}

const runningTaskIds = (tasks: Task[]) => new Set(tasks.filter((t) => t.Status.State === 'running' || t.Status.State === 'complete').map((t) => t.ID));
const sameTasks = (a: Set<string>, b: Set<string>) => a.size === b.size && [...a].every((id) => b.has(id));

const FAILED_UPDATE = new Set(['paused', 'rollback_started', 'rollback_paused', 'rollback_completed']);

const isJob = (s: Service) => s.Spec.Mode?.ReplicatedJob !== undefined || s.Spec.Mode?.GlobalJob !== undefined;

/**
 * A task carries a trimmed copy of the task template (no restart policy,
 * stop grace period, ...): it is current when every field it carries equals
 * the template's. That is also the test swarm uses to replace a task.
 */
export function carriedBy(task: unknown, template: unknown): boolean {
  if (task !== null && typeof task === 'object' && !Array.isArray(task)) {
    if (template === null || typeof template !== 'object' || Array.isArray(template)) return false;
    return Object.entries(task).every(([k, v]) => carriedBy(v, (template as Record<string, unknown>)[k]));
  }
  return stable(task) === stable(template);
}

/**
 * One look at the services: a task counts when it runs the service's current
 * task template. Swarm keeps a task with a healthcheck in "starting" until it
 * is healthy, so "running" already means healthy.
 */
export function progressOf(service: Service, tasks: Task[], nodes: readonly SwarmNode[]): ServiceProgress {
  const template = service.Spec.TaskTemplate as TaskSpec;
  const current = tasks.filter((t) => t.ServiceID === service.ID && isCurrent(t, template, nodes));
  const job = isJob(service);
  const running = current.filter((t) => (job ? t.Status.State === 'complete' : t.Status.State === 'running' && t.DesiredState === 'running'));
  let ready = running.length;
  let desired = job
    ? service.Spec.Mode?.ReplicatedJob?.TotalCompletions ?? service.ServiceStatus?.DesiredTasks ?? 1
    : service.ServiceStatus?.DesiredTasks ?? service.Spec.Mode?.Replicated?.Replicas ?? 0;
  if (service.Spec.Mode?.Global !== undefined) {
    // One task on every eligible node, counted by node (src/stack/placement.ts says why).
    const eligible = new Set(eligibleNodes(service, nodes).map((n) => n.ID));
    desired = eligible.size;
    ready = new Set(running.filter((t) => t.NodeID !== undefined && eligible.has(t.NodeID)).map((t) => t.NodeID)).size;
  }
  const errors = current
    .filter((t) => t.Status.State === 'failed' || t.Status.State === 'rejected')
    .sort((a, b) => (b.Status.Timestamp ?? '').localeCompare(a.Status.Timestamp ?? ''))
    .map((t) => `${t.Status.State} on node ${t.NodeID?.slice(0, 12) || '?'}: ${t.Status.Err || t.Status.Message || 'no message'}`);
  const progress: ServiceProgress = { name: service.Spec.Name, ready, desired, errors: [...new Set(errors)] };
  if (ready < desired && errors.length === 0) progress.waiting = waitingOn(service, tasks, current);
  return progress;
}

/** What a service short of its tasks, with no task failed, is waiting on: its tasks' states, counted. */
function waitingOn(service: Service, tasks: Task[], current: Task[]): string[] {
  const count = new Map<string, number>();
  const add = (what: string) => count.set(what, (count.get(what) ?? 0) + 1);
  for (const t of current) {
    if (t.DesiredState !== 'running' || t.Status.State === 'running') continue;
    add(`${t.Status.State}${t.Status.Message && t.Status.Message !== t.Status.State ? ` (${t.Status.Message})` : ''}`);
  }
  const older = tasks.filter((t) => t.ServiceID === service.ID && !current.includes(t) && t.DesiredState === 'running' && t.Status.State === 'running');
  for (let i = 0; i < older.length; i++) add('running an earlier spec');
  return [...count].map(([what, n]) => `${n} ${what}`);
}

/**
 * Whether a task runs the service's current spec, as swarm judges it: a task
 * whose spec differs only in placement is kept where its node still meets
 * the new placement (swarm does not restart it), so it counts as current.
 */
function isCurrent(task: Task, template: TaskSpec, nodes: readonly SwarmNode[]): boolean {
  const { Placement: taskPlacement, ...taskRest } = (task.Spec ?? {}) as TaskSpec;
  const { Placement: placement, ...rest } = template;
  if (!carriedBy(taskRest, rest)) return false;
  if (carriedBy(taskPlacement ?? {}, placement ?? {})) return true;
  const node = nodes.find((n) => n.ID === task.NodeID);
  return node !== undefined && admits(placement, node);
}

/** Each service's progress, read from its tasks and the swarm's nodes. */
export async function progressOfServices(docker: SwarmEngine, services: Service[], call: { signal?: AbortSignal } = {}): Promise<{ tasks: Task[]; status: ServiceProgress[] }> {
  if (services.length === 0) return { tasks: [], status: [] };
  const [tasks, nodes] = await Promise.all([docker.tasks.list({ ...call, filters: { service: services.map((s) => s.ID) } }), docker.nodes.list(call)]);
  return { tasks, status: services.map((s) => progressOf(s, tasks, nodes)) };
}

/** One look at the named services: each one's progress, and the services and tasks it was read from. */
async function pollProgress(docker: SwarmEngine, wanted: ReadonlySet<string>, call: { signal?: AbortSignal }) {
  const services = (await docker.services.list({ ...call, status: true, filters: { name: [...wanted] } })).filter((s) => wanted.has(s.Spec.Name));
  return { services, ...(await progressOfServices(docker, services, call)) };
}

/** How far each named service is now, without waiting. */
export async function currentProgress(docker: SwarmEngine, serviceNames: readonly string[], signal?: AbortSignal): Promise<ServiceProgress[]> {
  return (await pollProgress(docker, new Set(serviceNames), signal ? { signal } : {})).status;
}

/** Waits until every named service runs its desired tasks, or fails with each failing task's error. */
export async function waitForConvergence(docker: SwarmEngine, serviceNames: readonly string[], opts: ConvergeOptions): Promise<ServiceProgress[]> {
  const deadline = Date.now() + opts.timeoutMs;
  const call = opts.signal ? { signal: opts.signal } : {};
  const wanted = new Set(serviceNames);
  const stableMs = opts.stableMs ?? stableWindowMs();
  let stableSince: number | undefined;
  let stableTasks = new Set<string>();
  for (;;) {
    const { services, tasks, status } = await pollProgress(docker, wanted, call);
    opts.onProgress?.(status);
    const stuck = services.find((s) => FAILED_UPDATE.has(s.UpdateStatus?.State ?? ''));
    if (stuck) {
      const errors = status.find((s) => s.name === stuck.Spec.Name)?.errors ?? [];
      throw new AirlockError('engine', `service ${stuck.Spec.Name}: swarm ${stuck.UpdateStatus!.State!.replace('_', ' ')} the update: ${stuck.UpdateStatus!.Message ?? ''}${errors.length ? `; ${errors.slice(0, 3).join('; ')}` : ''}`, {
        reason: 'update-failed',
        subject: stuck.Spec.Name,
      });
    }
    if (services.length === wanted.size && status.every((s) => s.ready >= s.desired)) {
      const running = runningTaskIds(tasks);
      if (stableSince === undefined || !sameTasks(stableTasks, running)) {
        stableSince = Date.now();
        stableTasks = running;
      }
      if (Date.now() - stableSince >= stableMs) return status;
    } else {
      stableSince = undefined;
    }
    if (Date.now() >= deadline) throw notConverged(status, serviceNames, opts.timeoutMs);
    await sleep(opts.pollMs ?? 1000, undefined, call);
  }
}

function notConverged(status: ServiceProgress[], names: readonly string[], timeoutMs: number): AirlockError {
  const missing = names.filter((n) => !status.some((s) => s.name === n));
  const lines = status
    .filter((s) => s.ready < s.desired)
    .map((s) => `${s.name}: ${s.ready}/${s.desired} ready${s.errors.length ? `; ${s.errors.slice(0, 3).join('; ')}` : s.waiting?.length ? `; tasks: ${s.waiting.join(', ')}` : ''}`);
  for (const n of missing) lines.push(`${n}: not found`);
  return new AirlockError('engine', `services did not converge within ${Math.round(timeoutMs / 1000)} s: ${lines.join(' | ')}`, {
    reason: 'not-converged',
    hint: 'a "No such image" error means the image is missing on that node: import the bundle there too',
  });
}
