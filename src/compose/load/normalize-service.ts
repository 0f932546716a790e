/**
 * One service of a validated compose file → the model's ServiceConfig, every
 * short syntax expanded the way docker/cli's loader transforms it
 * (loader.go's transform functions, ParseVolume, nat.ParsePortSpec,
 * shlex.Split, units.RAMInBytes).
 */
import type {
  HealthCheckConfig,
  LoggingConfig,
  ServiceConfig,
  ServiceFileRef,
  ServiceNetwork,
} from '../model.js';
import { normalizeDeploy } from './normalize-deploy.js';
import {
  absPath,
  fail,
  type LoadContext,
  optionalString,
  toMapping,
  toStringList,
  warn,
  warnLeftovers,
} from './context.js';
import { environmentEntries, envFileReadError, parseEnvFile, resolveEnvironment, stringValue } from './env-file.js';
import type { KeyPath } from '../../config/key-path.js';
import { isMapping } from './errors.js';
import { classifyServiceKey } from './keys.js';
import { ports } from './normalize-ports.js';
import { volumes } from './normalize-volumes.js';
import { ShlexError, shlexSplit } from './shlex.js';

export async function normalizeService(
  ctx: LoadContext,
  name: string,
  raw: Record<string, unknown>,
): Promise<ServiceConfig> {
  const base: KeyPath = ['services', name];
  const unsupported: string[] = [];
  const extensions: Record<string, unknown> = {};

  for (const [key, value] of Object.entries(raw)) {
    if (key.startsWith('x-')) {
      Object.defineProperty(extensions, key, { value, enumerable: true, writable: true, configurable: true });
      continue;
    }
    const verdict = classifyServiceKey(key);
    if (verdict.kind === 'error') throw fail(ctx, [...base, key], verdict.problem, verdict.hint);
    if (verdict.kind === 'warning') {
      // `restart` is carried by the model, so it is not listed as unsupported.
      warn(ctx, [...base, key], verdict.notice.message, key === 'restart' ? undefined : unsupported);
    }
  }

  const service: ServiceConfig = {
    name,
    environment: await environment(ctx, base, raw),
    labels: toMapping(raw['labels']),
    deploy: normalizeDeploy(ctx, [...base, 'deploy'], raw['deploy'], unsupported),
    ports: ports(ctx, [...base, 'ports'], raw['ports'], unsupported),
    networks: networks(ctx, [...base, 'networks'], raw['networks'], unsupported),
    volumes: volumes(ctx, [...base, 'volumes'], raw['volumes'], unsupported),
    secrets: fileRefs(ctx, [...base, 'secrets'], raw['secrets']),
    configs: fileRefs(ctx, [...base, 'configs'], raw['configs']),
    extra_hosts: extraHosts(ctx, [...base, 'extra_hosts'], raw['extra_hosts']),
    dns: toStringList(raw['dns']),
    dns_search: toStringList(raw['dns_search']),
    dns_opt: toStringList(raw['dns_opt']),
    ulimits: ulimits(raw['ulimits']),
    sysctls: toMapping(raw['sysctls']),
    cap_add: toStringList(raw['cap_add']),
    cap_drop: toStringList(raw['cap_drop']),
    unsupported,
    extensions,
  };
  const image = optionalString(raw['image']);
  if (image !== undefined) service.image = image;
  const command = shellCommand(ctx, [...base, 'command'], raw['command']);
  if (command !== undefined) service.command = command;
  const entrypoint = shellCommand(ctx, [...base, 'entrypoint'], raw['entrypoint']);
  if (entrypoint !== undefined) service.entrypoint = entrypoint;
  const hc = healthcheck(ctx, [...base, 'healthcheck'], raw['healthcheck']);
  if (hc !== undefined) service.healthcheck = hc;
  const log = logging(raw['logging']);
  if (log !== undefined) service.logging = log;

  for (const key of ['user', 'working_dir', 'hostname', 'stop_grace_period', 'stop_signal', 'restart', 'isolation'] as const) {
    const v = optionalString(raw[key]);
    if (v !== undefined) service[key] = v;
  }
  for (const key of ['init', 'read_only', 'tty', 'stdin_open'] as const) {
    const v = raw[key];
    if (typeof v === 'boolean') service[key] = v;
  }
  if (typeof raw['oom_score_adj'] === 'number') service.oom_score_adj = raw['oom_score_adj'];
  const cred = raw['credential_spec'];
  if (isMapping(cred)) {
    const spec: NonNullable<ServiceConfig['credential_spec']> = {};
    for (const key of ['config', 'file', 'registry'] as const) {
      const v = optionalString(cred[key]);
      if (v !== undefined) spec[key] = v;
    }
    service.credential_spec = spec;
  }
  return service;
}

async function environment(ctx: LoadContext, base: KeyPath, raw: Record<string, unknown>): Promise<Record<string, string | null>> {
  const envFiles: [string, string][][] = [];
  const listed = toStringList(raw['env_file']);
  for (const [i, entry] of listed.entries()) {
    const path: KeyPath = [...base, 'env_file', ...(Array.isArray(raw['env_file']) ? [i] : [])];
    const file = absPath(ctx.workingDir, entry);
    let content: string;
    try {
      content = await ctx.readEnvFile(file);
    } catch (e) {
      throw envFileReadError(ctx.file, path, file, e);
    }
    envFiles.push(parseEnvFile(file, content, ctx.lookup));
  }
  return resolveEnvironment({ envFiles, environment: environmentEntries(raw['environment']), lookup: ctx.lookup });
}

