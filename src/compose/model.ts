/**
 * The loaded compose model: what the loader produces from one or more
 * compose files (parsed, interpolated, validated, merged, normalised) and
 * what the converter turns into Swarm API objects. Every short syntax is
 * already expanded here, so the converter never parses strings.
 *
 * Field names follow the compose file keys (snake_case), so a warning or an
 * error can name the key path the operator wrote.
 */

export type Mapping = Record<string, string>;
/** A mapping whose values may be absent (`environment: [FOO]` with FOO unset). */
export type OptionalMapping = Record<string, string | null>;

/** Durations are kept as compose wrote them (`10s`, `1m30s`); the converter parses them. */
export type Duration = string;

export interface ComposeConfig {
  /** The files it was loaded from, in merge order (for messages). */
  files: string[];
  services: ServiceConfig[];
  networks: Record<string, NetworkConfig>;
  volumes: Record<string, VolumeConfig>;
  secrets: Record<string, FileObjectConfig>;
  configs: Record<string, FileObjectConfig>;
  /** Top-level `x-*` keys, kept for tools; never converted. */
  extensions: Record<string, unknown>;
}

export interface ServiceConfig {
  name: string;
  image?: string;
  command?: string[];
  entrypoint?: string[];
  /** environment merged over env_file values; null means "take from the host" (unset here). */
  environment: OptionalMapping;
  labels: Mapping;
  deploy: DeployConfig;
  healthcheck?: HealthCheckConfig;
  ports: ServicePort[];
  /** Network name → attachment options; `default` when the service names none. */
  networks: Record<string, ServiceNetwork | null>;
  volumes: ServiceVolume[];
  secrets: ServiceFileRef[];
  configs: ServiceFileRef[];
  user?: string;
  working_dir?: string;
  hostname?: string;
  stop_grace_period?: Duration;
  stop_signal?: string;
  /** Added for the converter: ContainerSpec.OomScoreAdj, which needs Engine API 1.46. */
  oom_score_adj?: number;
  /** Added by the loader: ContainerSpec.Isolation (`default`, `process`, `hyperv`), as docker converts it. */
  isolation?: string;
  /** Added by the loader: ContainerSpec.Privileges.CredentialSpec (Windows); `config` names a top-level config. */
  credential_spec?: { config?: string; file?: string; registry?: string };
  /** `host:ip` strings in the order written. */
  extra_hosts: string[];
  dns: string[];
  dns_search: string[];
  dns_opt: string[];
  logging?: LoggingConfig;
  ulimits: Record<string, { soft: number; hard: number }>;
  sysctls: Mapping;
  cap_add: string[];
  cap_drop: string[];
  init?: boolean;
  read_only?: boolean;
  tty?: boolean;
  stdin_open?: boolean;
  /** `no`, `always`, `on-failure[:N]`, `unless-stopped`: the fallback for deploy.restart_policy. */
  restart?: string;
  /** Keys present in the file that this model does not carry, with their paths, for warnings. */
  unsupported: string[];
  /** `x-*` keys on the service. */
  extensions: Record<string, unknown>;
}

export interface DeployConfig {
  mode?: 'replicated' | 'global' | 'replicated-job' | 'global-job';
  replicas?: number;
  labels: Mapping;
  resources?: {
    limits?: { cpus?: string; memory?: number; pids?: number };
    reservations?: { cpus?: string; memory?: number; generic_resources?: { discrete_resource_spec: { kind: string; value: number } }[] };
  };
  restart_policy?: { condition?: 'none' | 'on-failure' | 'any'; delay?: Duration; max_attempts?: number; window?: Duration };
  placement?: {
    constraints: string[];
    preferences: { spread: string }[];
    max_replicas_per_node?: number;
  };
  update_config?: UpdateConfig;
  rollback_config?: UpdateConfig;
  endpoint_mode?: 'vip' | 'dnsrr';
}

export interface UpdateConfig {
  parallelism?: number;
  delay?: Duration;
  failure_action?: string;
  monitor?: Duration;
  max_failure_ratio?: number;
  order?: 'start-first' | 'stop-first';
}

export interface HealthCheckConfig {
  /** `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", "..."]`; `disable: true` becomes `["NONE"]`. */
  test?: string[];
  interval?: Duration;
  timeout?: Duration;
  start_period?: Duration;
  /** Added for the converter: HealthConfig.StartInterval, which needs Engine API 1.44. */
  start_interval?: Duration;
  retries?: number;
}

export interface ServicePort {
  target: number;
  published?: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  mode: 'ingress' | 'host';
}

export interface ServiceNetwork {
  aliases: string[];
  ipv4_address?: string;
  ipv6_address?: string;
  /** Added by the loader: NetworkAttachmentConfig.DriverOpts (in docker's compose schema 3.14). */
  driver_opts?: Mapping;
}

export interface ServiceVolume {
  type: 'volume' | 'bind' | 'tmpfs';
  /** Volume name (unprefixed, as written) or host path (absolute, resolved); absent for anonymous volumes and tmpfs. */
  source?: string;
  target: string;
  read_only: boolean;
  consistency?: string;
  bind?: { propagation?: string };
  volume?: { nocopy?: boolean };
  tmpfs?: { size?: number; mode?: number };
}

export interface ServiceFileRef {
  /** The top-level secret/config name it refers to. */
  source: string;
  target?: string;
  uid?: string;
  gid?: string;
  mode?: number;
}

export interface LoggingConfig {
  driver?: string;
  options: Mapping;
}

export interface NetworkConfig {
  /** The engine-side name when given with `name:` or when external. */
  name?: string;
  driver?: string;
  driver_opts: Mapping;
  ipam?: { driver?: string; config: { subnet?: string; gateway?: string; ip_range?: string; aux_addresses?: Mapping }[]; options?: Mapping };
  external: boolean;
  internal?: boolean;
  attachable?: boolean;
  labels: Mapping;
}

export interface VolumeConfig {
  name?: string;
  driver?: string;
  driver_opts: Mapping;
  external: boolean;
  labels: Mapping;
}

/** A top-level secret or config. Content comes from `file` (or is external). */
export interface FileObjectConfig {
  name?: string;
  /** Absolute path on the machine that loads the stack. */
  file?: string;
  external: boolean;
  labels: Mapping;
  template_driver?: string;
  /** Added by the loader: a secret driver (SecretSpec.Driver); when set, `file` is absent. Secrets only. */
  driver?: string;
  /** Added by the loader: options for `driver`. */
  driver_opts?: Mapping;
}

/** A problem or note found while loading or converting, tied to the key path the operator wrote. */
export interface ComposeNotice {
  level: 'warning' | 'error';
  /** e.g. `services.web.deploy.resources.limits.pids` */
  path: string;
  message: string;
  file?: string;
}
