import type { ServiceSpec } from '../docker/index.js';
import type { FieldChange } from './types.js';

/**
 * The engine fills some fields on create (seen on 20.10 through 28.x). Both
 * sides get them before comparing, so a spec the engine merely completed
 * does not count as changed.
 */
export function withEngineDefaults(spec: ServiceSpec): ServiceSpec {
  const s = structuredClone(spec);
  s.Labels ??= {};
  s.TaskTemplate ??= {};
  s.TaskTemplate.ContainerSpec ??= {};
  s.TaskTemplate.ContainerSpec.Isolation ??= 'default';
  s.TaskTemplate.ForceUpdate ??= 0;
  s.TaskTemplate.Runtime ??= 'container';
  s.EndpointSpec ??= {};
  s.EndpointSpec.Mode ??= 'vip';
  if (s.Mode?.Replicated) s.Mode.Replicated.Replicas ??= 1;
  for (const key of ['UpdateConfig', 'RollbackConfig'] as const) {
    const c = s[key];
    if (c) {
      c.FailureAction ??= 'pause';
      c.MaxFailureRatio ??= 0;
      c.Order ??= 'stop-first';
    }
  }
  return s;
}

/** Field-level differences between two specs, as dotted paths. */
export function diffSpecs(before: ServiceSpec, after: ServiceSpec): FieldChange[] {
  const changes: FieldChange[] = [];
  walk(withEngineDefaults(before), withEngineDefaults(after), '', changes);
  return changes;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function walk(a: unknown, b: unknown, path: string, out: FieldChange[]): void {
  if (isObject(a) && isObject(b)) {
    for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      walk(a[key], b[key], path ? `${path}.${key}` : key, out);
    }
    return;
  }
  if (stable(a) !== stable(b)) out.push({ path, before: a, after: b });
}

/** JSON with sorted keys: the engine returns fields in its own order, the converter in ours. */
export function stable(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    isObject(val) ? Object.fromEntries(Object.keys(val).sort().map((k) => [k, val[k]])) : val,
  );
}
