import { setTimeout as sleep } from 'node:timers/promises';
import type { SwarmEngine } from '../docker/engine.js';
import { runPhase, type ExecuteOptions } from './execute.js';
import { bindIds } from './bind.js';
import { planStack } from './plan.js';
import { readStackState } from './state.js';
import { NAMESPACE_LABEL } from '../compose/labels.js';
import type { DesiredStack, Plan, Change } from './types.js';

export const DEFAULT_TIMEOUT_MS = 120_000;

/** Plans without changing anything; secrets and configs still to be made show as changed references. */
export async function planDeploy(docker: SwarmEngine, desired: DesiredStack, prune: boolean): Promise<Plan> {
  return planStack(await bindIds(docker, desired, { allowMissing: true }), await readStackState(docker, desired.stack), { prune });
}

/**
 * Removes a stack as `docker stack rm` does: services first, then (once their
 * tasks are gone, so networks have no endpoints left) secrets, configs, networks.
 */
export async function removeStack(docker: SwarmEngine, stack: string, opts: ExecuteOptions & { timeoutMs?: number } = {}): Promise<Change[]> {
  const state = await readStackState(docker, stack, opts.signal);
  const services: Change[] = state.services.map((s) => ({ action: 'remove-service', name: s.Spec.Name, id: s.ID }));
  await runPhase(docker, services, opts);
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  while (services.length > 0 && Date.now() < deadline) {
    const left = await docker.tasks.list({ filters: { label: [`${NAMESPACE_LABEL}=${stack}`] } });
    if (left.length === 0) break;
    await sleep(500);
  }
  const rest: Change[] = [
    ...state.secrets.map((s): Change => ({ action: 'remove-secret', name: s.Spec.Name, id: s.ID })),
    ...state.configs.map((c): Change => ({ action: 'remove-config', name: c.Spec.Name, id: c.ID })),
  ];
  await runPhase(docker, rest, opts);
  const networks: Change[] = state.networks.map((n) => ({ action: 'remove-network', name: n.Name, id: n.Id }));
  await runPhase(docker, networks, opts);
  return [...services, ...rest, ...networks];
}
