/**
 * The `deploy:` section and its neighbours: mode and replicas, resources,
 * restart policy (with `restart:` as docker's fallback), update and rollback
 * config, placement, and the endpoint (ports, endpoint_mode).
 */
import type { EndpointSpec, PortConfig, ResourceSpec, ServiceSpec, TaskSpec, UpdateConfig as ApiUpdateConfig } from '../../docker/types.js';
import type { DeployConfig, ServiceConfig, ServicePort, UpdateConfig } from '../model.js';
import { SERVICE_GATES } from './api-version.js';
import { type ConvertContext, allowed, durationAt } from './context.js';
import { compact, nonEmpty } from './names.js';

export function convertMode(ctx: ConvertContext, deploy: DeployConfig, path: string): NonNullable<ServiceSpec['Mode']> {
  const replicas = deploy.replicas;
  const mode = deploy.mode ?? 'replicated';
  if ((mode === 'global' || mode === 'global-job') && replicas !== undefined) {
    ctx.notices.error(`${path}.deploy.replicas`, 'replicas can only be used with replicated or replicated-job mode');
  }
  switch (mode) {
    case 'replicated':
      return { Replicated: compact({ Replicas: replicas }) };
    case 'global':
      return { Global: {} };
    case 'replicated-job':
      allowed(ctx, path, SERVICE_GATES.jobMode);
      return { ReplicatedJob: compact({ MaxConcurrent: replicas, TotalCompletions: replicas }) };
    case 'global-job':
      allowed(ctx, path, SERVICE_GATES.jobMode);
      return { GlobalJob: {} };
    default: {
      const unknown: string = mode;
      ctx.notices.error(`${path}.deploy.mode`, `unknown mode "${unknown}": use replicated, global, replicated-job or global-job`);
      return { Replicated: compact({ Replicas: replicas }) };
    }
  }
}

/**
 * docker's ParseCPUs: the value read as an exact rational (`0.5`, `1.25`,
 * `1e-3`, `3/2`) times 10⁹, which must come out whole.
 */
export function parseCpus(text: string): number {
  const s = text.trim();
  let num: bigint;
  let den: bigint;
  const frac = /^([+-]?\d+)\/(\d+)$/.exec(s);
  const dec = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (frac) {
    num = BigInt(frac[1]!);
    den = BigInt(frac[2]!);
    if (den === 0n) throw new Error(`failed to parse ${text} as a rational number`);
  } else if (dec && (dec[2] || dec[3])) {
    const digits = (dec[2] ?? '') + (dec[3] ?? '');
    const exp = Number(dec[4] ?? '0') - (dec[3] ?? '').length;
    num = BigInt((dec[1] === '-' ? '-' : '') + (digits || '0'));
    den = 1n;
    if (exp >= 0) num *= 10n ** BigInt(exp);
    else den = 10n ** BigInt(-exp);
  } else {
    throw new Error(`failed to parse ${text} as a rational number`);
  }
  const nano = num * 1_000_000_000n;
  if (nano % den !== 0n) throw new Error('value is too precise');
  return Number(nano / den);
}

function cpusAt(ctx: ConvertContext, path: string, cpus: string | undefined): number | undefined {
  if (cpus === undefined || cpus === '') return undefined;
  try {
    return parseCpus(cpus) || undefined;
  } catch (e) {
    ctx.notices.error(path, `cpus "${cpus}": ${(e as Error).message}; write a decimal such as 0.5`);
    return undefined;
  }
}

/** Always an object, as docker sends it; Limits and Reservations only when the file has them. */
export function convertResources(ctx: ConvertContext, deploy: DeployConfig, path: string): NonNullable<TaskSpec['Resources']> {
  const out: NonNullable<TaskSpec['Resources']> = {};
  const p = `${path}.deploy.resources`;
  const limits = deploy.resources?.limits;
  if (limits) {
    const pids = limits.pids && allowed(ctx, path, SERVICE_GATES.pids) ? limits.pids : undefined;
    out.Limits = compact<ResourceSpec>({
      NanoCPUs: cpusAt(ctx, `${p}.limits.cpus`, limits.cpus),
      MemoryBytes: limits.memory || undefined,
      Pids: pids,
    });
  }
  const reservations = deploy.resources?.reservations;
  if (reservations) {
    const generic = (reservations.generic_resources ?? []).map((g) => ({
      DiscreteResourceSpec: { Kind: g.discrete_resource_spec.kind, Value: g.discrete_resource_spec.value },
    }));
    out.Reservations = compact({
      NanoCPUs: cpusAt(ctx, `${p}.reservations.cpus`, reservations.cpus),
      MemoryBytes: reservations.memory || undefined,
      GenericResources: nonEmpty(generic),
    });
  }
  return out;
}

