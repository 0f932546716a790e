import type { SwarmEngine } from '../docker/engine.js';
import { NAMESPACE_LABEL } from '../compose/labels.js';
import type { StackState } from './types.js';

const byStack = (stack: string) => ({ filters: { label: [`${NAMESPACE_LABEL}=${stack}`] } });

/** Reads the stack from the engine every time, by label: never from a cache. */
export async function readStackState(docker: SwarmEngine, stack: string, signal?: AbortSignal): Promise<StackState> {
  const opts = { ...byStack(stack), ...(signal ? { signal } : {}) };
  const [apiVersion, services, networks, secrets, configs] = await Promise.all([
    docker.client.apiVersion(signal ? { signal } : {}),
    docker.services.list(opts),
    docker.networks.list(opts),
    docker.secrets.list(opts),
    docker.configs.list(opts),
  ]);
  return { apiVersion, services, networks, secrets, configs };
}

/** Every stack name the engine knows, with its service count (as `docker stack ls`). */
export async function listStacks(docker: SwarmEngine): Promise<{ name: string; services: number }[]> {
  const services = await docker.services.list({ filters: { label: [NAMESPACE_LABEL] } });
  const counts = new Map<string, number>();
  for (const s of services) {
    const name = s.Spec.Labels?.[NAMESPACE_LABEL];
    if (name) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return [...counts].map(([name, n]) => ({ name, services: n })).sort((a, b) => a.name.localeCompare(b.name));
}
