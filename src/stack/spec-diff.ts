import type { ServiceSpec } from '../docker/index.js';
import { asEngineStores } from './engine-defaults.js';
import type { FieldChange } from './types.js';

/**
 * Field-level differences between two specs, as dotted paths, each side as
 * an engine speaking `apiVersion` stores it (engine-defaults.ts): a field one
 * side leaves unset equals the engine's default for it, and a field the
 * engine does not keep is no difference. Undefined `apiVersion`: the newest.
 */
export function diffSpecs(before: ServiceSpec, after: ServiceSpec, apiVersion?: string): FieldChange[] {
  const changes: FieldChange[] = [];
  walk(asEngineStores(before, apiVersion), asEngineStores(after, apiVersion), '', changes);
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
