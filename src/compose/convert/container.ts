/**
 * Container-level pieces of a service: environment, healthcheck, extra
 * hosts, DNS, ulimits, capabilities and logging, each as docker converts it.
 */
import type { ContainerSpec, DriverConfig, HealthConfig } from '../../docker/types.js';
import type { HealthCheckConfig, LoggingConfig, OptionalMapping, ServiceConfig } from '../model.js';
import { SERVICE_GATES } from './api-version.js';
import { type ConvertContext, allowed, durationAt } from './context.js';
import { byteOrder, compact, nonEmpty, nonEmptyMap, sortedBy } from './names.js';

/**
 * `KEY=VALUE`, sorted in Go's string order. A key whose value is null (named
 * but unset where the file was loaded) is sent as a bare `KEY`, exactly as
 * docker sends it; the engine then sets nothing for it.
 */
export function convertEnvironment(env: OptionalMapping): string[] | undefined {
  const out = Object.entries(env).map(([k, v]) => (v === null ? k : `${k}=${v}`));
  return nonEmpty(out.sort(byteOrder));
}

export function convertHealthcheck(ctx: ConvertContext, hc: HealthCheckConfig | undefined, path: string): HealthConfig | undefined {
  if (!hc) return undefined;
  const p = `${path}.healthcheck`;
  const startInterval = hc.start_interval !== undefined && allowed(ctx, path, SERVICE_GATES.startInterval) ? hc.start_interval : undefined;
  return compact<HealthConfig>({
    Test: nonEmpty(hc.test),
    Interval: durationAt(ctx, `${p}.interval`, hc.interval) || undefined,
    Timeout: durationAt(ctx, `${p}.timeout`, hc.timeout) || undefined,
    StartPeriod: durationAt(ctx, `${p}.start_period`, hc.start_period) || undefined,
    StartInterval: durationAt(ctx, `${p}.start_interval`, startInterval) || undefined,
    Retries: hc.retries || undefined,
  });
}

/** `host:ip` → `ip host` (SwarmKit's hosts-file order), split at the first colon; entries without one are dropped, as docker drops them. */
export function convertExtraHosts(ctx: ConvertContext, hosts: string[], path: string): string[] | undefined {
  const out: string[] = [];
  hosts.forEach((entry, i) => {
    const colon = entry.indexOf(':');
    if (colon === -1) {
      ctx.notices.warn(`${path}.extra_hosts[${i}]`, `"${entry}" is not host:ip; docker stack deploy ignores it, and so does airlock`);
      return;
    }
    out.push(`${entry.slice(colon + 1)} ${entry.slice(0, colon)}`);
  });
  return nonEmpty(out);
}

/** Nameservers and search domains as docker sends them; dns_opt (which docker's compose schema refuses) goes to Options. */
export function convertDnsConfig(service: ServiceConfig): ContainerSpec['DNSConfig'] {
  if (service.dns.length === 0 && service.dns_search.length === 0 && service.dns_opt.length === 0) return undefined;
  return compact({ Nameservers: nonEmpty(service.dns), Search: nonEmpty(service.dns_search), Options: nonEmpty(service.dns_opt) });
}

export function convertUlimits(ulimits: ServiceConfig['ulimits']): ContainerSpec['Ulimits'] {
  const out = Object.entries(ulimits).map(([Name, u]) => ({ Name, Soft: u.soft, Hard: u.hard }));
  return nonEmpty(sortedBy(out, (u) => u.Name));
}

const ALL = 'ALL';
const RESET = 'RESET';

/** docker's NormalizeCapability: upper case, trimmed, `CAP_` prefixed (except ALL and RESET). */
export function normalizeCapability(cap: string): string {
  const c = cap.trim().toUpperCase();
  if (c === ALL || c === RESET) return c;
  return c.startsWith('CAP_') ? c : `CAP_${c}`;
}

/**
 * docker's EffectiveCapAddCapDrop: normalised, deduplicated and sorted; ALL
 * on a side replaces the rest of it; a capability both added and dropped
 * is only added; RESET is dropped.
 */
export function effectiveCapabilities(add: string[], drop: string[]): { add: string[]; drop: string[] } {
  let addSet = new Set(add.map(normalizeCapability));
  let dropSet = new Set(drop.map(normalizeCapability));
  if (addSet.has(ALL)) addSet = new Set([ALL]);
  if (dropSet.has(ALL)) dropSet = new Set([ALL]);
  const outDrop = [...dropSet].filter((c) => !addSet.has(c) && c !== RESET);
  const outAdd = [...addSet].filter((c) => c !== RESET);
  return { add: outAdd.sort(byteOrder), drop: outDrop.sort(byteOrder) };
}

export function convertLogDriver(logging: LoggingConfig | undefined): DriverConfig | undefined {
  if (!logging) return undefined;
  return compact<DriverConfig>({ Name: logging.driver ?? '', Options: nonEmptyMap(logging.options) });
}
