/** A service's `deploy:` section → the model's DeployConfig. */
import type { DeployConfig, UpdateConfig } from '../model.js';
import { fail, type LoadContext, optionalString, toMapping, toStringList, warnLeftovers } from './context.js';
import type { KeyPath } from '../../config/key-path.js';
import { isMapping } from './errors.js';
import { ramInBytes } from './units.js';

const MODES = ['replicated', 'global', 'replicated-job', 'global-job'] as const;
const CONDITIONS = ['none', 'on-failure', 'any'] as const;

function count(ctx: LoadContext, path: KeyPath, value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw fail(ctx, path, 'must be a whole number, 0 or more');
  return value;
}

function oneOf<T extends string>(ctx: LoadContext, path: KeyPath, value: unknown, allowed: readonly T[]): T | undefined {
  const s = optionalString(value);
  if (s === undefined || s === '') return undefined;
  if (!(allowed as readonly string[]).includes(s)) throw fail(ctx, path, `must be one of: ${allowed.join(', ')}`);
  return s as T;
}

function memory(ctx: LoadContext, path: KeyPath, value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number') return value;
  const bytes = ramInBytes(String(value));
  if (bytes === undefined) throw fail(ctx, path, `invalid size: '${String(value)}'`, 'Write a size such as 512M or 1g (binary units: 1k = 1024 bytes).');
  return bytes;
}

function updateConfig(ctx: LoadContext, path: KeyPath, value: unknown, unsupported: string[]): UpdateConfig | undefined {
  if (!isMapping(value)) return undefined;
  const out: UpdateConfig = {};
  const parallelism = count(ctx, [...path, 'parallelism'], value['parallelism']);
  if (parallelism !== undefined) out.parallelism = parallelism;
  for (const key of ['delay', 'failure_action', 'monitor'] as const) {
    const v = optionalString(value[key]);
    if (v !== undefined) out[key] = v;
  }
  if (typeof value['max_failure_ratio'] === 'number') out.max_failure_ratio = value['max_failure_ratio'];
  const order = oneOf(ctx, [...path, 'order'], value['order'], ['start-first', 'stop-first'] as const);
  if (order !== undefined) out.order = order;
  warnLeftovers(ctx, value, ['parallelism', 'delay', 'failure_action', 'monitor', 'max_failure_ratio', 'order'], path, unsupported);
  return out;
}

type Resources = NonNullable<DeployConfig['resources']>;

/** The `cpus` and `memory` that limits and reservations both take. */
function cpusAndMemory(ctx: LoadContext, path: KeyPath, section: Record<string, unknown>): { cpus?: string; memory?: number } {
  const out: { cpus?: string; memory?: number } = {};
  const cpus = optionalString(section['cpus']);
  if (cpus !== undefined) out.cpus = cpus;
  const mem = memory(ctx, [...path, 'memory'], section['memory']);
  if (mem !== undefined) out.memory = mem;
  return out;
}

function limitsOf(ctx: LoadContext, path: KeyPath, limits: Record<string, unknown>, unsupported: string[]): NonNullable<Resources['limits']> {
  const l: NonNullable<Resources['limits']> = cpusAndMemory(ctx, path, limits);
  if (typeof limits['pids'] === 'number') l.pids = limits['pids'];
  warnLeftovers(ctx, limits, ['cpus', 'memory', 'pids'], path, unsupported);
  return l;
}

function reservationsOf(ctx: LoadContext, path: KeyPath, reservations: Record<string, unknown>, unsupported: string[]): NonNullable<Resources['reservations']> {
  const r: NonNullable<Resources['reservations']> = cpusAndMemory(ctx, path, reservations);
  const generic = reservations['generic_resources'];
  if (Array.isArray(generic)) {
    r.generic_resources = generic.map((g, i) => {
      const spec = isMapping(g) ? g['discrete_resource_spec'] : undefined;
      if (!isMapping(spec) || typeof spec['kind'] !== 'string' || typeof spec['value'] !== 'number') {
        throw fail(ctx, [...path, 'generic_resources', i], 'needs discrete_resource_spec with a kind and a value');
      }
      return { discrete_resource_spec: { kind: spec['kind'], value: spec['value'] } };
    });
  }
  if (reservations['devices'] !== undefined) {
    throw fail(ctx, [...path, 'devices'], 'is not supported by docker stack deploy', 'Reserve devices with generic_resources (discrete_resource_spec) advertised by the nodes.');
  }
  warnLeftovers(ctx, reservations, ['cpus', 'memory', 'generic_resources', 'devices'], path, unsupported);
  return r;
}