function shellCommand(ctx: LoadContext, path: KeyPath, value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) return value.map((v) => String(v));
  try {
    return shlexSplit(String(value));
  } catch (e) {
    if (e instanceof ShlexError) throw fail(ctx, path, `cannot split the command: ${e.message}`, 'Close the quote, or write the command as a list.');
    throw e;
  }
}

function healthcheck(ctx: LoadContext, path: KeyPath, value: unknown): HealthCheckConfig | undefined {
  if (!isMapping(value)) return undefined;
  const test = value['test'];
  let testList: string[] | undefined;
  if (typeof test === 'string') testList = ['CMD-SHELL', test];
  else if (Array.isArray(test)) testList = test.map((t) => String(t));
  if (value['disable'] === true) {
    if (testList !== undefined && testList.length > 0) {
      throw fail(ctx, [...path, 'disable'], "test and disable can't be set at the same time", 'Remove `test`, or `disable: true`.');
    }
    return { test: ['NONE'] };
  }
  const out: HealthCheckConfig = {};
  if (testList !== undefined) out.test = testList;
  for (const key of ['interval', 'timeout', 'start_period', 'start_interval'] as const) {
    const v = optionalString(value[key]);
    if (v !== undefined) out[key] = v;
  }
  const retries = value['retries'];
  if (typeof retries === 'number') {
    if (!Number.isInteger(retries) || retries < 0) throw fail(ctx, [...path, 'retries'], 'must be a whole number, 0 or more');
    out.retries = retries;
  }
  return out;
}

function logging(value: unknown): LoggingConfig | undefined {
  if (!isMapping(value)) return undefined;
  const out: LoggingConfig = { options: toMapping(value['options']) };
  const driver = optionalString(value['driver']);
  if (driver !== undefined) out.driver = driver;
  return out;
}

function ulimits(value: unknown): Record<string, { soft: number; hard: number }> {
  const out: Record<string, { soft: number; hard: number }> = {};
  if (!isMapping(value)) return out;
  for (const [name, v] of Object.entries(value)) {
    const limit = typeof v === 'number' ? { soft: v, hard: v } : isMapping(v) ? { soft: Number(v['soft']), hard: Number(v['hard']) } : undefined;
    if (limit !== undefined) Object.defineProperty(out, name, { value: limit, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function networks(ctx: LoadContext, path: KeyPath, value: unknown, unsupported: string[]): Record<string, ServiceNetwork | null> {
  const out: Record<string, ServiceNetwork | null> = {};
  const put = (k: string, v: ServiceNetwork | null): void => {
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  };
  if (Array.isArray(value)) {
    for (const n of value) put(String(n), null);
    return out;
  }
  if (!isMapping(value)) return out;
  for (const [name, cfg] of Object.entries(value)) {
    if (!isMapping(cfg)) {
      put(name, null);
      continue;
    }
    const net: ServiceNetwork = { aliases: toStringList(cfg['aliases']) };
    const v4 = optionalString(cfg['ipv4_address']);
    if (v4 !== undefined) net.ipv4_address = v4;
    const v6 = optionalString(cfg['ipv6_address']);
    if (v6 !== undefined) net.ipv6_address = v6;
    if (cfg['driver_opts'] !== undefined) net.driver_opts = toMapping(cfg['driver_opts']);
    warnLeftovers(ctx, cfg, ['aliases', 'ipv4_address', 'ipv6_address', 'driver_opts'], [...path, name], unsupported);
    put(name, net);
  }
  return out;
}

function fileRefs(ctx: LoadContext, path: KeyPath, value: unknown): ServiceFileRef[] {
  if (!Array.isArray(value)) return [];
  return value.map((entry, i) => {
    if (typeof entry === 'string') return { source: entry };
    const at: KeyPath = [...path, i];
    if (!isMapping(entry)) throw fail(ctx, at, 'must be a string or a mapping');
    const source = optionalString(entry['source']);
    if (source === undefined || source === '') throw fail(ctx, [...at, 'source'], 'is required');
    const ref: ServiceFileRef = { source };
    for (const key of ['target', 'uid', 'gid'] as const) {
      const v = optionalString(entry[key]);
      if (v !== undefined) ref[key] = v;
    }
    const mode = entry['mode'];
    if (mode !== undefined && mode !== null) {
      if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0xffffffff) {
        throw fail(ctx, [...at, 'mode'], 'must be a file mode, e.g. 0440 (octal)');
      }
      ref.mode = mode;
    }
    return ref;
  });
}

/**
 * extra_hosts as docker/cli's transformHostsList: a mapping becomes sorted
 * `host:ip` entries; list entries may use `=` or `:`; brackets around an IP
 * are removed. Entries without a separator are dropped by docker; the loader
 * warns about them.
 */
function extraHosts(ctx: LoadContext, path: KeyPath, value: unknown): string[] {
  const pairs: [string, string][] = [];
  if (isMapping(value)) {
    const list = Object.entries(value)
      .filter(([, v]) => v !== null && v !== undefined)
      .map(([k, v]) => `${k}:${stringValue(v)}`)
      .sort();
    for (const s of list) {
      const c = s.indexOf(':');
      pairs.push([s.slice(0, c), s.slice(c + 1)]);
    }
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => {
      const s = String(item);
      const eq = s.indexOf('=');
      const sep = eq >= 0 ? eq : s.indexOf(':');
      if (sep < 0) {
        warn(ctx, [...path, i], `ignored: "${s}" has no "=" or ":" between host and IP address`);
        return;
      }
      pairs.push([s.slice(0, sep), s.slice(sep + 1)]);
    });
  }
  return pairs.map(([host, ip]) => {
    const bare = ip.length > 2 && ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
    return `${host}:${bare}`;
  });
}
