/**
 * The top-level `networks`, `volumes`, `secrets` and `configs` of one file
 * → the model, with docker/cli's rules for `external` (LoadNetworks,
 * LoadVolumes, loadFileObjectConfig): an external object is named after its
 * key unless it says otherwise; `external: {name: x}` is the deprecated
 * spelling of `name: x` and may not be combined with it.
 */
import type { FileObjectConfig, NetworkConfig, VolumeConfig } from '../model.js';
import { absPath, fail, type LoadContext, optionalString, toMapping, warn, warnLeftovers } from './context.js';
import type { KeyPath } from '../../config/key-path.js';
import { isMapping } from './errors.js';

type Kind = 'network' | 'volume' | 'secret' | 'config';

function define<T>(out: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Reads `external` and the deprecated `external.name`; returns the effective name. */
function external(
  ctx: LoadContext,
  kind: Kind,
  key: string,
  path: KeyPath,
  raw: Record<string, unknown>,
): { external: boolean; name: string | undefined } {
  const ext = raw['external'];
  let name = optionalString(raw['name']);
  if (ext === true || isMapping(ext)) {
    const extName = isMapping(ext) ? optionalString(ext['name']) : undefined;
    if (extName !== undefined && extName !== '') {
      if (name !== undefined && name !== '') {
        throw fail(ctx, [...path, 'external', 'name'], `${kind}.external.name and ${kind}.name conflict; only use ${kind}.name`);
      }
      warn(ctx, [...path, 'external', 'name'], `deprecated: use ${kind}s.${key}.name instead of external.name`);
      name = extName;
    } else if (name === undefined || name === '') {
      name = key;
    }
    return { external: true, name };
  }
  return { external: false, name };
}

export function normalizeNetworks(ctx: LoadContext, value: unknown): Record<string, NetworkConfig> {
  const out: Record<string, NetworkConfig> = {};
  if (!isMapping(value)) return out;
  for (const [key, entry] of Object.entries(value)) {
    const path: KeyPath = ['networks', key];
    const raw = isMapping(entry) ? entry : {};
    const ext = external(ctx, 'network', key, path, raw);
    const net: NetworkConfig = {
      driver_opts: toMapping(raw['driver_opts']),
      external: ext.external,
      labels: toMapping(raw['labels']),
    };
    if (ext.name !== undefined) net.name = ext.name;
    const driver = optionalString(raw['driver']);
    if (driver !== undefined) net.driver = driver;
    for (const flag of ['internal', 'attachable'] as const) {
      if (typeof raw[flag] === 'boolean') net[flag] = raw[flag];
    }
    const ipam = raw['ipam'];
    if (isMapping(ipam)) {
      const cfg: NonNullable<NetworkConfig['ipam']> = {
        config: (Array.isArray(ipam['config']) ? ipam['config'] : []).filter(isMapping).map((pool) => {
          const p: NonNullable<NetworkConfig['ipam']>['config'][number] = {};
          for (const k of ['subnet', 'gateway', 'ip_range'] as const) {
            const v = optionalString(pool[k]);
            if (v !== undefined) p[k] = v;
          }
          if (isMapping(pool['aux_addresses'])) p.aux_addresses = toMapping(pool['aux_addresses']);
          return p;
        }),
      };
      const d = optionalString(ipam['driver']);
      if (d !== undefined) cfg.driver = d;
      if (isMapping(ipam['options'])) cfg.options = toMapping(ipam['options']);
      net.ipam = cfg;
    }
    warnLeftovers(ctx, raw, ['name', 'driver', 'driver_opts', 'ipam', 'external', 'internal', 'attachable', 'labels'], path);
    define(out, key, net);
  }
  return out;
}

export function normalizeVolumes(ctx: LoadContext, value: unknown): Record<string, VolumeConfig> {
  const out: Record<string, VolumeConfig> = {};
  if (!isMapping(value)) return out;
  for (const [key, entry] of Object.entries(value)) {
    const path: KeyPath = ['volumes', key];
    const raw = isMapping(entry) ? entry : {};
    const ext = external(ctx, 'volume', key, path, raw);
    if (ext.external) {
      for (const k of ['driver', 'driver_opts', 'labels']) {
        if (raw[k] !== undefined && raw[k] !== null) {
          throw fail(ctx, [...path, k], `conflicting parameters "external" and "${k}" specified for volume "${key}"`, `Remove ${k}: an external volume already exists and is not created by the stack.`);
        }
      }
    }
    const vol: VolumeConfig = {
      driver_opts: toMapping(raw['driver_opts']),
      external: ext.external,
      labels: toMapping(raw['labels']),
    };
    if (ext.name !== undefined) vol.name = ext.name;
    const driver = optionalString(raw['driver']);
    if (driver !== undefined) vol.driver = driver;
    warnLeftovers(ctx, raw, ['name', 'driver', 'driver_opts', 'external', 'labels'], path);
    define(out, key, vol);
  }
  return out;
}

export function normalizeFileObjects(ctx: LoadContext, kind: 'secret' | 'config', value: unknown): Record<string, FileObjectConfig> {
  const out: Record<string, FileObjectConfig> = {};
  if (!isMapping(value)) return out;
  const section = `${kind}s`;
  for (const [key, entry] of Object.entries(value)) {
    const path: KeyPath = [section, key];
    const raw = isMapping(entry) ? entry : {};
    const ext = external(ctx, kind, key, path, raw);
    const obj: FileObjectConfig = { external: ext.external, labels: toMapping(raw['labels']) };
    if (ext.name !== undefined) obj.name = ext.name;
    const template = optionalString(raw['template_driver']);
    if (template !== undefined) obj.template_driver = template;
    const driver = optionalString(raw['driver']);
    const file = optionalString(raw['file']);
    if (!ext.external) {
      if (driver !== undefined && driver !== '') {
        if (file !== undefined && file !== '') {
          throw fail(ctx, path, `${kind}.driver and ${kind}.file conflict; only use ${kind}.driver`);
        }
        obj.driver = driver;
        if (raw['driver_opts'] !== undefined) obj.driver_opts = toMapping(raw['driver_opts']);
      } else if (file === undefined || file === '') {
        throw fail(ctx, path, `${kind} "${key}" has no file`, `Give it \`file: ./path\`, or mark it \`external: true\` if it already exists in the swarm.`);
      } else {
        obj.file = absPath(ctx.workingDir, file);
      }
    }
    warnLeftovers(ctx, raw, ['name', 'file', 'external', 'labels', 'template_driver', 'driver', 'driver_opts'], path);
    define(out, key, obj);
  }
  return out;
}