type RestartPolicy = NonNullable<TaskSpec['RestartPolicy']>;

/**
 * deploy.restart_policy when given. Otherwise docker falls back to the
 * container-style `restart:`: `no` → none, `always` and `unless-stopped` →
 * condition any (a count is ignored), `on-failure[:N]` → on-failure with
 * MaxAttempts N (0 when absent).
 */
export function convertRestartPolicy(ctx: ConvertContext, service: ServiceConfig, path: string): RestartPolicy | undefined {
  const policy = service.deploy.restart_policy;
  if (policy) {
    if (service.restart !== undefined) {
      ctx.notices.warn(`${path}.restart`, 'ignored because deploy.restart_policy is set, as docker stack deploy does');
    }
    const p = `${path}.deploy.restart_policy`;
    return compact<RestartPolicy>({
      Condition: nonEmpty(policy.condition),
      Delay: durationAt(ctx, `${p}.delay`, policy.delay),
      MaxAttempts: policy.max_attempts,
      Window: durationAt(ctx, `${p}.window`, policy.window),
    });
  }
  const restart = service.restart;
  if (restart === undefined || restart === '') return undefined;
  const colon = restart.indexOf(':');
  const name = colon === -1 ? restart : restart.slice(0, colon);
  const count = colon === -1 ? '' : restart.slice(colon + 1);
  if (count !== '' && !/^[+-]?\d+$/.test(count)) {
    ctx.notices.error(`${path}.restart`, `invalid restart policy "${restart}": the maximum retry count must be an integer`);
    return undefined;
  }
  const attempts = count === '' ? 0 : Number(count);
  switch (name) {
    case 'no':
      return undefined;
    case 'always':
    case 'unless-stopped':
      return { Condition: 'any' };
    case 'on-failure':
      if (attempts < 0) {
        ctx.notices.error(`${path}.restart`, `invalid restart policy "${restart}": the maximum retry count cannot be negative`);
        return undefined;
      }
      return { Condition: 'on-failure', MaxAttempts: attempts };
    default:
      ctx.notices.error(`${path}.restart`, `unknown restart policy "${restart}": use no, always, on-failure[:N] or unless-stopped`);
      return undefined;
  }
}

/** Update and rollback config: Parallelism defaults to 1; MaxFailureRatio and Order are always sent, as docker does. */
export function convertUpdateConfig(ctx: ConvertContext, cfg: UpdateConfig | undefined, path: string): ApiUpdateConfig | undefined {
  if (!cfg) return undefined;
  return compact<ApiUpdateConfig>({
    Parallelism: cfg.parallelism ?? 1,
    Delay: durationAt(ctx, `${path}.delay`, cfg.delay) || undefined,
    FailureAction: nonEmpty(cfg.failure_action) as ApiUpdateConfig['FailureAction'],
    Monitor: durationAt(ctx, `${path}.monitor`, cfg.monitor) || undefined,
    MaxFailureRatio: cfg.max_failure_ratio ?? 0,
    Order: (cfg.order ?? '') as ApiUpdateConfig['Order'],
  });
}

/** Always an object, as docker sends it. */
export function convertPlacement(ctx: ConvertContext, deploy: DeployConfig, path: string): NonNullable<TaskSpec['Placement']> {
  const p = deploy.placement;
  if (!p) return {};
  const maxReplicas = p.max_replicas_per_node && allowed(ctx, path, SERVICE_GATES.maxReplicas) ? p.max_replicas_per_node : undefined;
  return compact({
    Constraints: nonEmpty(p.constraints),
    Preferences: nonEmpty((p.preferences ?? []).map((pref) => ({ Spread: { SpreadDescriptor: pref.spread } }))),
    MaxReplicas: maxReplicas,
  });
}

/** Always an object; ports sorted by published port (stably), as docker 28 sorts them. */
export function convertEndpointSpec(deploy: DeployConfig, ports: ServicePort[]): EndpointSpec {
  const configs = ports
    .map((port) =>
      compact<PortConfig>({
        Protocol: port.protocol,
        TargetPort: port.target,
        PublishedPort: port.published || undefined,
        PublishMode: port.mode,
      }),
    )
    .map((c, i) => ({ c, i }))
    .sort((a, b) => (a.c.PublishedPort ?? 0) - (b.c.PublishedPort ?? 0) || a.i - b.i)
    .map((x) => x.c);
  return compact<EndpointSpec>({
    Mode: deploy.endpoint_mode ? (deploy.endpoint_mode.toLowerCase() as EndpointSpec['Mode']) : undefined,
    Ports: nonEmpty(configs),
  });
}
