/**
 * Several loaded compose files → one, in order, with docker/cli's merge
 * semantics (cli/compose/loader/merge.go: mergo with override, append-slice
 * and a few special cases):
 *
 * - services are merged by name; the result is sorted by name;
 * - a scalar from a later file replaces the earlier one, unless it is Go's
 *   zero value (`""`, `0`, `false`), which mergo treats as "not set";
 *   counts docker keeps as pointers (replicas, parallelism, max_attempts,
 *   healthcheck retries) replace even when 0;
 * - mappings (labels, sysctls, deploy labels, logging options, driver
 *   options, extensions) merge key by key, the later file winning;
 *   `environment` too, except that an empty or missing value in the later
 *   file does not replace a non-empty one (mergo never overwrites a
 *   pointed-to value with an empty one);
 * - `command` and `entrypoint` are replaced when the later file sets them;
 * - ports: the union of both lists, identical entries once, sorted by
 *   published port; volumes by target, secrets and configs by source, the
 *   later file winning for the same key, sorted by that key — only when
 *   both files list some, otherwise the list is taken as written;
 * - ulimits per name; service networks per name, where a later entry
 *   replaces the aliases and sets the addresses it names;
 * - logging: options merge when the drivers match (or one is unset),
 *   otherwise the later logging replaces the earlier whole;
 * - every other list (dns, cap_add, extra_hosts, placement constraints, …)
 *   is appended to;
 * - top-level networks, volumes, secrets and configs: an entry of the same
 *   name in a later file replaces the earlier entry whole.
 *
 * Deliberate differences: healthcheck.test is replaced rather than appended
 * (appending two tests gives a command no one wrote), and top-level x-*
 * extensions merge by key (docker keeps only the first file's).
 */
import type {
  ComposeConfig,
  DeployConfig,
  HealthCheckConfig,
  LoggingConfig,
  ServiceConfig,
  ServiceFileRef,
  ServiceNetwork,
  ServicePort,
  ServiceVolume,
  UpdateConfig,
} from '../model.js';
import { isZeroDuration } from './units.js';

function isZero(v: unknown): boolean {
  return v === undefined || v === null || v === '' || v === 0 || v === false;
}

/** Assigns `over[key]` onto `base[key]` when it is set and not Go's zero value. */
function scalar<T extends object, K extends keyof T>(base: T, over: T, key: K): void {
  const v = over[key];
  if (!isZero(v)) base[key] = v;
}

/** For Go pointer-to-uint64 fields: any value set in the later file wins. */
function counted<T extends object, K extends keyof T>(base: T, over: T, key: K): void {
  const v = over[key];
  if (v !== undefined) base[key] = v;
}

/** Durations are kept as strings; a zero duration does not override. */
function duration<T extends object, K extends keyof T>(base: T, over: T, key: K): void {
  const v = over[key];
  if (typeof v === 'string' && v !== '' && !isZeroDuration(v)) base[key] = v;
}

