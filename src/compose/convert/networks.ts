/**
 * Networks: the ones a stack creates (only those its services use, `default`
 * included when a service names none) and each service's attachments, as
 * `docker stack deploy` makes them.
 */
import type { NetworkAttachmentConfig, NetworkCreateRequest } from '../../docker/types.js';
import type { ComposeConfig, NetworkConfig, ServiceConfig, ServiceNetwork } from '../model.js';
import { CHECK_DUPLICATE_UNTIL, supports } from './api-version.js';
import type { ConvertContext } from './context.js';
import { byteOrder, compact, nonEmpty, nonEmptyMap, scoped, sortedBy, withStackLabel } from './names.js';

const DEFAULT_NETWORK = 'default';
const DEFAULT_DRIVER = 'overlay';

/** A service's networks by compose name; `default` when it names none. */
export function serviceNetworkEntries(service: ServiceConfig): [string, ServiceNetwork | null][] {
  const entries = Object.entries(service.networks ?? {});
  return entries.length === 0 ? [[DEFAULT_NETWORK, null]] : entries;
}

/** The engine-side name of compose network `key`. */
export function networkName(stack: string, key: string, nw: NetworkConfig | undefined): string {
  if (nw?.name) return nw.name;
  // An external network without `name:` is looked up by its compose key, unprefixed.
  if (nw?.external) return key;
  return scoped(stack, key);
}

/** Docker gives aliases only on user-defined networks (not bridge, host, none, default or container:…). */
export function isUserDefinedNetwork(name: string): boolean {
  if (['default', 'bridge', 'host', 'none'].includes(name)) return false;
  const colon = name.indexOf(':');
  return !(colon !== -1 && name.slice(0, colon) === 'container');
}

export interface StackNetworks {
  create: NetworkCreateRequest[];
  /** External networks the services use, by engine name: they must exist, swarm-scoped, before deploy. */
  external: string[];
}

export function convertNetworks(stack: string, config: ComposeConfig, apiVersion: string): StackNetworks {
  const used = new Set<string>();
  for (const s of config.services) for (const [key] of serviceNetworkEntries(s)) used.add(key);
  const create: NetworkCreateRequest[] = [];
  const external: string[] = [];
  for (const key of [...used].sort(byteOrder)) {
    const nw = config.networks[key];
    // A name the services use but the file never declares is reported with the service.
    if (nw === undefined && key !== DEFAULT_NETWORK) continue;
    const name = networkName(stack, key, nw);
    if (nw?.external) {
      external.push(name);
      continue;
    }
    create.push(
      compact<NetworkCreateRequest>({
        Name: name,
        CheckDuplicate: supports(apiVersion, CHECK_DUPLICATE_UNTIL) ? undefined : true,
        Driver: nw?.driver || DEFAULT_DRIVER,
        Internal: nw?.internal ?? false,
        Attachable: nw?.attachable ?? false,
        IPAM: nw ? convertIpam(nw) : undefined,
        Options: nonEmptyMap(nw?.driver_opts),
        Labels: withStackLabel(stack, nw?.labels),
      }),
    );
  }
  return { create: sortedBy(create, (n) => n.Name), external: [...new Set(external)].sort(byteOrder) };
}

/**
 * Docker sends an IPAM block only when the file gives a driver or pools. Its
 * compose schema allows only `subnet` in a pool; airlock also carries
 * gateway, ip_range, aux_addresses and options, which the Engine API takes.
 */
function convertIpam(nw: NetworkConfig): NetworkCreateRequest['IPAM'] {
  const ipam = nw.ipam;
  if (!ipam || (!ipam.driver && (ipam.config ?? []).length === 0)) return undefined;
  const pools = (ipam.config ?? []).map((c) =>
    compact({
      Subnet: nonEmpty(c.subnet),
      Gateway: nonEmpty(c.gateway),
      IPRange: nonEmpty(c.ip_range),
      AuxiliaryAddresses: nonEmptyMap(c.aux_addresses),
    }),
  );
  return compact({ Driver: nonEmpty(ipam.driver), Config: nonEmpty(pools), Options: nonEmptyMap(ipam.options) });
}

/** TaskTemplate.Networks: targets by engine name (the daemon resolves them), sorted, with the service name as an alias. */
export function convertServiceNetworks(ctx: ConvertContext, service: ServiceConfig, path: string): NetworkAttachmentConfig[] {
  const out: NetworkAttachmentConfig[] = [];
  for (const [key, opts] of serviceNetworkEntries(service)) {
    const nw = ctx.config.networks[key];
    if (nw === undefined && key !== DEFAULT_NETWORK) {
      ctx.notices.error(`${path}.networks.${key}`, `undefined network "${key}": declare it under the top-level networks key`);
      continue;
    }
    for (const k of ['ipv4_address', 'ipv6_address'] as const) {
      if (opts?.[k]) {
        ctx.notices.warn(
          `${path}.networks.${key}.${k}`,
          'Swarm services cannot have a fixed address; docker stack deploy ignores it, and so does airlock',
        );
      }
    }
    const target = networkName(ctx.stack, key, nw);
    const aliases = [...(opts?.aliases ?? [])];
    if (isUserDefinedNetwork(target)) aliases.push(service.name);
    out.push(compact({ Target: target, Aliases: nonEmpty(aliases) }));
  }
  return sortedBy(out, (n) => n.Target);
}
