/**
 * Fields of a service spec that only newer Engine API versions carry. When
 * the negotiated version is older, the converter leaves the field out and
 * says so (key path and minimum version), instead of sending a field the
 * daemon would drop without a word. Versions from the Engine API version
 * history and the "API 1.xx+" marks of `docker service create`'s options.
 */

export interface VersionGate {
  /** The compose key, relative to the service (`healthcheck.start_interval`). */
  key: string;
  /** First Engine API version that carries it. */
  minVersion: string;
  /** What it becomes in the spec, for the message. */
  field: string;
  /** Dropping would change what the stack does, not just lose a setting: refuse instead. */
  refuse?: boolean;
}

export const SERVICE_GATES = {
  init: { key: 'init', minVersion: '1.37', field: 'ContainerSpec.Init' },
  sysctls: { key: 'sysctls', minVersion: '1.40', field: 'ContainerSpec.Sysctls' },
  maxReplicas: { key: 'deploy.placement.max_replicas_per_node', minVersion: '1.40', field: 'Placement.MaxReplicas' },
  pids: { key: 'deploy.resources.limits.pids', minVersion: '1.41', field: 'Resources.Limits.Pids' },
  ulimits: { key: 'ulimits', minVersion: '1.41', field: 'ContainerSpec.Ulimits' },
  capAdd: { key: 'cap_add', minVersion: '1.41', field: 'ContainerSpec.CapabilityAdd' },
  capDrop: { key: 'cap_drop', minVersion: '1.41', field: 'ContainerSpec.CapabilityDrop' },
  jobMode: { key: 'deploy.mode', minVersion: '1.41', field: 'Mode.ReplicatedJob/GlobalJob', refuse: true },
  startInterval: { key: 'healthcheck.start_interval', minVersion: '1.44', field: 'HealthCheck.StartInterval' },
  oomScoreAdj: { key: 'oom_score_adj', minVersion: '1.46', field: 'ContainerSpec.OomScoreAdj' },
} satisfies Record<string, VersionGate>;

/** Networks: the API deprecated CheckDuplicate in 1.44; docker's client sets it below that. */
export const CHECK_DUPLICATE_UNTIL = '1.44';

/** Orders `1.41` < `1.44` < `1.100`. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function supports(apiVersion: string, minVersion: string): boolean {
  return compareVersions(apiVersion, minVersion) >= 0;
}

export function gateMessage(gate: VersionGate, apiVersion: string): string {
  const what = gate.refuse ? 'cannot be deployed' : 'is left out';
  return `${gate.field} needs Engine API ${gate.minVersion} or later; this engine speaks ${apiVersion}, so it ${what}`;
}
