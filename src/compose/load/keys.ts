/**
 * Which service keys `docker stack deploy` uses, ignores or refuses.
 *
 * From docker/cli cli/compose/types/types.go:
 * - ForbiddenProperties: refused before anything else, with the advice
 *   docker gives;
 * - UnsupportedProperties: accepted and ignored ("Ignoring unsupported
 *   options: …"); `restart` is on that list yet the converter still uses it
 *   when deploy.restart_policy is absent, so the model carries it;
 * - DeprecatedProperties: accepted and ignored ("Ignoring deprecated
 *   options: …").
 *
 * Two more groups come from comparing docker's v3.x schema and converter
 * with the Compose Specification schema the loader validates against:
 * keys docker's schema accepts but its converter never reads (ignored
 * silently by docker; reported here), and keys only the Compose
 * Specification knows, which docker's schema refuses (refused here too).
 */
import { composeError, isMapping } from './errors.js';
import type { ComposeNotice } from '../model.js';

const RESOURCES = 'Set resource limits using deploy.resources';

/** docker/cli types.ForbiddenProperties, with docker's advice. */
export const FORBIDDEN: Readonly<Record<string, string>> = {
  extends: 'Support for `extends` is not implemented yet.',
  volume_driver:
    'Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there.',
  volumes_from:
    'To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option.',
  cpu_quota: RESOURCES,
  cpu_shares: RESOURCES,
  cpuset: RESOURCES,
  mem_limit: RESOURCES,
  memswap_limit: RESOURCES,
};

/** docker/cli types.UnsupportedProperties. */
export const UNSUPPORTED: readonly string[] = [
  'build',
  'cgroupns_mode',
  'cgroup_parent',
  'devices',
  'domainname',
  'external_links',
  'ipc',
  'links',
  'mac_address',
  'network_mode',
  'pid',
  'privileged',
  'restart',
  'security_opt',
  'shm_size',
  'userns_mode',
];

/** docker/cli types.DeprecatedProperties, with docker's explanation. */
export const DEPRECATED: Readonly<Record<string, string>> = {
  container_name: 'Setting the container name is not supported.',
  expose: "Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
};

/** In docker's schema, never read by its converter: docker drops these without a word. */
export const IGNORED: Readonly<Record<string, string>> = {
  depends_on: 'swarm starts services in no particular order; make the service wait for its dependencies itself.',
  tmpfs: 'service-level tmpfs is not applied by swarm; use a volume with `type: tmpfs` instead.',
};

/** Only in the Compose Specification: docker's schema refuses them ("Additional property … is not allowed"). */
export const NOT_IN_DOCKER_SCHEMA: Readonly<Record<string, string>> = {
  blkio_config: 'Remove it: swarm services have no block-IO settings.',
  cpu_count: RESOURCES,
  cpu_percent: RESOURCES,
  cpu_period: RESOURCES,
  cpu_rt_period: RESOURCES,
  cpu_rt_runtime: RESOURCES,
  cpus: `${RESOURCES}.limits.cpus`,
  device_cgroup_rules: 'Remove it: swarm services cannot set device cgroup rules.',
  group_add: 'Remove it: docker stack deploy does not support supplementary groups.',
  mem_reservation: `${RESOURCES}.reservations.memory`,
  mem_swappiness: 'Remove it: docker stack deploy does not support it.',
  oom_kill_disable: 'Remove it: docker stack deploy does not support it.',
  pids_limit: `${RESOURCES}.limits.pids`,
  platform: 'Remove it; use deploy.placement.constraints (e.g. node.platform.arch==x86_64) to choose nodes.',
  profiles: 'Remove it: docker stack deploy deploys every service in the file.',
  pull_policy: 'Remove it: airlock loads images from the bundle; nothing is pulled.',
  runtime: 'Remove it: swarm services cannot choose the runtime.',
  scale: 'Use deploy.replicas.',
  storage_opt: 'Remove it: docker stack deploy does not support it.',
};

/** Service keys the model carries. */
export const SUPPORTED: ReadonlySet<string> = new Set([
  'image', 'command', 'entrypoint', 'environment', 'env_file', 'labels', 'deploy', 'healthcheck', 'ports',
  'networks', 'volumes', 'secrets', 'configs', 'user', 'working_dir', 'hostname', 'stop_grace_period',
  'stop_signal', 'extra_hosts', 'dns', 'dns_search', 'dns_opt', 'logging', 'ulimits', 'sysctls', 'cap_add',
  'cap_drop', 'init', 'read_only', 'tty', 'stdin_open', 'restart', 'isolation', 'oom_score_adj',
  'credential_spec',
]);

/**
 * Refuses a file whose services use a forbidden key, as docker does before
 * interpolating or validating it. Every forbidden key is listed.
 */
export function checkForbidden(file: string, config: Record<string, unknown>): void {
  const services = config['services'];
  if (!isMapping(services)) return;
  const found: { path: string; advice: string }[] = [];
  for (const [name, service] of Object.entries(services)) {
    if (!isMapping(service)) continue;
    for (const key of Object.keys(service)) {
      const advice = FORBIDDEN[key];
      if (advice !== undefined) found.push({ path: `services.${name}.${key}`, advice });
    }
  }
  if (found.length === 0) return;
  const list = found.map((f) => `${f.path} (${f.advice})`).join('; ');
  throw composeError(file, null, `docker stack deploy does not allow ${found.length === 1 ? 'this option' : 'these options'}: ${list}`, {
    reason: 'compose-forbidden',
    hint: found[0]?.advice ?? RESOURCES,
  });
}

export type KeyVerdict =
  | { kind: 'supported' }
  | { kind: 'warning'; notice: Omit<ComposeNotice, 'path' | 'file'> }
  | { kind: 'error'; problem: string; hint: string };

/** What to do with one key of a service (x-* keys are extensions, handled elsewhere). */
export function classifyServiceKey(key: string): KeyVerdict {
  if (key === 'restart') {
    return {
      kind: 'warning',
      notice: {
        level: 'warning',
        message:
          'docker stack deploy lists `restart` as unsupported; it is used only when deploy.restart_policy is not set',
      },
    };
  }
  if (SUPPORTED.has(key)) return { kind: 'supported' };
  const forbidden = FORBIDDEN[key];
  if (forbidden !== undefined) return { kind: 'error', problem: 'is not allowed by docker stack deploy', hint: forbidden };
  if (UNSUPPORTED.includes(key)) {
    return { kind: 'warning', notice: { level: 'warning', message: 'ignored: docker stack deploy does not support this option' } };
  }
  const deprecated = DEPRECATED[key];
  if (deprecated !== undefined) {
    return { kind: 'warning', notice: { level: 'warning', message: `ignored (deprecated): ${deprecated}` } };
  }
  const ignored = IGNORED[key];
  if (ignored !== undefined) return { kind: 'warning', notice: { level: 'warning', message: `ignored: ${ignored}` } };
  const refused = NOT_IN_DOCKER_SCHEMA[key];
  if (refused !== undefined) {
    return { kind: 'error', problem: 'is not supported by docker stack deploy (not in its compose schema)', hint: refused };
  }
  return { kind: 'warning', notice: { level: 'warning', message: 'ignored: airlock does not know this option' } };
}
