import { setTimeout as sleep } from 'node:timers/promises';
import type { Docker } from '../docker/index.js';
import { waitForConvergence, type ServiceProgress } from './converge.js';
import { runPhase, type ExecuteOptions } from './execute.js';
import { planStack } from './plan.js';
import { readStackState } from './state.js';
import type { DesiredStack, Plan, Step } from './types.js';

export interface DeployOptions extends ExecuteOptions {
  prune?: boolean;
  /** Wait until every service converged; required for cleanup of replaced secrets and configs. */
  wait?: boolean;
  timeoutMs?: number;
  onProgress?: (status: ServiceProgress[]) => void;
}

export interface DeployResult {
  plan: Plan;
  converged?: ServiceProgress[];
}

export const DEFAULT_TIMEOUT_MS = 120_000;

/**
 * Brings a stack to its desired state: networks, secrets and configs first,
 * then services (created, updated or pruned), then, once converged, removes
 * the secrets and configs that were replaced.
 */
export async function deployStack(docker: Docker, desired: DesiredStack, opts: DeployOptions = {}): Promise<DeployResult> {
  const current = await readStackState(docker, desired.stack, opts.signal);
  const plan = planStack(desired, current, { prune: opts.prune ?? false });
  await runPhase(docker, plan.prepare, opts);
  await runPhase(docker, plan.services, opts);
  if (!opts.wait) return { plan };
  const converged = await waitForConvergence(
    docker,
    desired.services.map((s) => s.Name!),
    { timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) },
  );
  await runPhase(docker, plan.cleanup, opts);
  return { plan, converged };
}

/** Plans without changing anything. */
export async function planDeploy(docker: Docker, desired: DesiredStack, prune: boolean): Promise<Plan> {
  return planStack(desired, await readStackState(docker, desired.stack), { prune });
}

/**
 * Removes a stack as `docker stack rm` does: services first, then (once their
 * tasks are gone, so networks have no endpoints left) secrets, configs, networks.
 */
export async function removeStack(docker: Docker, stack: string, opts: ExecuteOptions & { timeoutMs?: number } = {}): Promise<Step[]> {
  const state = await readStackState(docker, stack, opts.signal);
  const services: Step[] = state.services.map((s) => ({ action: 'remove-service', name: s.Spec.Name!, id: s.ID }));
  await runPhase(docker, services, opts);
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const ids = state.services.map((s) => s.ID);
  while (ids.length > 0 && Date.now() < deadline) {
    const left = await docker.tasks.list({ filters: { service: ids } });
    if (left.length === 0) break;
    await sleep(500);
  }
  const rest: Step[] = [
    ...state.secrets.map((s): Step => ({ action: 'remove-secret', name: s.Spec.Name, id: s.ID })),
    ...state.configs.map((c): Step => ({ action: 'remove-config', name: c.Spec.Name, id: c.ID })),
  ];
  await runPhase(docker, rest, opts);
  const networks: Step[] = state.networks.map((n) => ({ action: 'remove-network', name: n.Name, id: n.Id }));
  await runPhase(docker, networks, opts);
  return [...services, ...rest, ...networks];
}
