import { setTimeout as sleep } from 'node:timers/promises';
import { AirlockError, asAirlockError } from '../errors/index.js';
import { bindObjectIds } from '../compose/convert/index.js';
import type { SwarmEngine } from '../docker/engine.js';
import type { DesiredStack } from './types.js';

/**
 * Service specs name secrets and configs by name and by id, and networks by
 * name; the engine keeps ids. Fills ids in from the engine (external objects
 * included, which carry no stack label), so the specs compare equal to what
 * the engine holds. Ids exist only once the objects do.
 */
export async function bindIds(docker: SwarmEngine, desired: DesiredStack, opts: { allowMissing: boolean }): Promise<DesiredStack> {
  const secretNames = new Set<string>();
  const configNames = new Set<string>();
  for (const s of desired.services) {
    for (const r of s.TaskTemplate?.ContainerSpec?.Secrets ?? []) if (r.SecretName) secretNames.add(r.SecretName);
    for (const r of s.TaskTemplate?.ContainerSpec?.Configs ?? []) if (r.ConfigName) configNames.add(r.ConfigName);
  }
  const networkNames = new Set(desired.services.flatMap((s) => (s.TaskTemplate?.Networks ?? []).map((n) => n.Target)));
  const [secrets, configs, networks] = await Promise.all([
    secretNames.size ? docker.secrets.list({ filters: { name: [...secretNames] } }) : [],
    configNames.size ? docker.configs.list({ filters: { name: [...configNames] } }) : [],
    networkNames.size ? docker.networks.list({ filters: { name: [...networkNames] } }) : [],
  ]);
  const networkIds = new Map(networks.filter((n) => networkNames.has(n.Name)).map((n) => [n.Name, n.Id]));
  // A dockerd that has just started lists its local networks before its swarm's: ask the swarm for
  // those not listed (a manager not back yet answers 503, which the client retries), so that a
  // journaled spec holds the id the engine will hold, not a name it turns into one.
  for (const name of networkNames) {
    if (networkIds.has(name)) continue;
    const found = await swarmNetwork(docker, name);
    if (found) networkIds.set(name, found.Id);
    else if (!opts.allowMissing) {
      throw new AirlockError('notFound', `network ${name} is not in the swarm`, {
        reason: 'missing-object',
        subject: name,
        hint: 'create external networks before deploying (docker network create -d overlay --attachable NAME)',
      });
    }
  }
  // The name filter matches prefixes: keep exact names only.
  const ids = {
    secrets: new Map(secrets.filter((s) => secretNames.has(s.Spec.Name)).map((s) => [s.Spec.Name, s.ID])),
    configs: new Map(configs.filter((c) => configNames.has(c.Spec.Name)).map((c) => [c.Spec.Name, c.ID])),
  };
  const services = desired.services.map((spec) => {
    const bound = bindObjectIds(spec, ids);
    if (bound.missing.length > 0 && !opts.allowMissing) {
      throw new AirlockError('notFound', `service ${spec.Name} needs ${bound.missing.join(', ')}, which the engine does not have`, {
        reason: 'missing-object',
        subject: spec.Name,
        hint: 'create external secrets and configs before deploying (docker secret create NAME FILE)',
      });
    }
    const template = bound.spec.TaskTemplate;
    if (!template?.Networks) return bound.spec;
    return { ...bound.spec, TaskTemplate: { ...template, Networks: template.Networks.map((n) => ({ ...n, Target: networkIds.get(n.Target) ?? n.Target })) } };
  });
  return { ...desired, services };
}

/** Looks a second and a third time before calling a network missing. */
const NETWORK_LOOKS = 3;

/**
 * The swarm's network NAME, or undefined. A 20.10 dockerd that is stopping
 * (its manager already gone) answers 404 for a swarm network that exists
 * (seen in test/apply/daemon-stop): a look a second later reaches the daemon
 * gone, which the client retries, or back, which answers truly.
 */
async function swarmNetwork(docker: SwarmEngine, name: string): Promise<{ Id: string } | undefined> {
  for (let look = 1; ; look++) {
    const found = await docker.networks.inspect(name, { scope: 'swarm' }).catch((e: unknown) => {
      if (asAirlockError(e).kind === 'notFound') return undefined;
      throw e;
    });
    if (found || look === NETWORK_LOOKS) return found;
    await sleep(1000);
  }
}