function resourcesOf(ctx: LoadContext, path: KeyPath, resources: Record<string, unknown>, unsupported: string[]): Resources {
  const out: Resources = {};
  const limits = resources['limits'];
  if (isMapping(limits)) out.limits = limitsOf(ctx, [...path, 'limits'], limits, unsupported);
  const reservations = resources['reservations'];
  if (isMapping(reservations)) out.reservations = reservationsOf(ctx, [...path, 'reservations'], reservations, unsupported);
  warnLeftovers(ctx, resources, ['limits', 'reservations'], path, unsupported);
  return out;
}

function restartPolicyOf(ctx: LoadContext, path: KeyPath, restart: Record<string, unknown>, unsupported: string[]): NonNullable<DeployConfig['restart_policy']> {
  const policy: NonNullable<DeployConfig['restart_policy']> = {};
  const condition = oneOf(ctx, [...path, 'condition'], restart['condition'], CONDITIONS);
  if (condition !== undefined) policy.condition = condition;
  for (const key of ['delay', 'window'] as const) {
    const v = optionalString(restart[key]);
    if (v !== undefined) policy[key] = v;
  }
  const attempts = count(ctx, [...path, 'max_attempts'], restart['max_attempts']);
  if (attempts !== undefined) policy.max_attempts = attempts;
  warnLeftovers(ctx, restart, ['condition', 'delay', 'max_attempts', 'window'], path, unsupported);
  return policy;
}

function placementOf(ctx: LoadContext, path: KeyPath, placement: Record<string, unknown>, unsupported: string[]): NonNullable<DeployConfig['placement']> {
  const p: NonNullable<DeployConfig['placement']> = {
    constraints: toStringList(placement['constraints']),
    preferences: Array.isArray(placement['preferences'])
      ? placement['preferences'].filter(isMapping).map((x) => ({ spread: String(x['spread'] ?? '') }))
      : [],
  };
  const max = count(ctx, [...path, 'max_replicas_per_node'], placement['max_replicas_per_node']);
  if (max !== undefined) p.max_replicas_per_node = max;
  warnLeftovers(ctx, placement, ['constraints', 'preferences', 'max_replicas_per_node'], path, unsupported);
  return p;
}

export function normalizeDeploy(ctx: LoadContext, path: KeyPath, value: unknown, unsupported: string[]): DeployConfig {
  const deploy: DeployConfig = { labels: {} };
  if (!isMapping(value)) return deploy;
  deploy.labels = toMapping(value['labels']);
  const mode = oneOf(ctx, [...path, 'mode'], value['mode'], MODES);
  if (mode !== undefined) deploy.mode = mode;
  const replicas = count(ctx, [...path, 'replicas'], value['replicas']);
  if (replicas !== undefined) deploy.replicas = replicas;
  const endpoint = oneOf(ctx, [...path, 'endpoint_mode'], value['endpoint_mode'], ['vip', 'dnsrr'] as const);
  if (endpoint !== undefined) deploy.endpoint_mode = endpoint;

  const resources = value['resources'];
  if (isMapping(resources)) deploy.resources = resourcesOf(ctx, [...path, 'resources'], resources, unsupported);
  const restart = value['restart_policy'];
  if (isMapping(restart)) deploy.restart_policy = restartPolicyOf(ctx, [...path, 'restart_policy'], restart, unsupported);
  const placement = value['placement'];
  if (isMapping(placement)) deploy.placement = placementOf(ctx, [...path, 'placement'], placement, unsupported);
  const update = updateConfig(ctx, [...path, 'update_config'], value['update_config'], unsupported);
  if (update !== undefined) deploy.update_config = update;
  const rollback = updateConfig(ctx, [...path, 'rollback_config'], value['rollback_config'], unsupported);
  if (rollback !== undefined) deploy.rollback_config = rollback;

  warnLeftovers(
    ctx,
    value,
    ['mode', 'replicas', 'labels', 'resources', 'restart_policy', 'placement', 'update_config', 'rollback_config', 'endpoint_mode'],
    path,
    unsupported,
  );
  return deploy;
}