function mapping<V>(base: Record<string, V>, over: Record<string, V>): Record<string, V> {
  const out: Record<string, V> = { ...base };
  for (const [k, v] of Object.entries(over)) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

function environment(base: Record<string, string | null>, over: Record<string, string | null>): Record<string, string | null> {
  const out: Record<string, string | null> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const prev = Object.prototype.hasOwnProperty.call(out, k) ? out[k] : undefined;
    const prevEmpty = prev === undefined || prev === null || prev === '';
    if (prevEmpty || (v !== null && v !== '')) {
      Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
  }
  return out;
}

/** mergeSlice: by key, later wins, sorted by key; a list on one side only is taken as it is. */
function keyed<T>(base: T[], over: T[], key: (item: T) => string | number): T[] {
  if (base.length === 0) return [...over];
  if (over.length === 0) return [...base];
  const byKey = new Map<string | number, T>();
  for (const item of base) byKey.set(key(item), item);
  for (const item of over) byKey.set(key(item), item);
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
}

function portKey(p: ServicePort): string {
  return JSON.stringify([p.published ?? 0, p.target, p.protocol, p.mode]);
}

function ports(base: ServicePort[], over: ServicePort[]): ServicePort[] {
  if (base.length === 0) return [...over];
  if (over.length === 0) return [...base];
  const seen = new Map<string, ServicePort>();
  for (const p of [...base, ...over]) if (!seen.has(portKey(p))) seen.set(portKey(p), p);
  return [...seen.values()].sort((a, b) => (a.published ?? 0) - (b.published ?? 0));
}

function networks(
  base: Record<string, ServiceNetwork | null>,
  over: Record<string, ServiceNetwork | null>,
): Record<string, ServiceNetwork | null> {
  const out: Record<string, ServiceNetwork | null> = { ...base };
  for (const [name, net] of Object.entries(over)) {
    const prev = out[name];
    let value: ServiceNetwork | null;
    if (prev === undefined || prev === null) value = net;
    else if (net === null) value = prev;
    else {
      value = { ...prev, aliases: [...net.aliases] };
      if (net.ipv4_address !== undefined && net.ipv4_address !== '') value.ipv4_address = net.ipv4_address;
      if (net.ipv6_address !== undefined && net.ipv6_address !== '') value.ipv6_address = net.ipv6_address;
      if (net.driver_opts !== undefined) value.driver_opts = mapping(prev.driver_opts ?? {}, net.driver_opts);
    }
    Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function logging(base: LoggingConfig | undefined, over: LoggingConfig | undefined): LoggingConfig | undefined {
  if (over === undefined) return base;
  if (base === undefined) return over;
  const a = base.driver ?? '';
  const b = over.driver ?? '';
  if (a === b || a === '' || b === '') {
    const out: LoggingConfig = { options: mapping(base.options, over.options) };
    const driver = a === '' ? b : a;
    if (driver !== '') out.driver = driver;
    return out;
  }
  return over;
}

function healthcheck(base: HealthCheckConfig | undefined, over: HealthCheckConfig | undefined): HealthCheckConfig | undefined {
  if (over === undefined) return base;
  if (base === undefined) return over;
  const out: HealthCheckConfig = { ...base };
  if (over.test !== undefined && over.test.length > 0) out.test = [...over.test];
  for (const k of ['interval', 'timeout', 'start_period', 'start_interval'] as const) duration(out, over, k);
  counted(out, over, 'retries');
  return out;
}

function updateConfig(base: UpdateConfig | undefined, over: UpdateConfig | undefined): UpdateConfig | undefined {
  if (over === undefined) return base;
  if (base === undefined) return over;
  const out: UpdateConfig = { ...base };
  counted(out, over, 'parallelism');
  duration(out, over, 'delay');
  duration(out, over, 'monitor');
  scalar(out, over, 'failure_action');
  scalar(out, over, 'max_failure_ratio');
  scalar(out, over, 'order');
  return out;
}

function deploy(base: DeployConfig, over: DeployConfig): DeployConfig {
  const out: DeployConfig = { ...base, labels: mapping(base.labels, over.labels) };
  scalar(out, over, 'mode');
  counted(out, over, 'replicas');
  scalar(out, over, 'endpoint_mode');
  if (over.resources !== undefined) {
    const res = { ...(base.resources ?? {}) };
    if (over.resources.limits !== undefined) {
      const l = { ...(res.limits ?? {}) };
      scalar(l, over.resources.limits, 'cpus');
      scalar(l, over.resources.limits, 'memory');
      scalar(l, over.resources.limits, 'pids');
      res.limits = l;
    }
    if (over.resources.reservations !== undefined) {
      const r = { ...(res.reservations ?? {}) };
      const o = over.resources.reservations;
      scalar(r, o, 'cpus');
      scalar(r, o, 'memory');
      if (o.generic_resources !== undefined) r.generic_resources = [...(r.generic_resources ?? []), ...o.generic_resources];
      res.reservations = r;
    }
    out.resources = res;
  }
  if (over.restart_policy !== undefined) {
    const rp = { ...(base.restart_policy ?? {}) };
    scalar(rp, over.restart_policy, 'condition');
    duration(rp, over.restart_policy, 'delay');
    duration(rp, over.restart_policy, 'window');
    counted(rp, over.restart_policy, 'max_attempts');
    out.restart_policy = rp;
  }
  if (over.placement !== undefined) {
    const p = base.placement ?? { constraints: [], preferences: [] };
    out.placement = {
      ...p,
      constraints: [...p.constraints, ...over.placement.constraints],
      preferences: [...p.preferences, ...over.placement.preferences],
    };
    scalar(out.placement, over.placement, 'max_replicas_per_node');
  }
  const update = updateConfig(base.update_config, over.update_config);
  if (update !== undefined) out.update_config = update;
  const rollback = updateConfig(base.rollback_config, over.rollback_config);
  if (rollback !== undefined) out.rollback_config = rollback;
  return out;
}

const SCALARS = [
  'image', 'user', 'working_dir', 'hostname', 'stop_signal', 'restart', 'isolation', 'oom_score_adj',
  'init', 'read_only', 'tty', 'stdin_open',
] as const;

export function mergeServices(base: ServiceConfig, over: ServiceConfig): ServiceConfig {
  const out: ServiceConfig = {
    ...base,
    environment: environment(base.environment, over.environment),
    labels: mapping(base.labels, over.labels),
    deploy: deploy(base.deploy, over.deploy),
    ports: ports(base.ports, over.ports),
    networks: networks(base.networks, over.networks),
    volumes: keyed<ServiceVolume>(base.volumes, over.volumes, (v) => v.target),
    secrets: keyed<ServiceFileRef>(base.secrets, over.secrets, (s) => s.source),
    configs: keyed<ServiceFileRef>(base.configs, over.configs, (c) => c.source),
    extra_hosts: [...base.extra_hosts, ...over.extra_hosts],
    dns: [...base.dns, ...over.dns],
    dns_search: [...base.dns_search, ...over.dns_search],
    dns_opt: [...base.dns_opt, ...over.dns_opt],
    ulimits: mapping(base.ulimits, over.ulimits),
    sysctls: mapping(base.sysctls, over.sysctls),
    cap_add: [...base.cap_add, ...over.cap_add],
    cap_drop: [...base.cap_drop, ...over.cap_drop],
    unsupported: [...new Set([...base.unsupported, ...over.unsupported])],
    extensions: mapping(base.extensions, over.extensions),
  };
  for (const key of SCALARS) scalar(out, over, key);
  duration(out, over, 'stop_grace_period');
  if (over.command !== undefined && over.command.length > 0) out.command = [...over.command];
  if (over.entrypoint !== undefined && over.entrypoint.length > 0) out.entrypoint = [...over.entrypoint];
  const hc = healthcheck(base.healthcheck, over.healthcheck);
  if (hc !== undefined) out.healthcheck = hc;
  const log = logging(base.logging, over.logging);
  if (log !== undefined) out.logging = log;
  if (over.credential_spec !== undefined) out.credential_spec = { ...(base.credential_spec ?? {}), ...over.credential_spec };
  return out;
}

/** Merges loaded files in order; the first file is the base. */
export function mergeConfigs(configs: ComposeConfig[]): ComposeConfig {
  const [first, ...rest] = configs;
  if (first === undefined) throw new Error('mergeConfigs needs at least one file');
  let merged: ComposeConfig = { ...first, files: [...first.files] };
  for (const over of rest) {
    const byName = new Map(merged.services.map((s) => [s.name, s]));
    for (const s of over.services) {
      const prev = byName.get(s.name);
      byName.set(s.name, prev === undefined ? s : mergeServices(prev, s));
    }
    merged = {
      files: [...merged.files, ...over.files],
      services: [...byName.values()],
      networks: mapping(merged.networks, over.networks),
      volumes: mapping(merged.volumes, over.volumes),
      secrets: mapping(merged.secrets, over.secrets),
      configs: mapping(merged.configs, over.configs),
      extensions: mapping(merged.extensions, over.extensions),
    };
  }
  merged.services = [...merged.services].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return merged;
}
