import { setTimeout as sleep } from 'node:timers/promises';
import type { SwarmEngine } from '../docker/engine.js';
import { waitForConvergence, type ServiceProgress } from './converge.js';
import { runPhase, type ExecuteOptions } from './execute.js';
import { bindIds } from './bind.js';
import { planStack } from './plan.js';
import { readStackState } from './state.js';
import { NAMESPACE_LABEL, type DesiredStack, type Plan, type Step } from './types.js';

export interface DeployOptions extends ExecuteOptions {
  prune?: boolean;
  /** Wait until every service converged; required for cleanup of replaced secrets and configs. */
  wait?: boolean;
  timeoutMs?: number;
  /** How long services must run steadily to count as converged (converge.ts); default stableWindowMs(). */
  stableMs?: number;
  /** How often convergence looks at the tasks; default 1 s. */
  pollMs?: number;
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
export async function deployStack(docker: SwarmEngine, desired: DesiredStack, opts: DeployOptions = {}): Promise<DeployResult> {
  const prune = opts.prune ?? false;
  const before = await readStackState(docker, desired.stack, opts.signal);
  const { prepare } = planStack(desired, before, { prune });
  await runPhase(docker, prepare, opts);
  // Services are planned once the secrets and configs they name exist and have ids.
  const current = prepare.length > 0 ? await readStackState(docker, desired.stack, opts.signal) : before;
  const plan = { ...planStack(await bindIds(docker, desired, { allowMissing: false }), current, { prune }), prepare };
  await runPhase(docker, plan.services, opts);
  if (!opts.wait) return { plan };
  const converged = await waitForConvergence(
    docker,
    desired.services.map((s) => s.Name!),
    { timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, ...(opts.stableMs === undefined ? {} : { stableMs: opts.stableMs }), ...(opts.pollMs === undefined ? {} : { pollMs: opts.pollMs }), ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) },
  );
  await runPhase(docker, plan.cleanup, opts);
  return { plan, converged };
}

/** Plans without changing anything; secrets and configs still to be made show as changed references. */
export async function planDeploy(docker: SwarmEngine, desired: DesiredStack, prune: boolean): Promise<Plan> {
  return planStack(await bindIds(docker, desired, { allowMissing: true }), await readStackState(docker, desired.stack), { prune });
}

/**
 * Removes a stack as `docker stack rm` does: services first, then (once their
 * tasks are gone, so networks have no endpoints left) secrets, configs, networks.
 */
export async function removeStack(docker: SwarmEngine, stack: string, opts: ExecuteOptions & { timeoutMs?: number } = {}): Promise<Step[]> {
  const state = await readStackState(docker, stack, opts.signal);
  const services: Step[] = state.services.map((s) => ({ action: 'remove-service', name: s.Spec.Name!, id: s.ID }));
  await runPhase(docker, services, opts);
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  while (services.length > 0 && Date.now() < deadline) {
    const left = await docker.tasks.list({ filters: { label: [`${NAMESPACE_LABEL}=${stack}`] } });
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
