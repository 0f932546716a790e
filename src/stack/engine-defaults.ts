/**
 * What the Docker Engine stores for a service spec it is sent, where that is
 * not what was sent: fields it fills with a default when they are unset,
 * fields it does not keep, and fields the request's API version strips. The
 * planner compares specs as the engine would store them (spec-diff.ts), so a
 * spec the engine merely completed is not a change, and a field the engine
 * holds at any other value than what the spec would store is one.
 *
 * Learned from moby (v20.10.24, v26.1.5, v28.5.2 agree unless a rule says
 * `since`/`below`): daemon/cluster/convert turns the API spec into swarmkit's
 * gRPC spec on create and update (`ServiceSpecToGRPC`, `containerToGRPC`) and
 * back on inspect (`serviceSpecFromGRPC`, `containerSpecFromGRPC`); the JSON
 * tags of api/types/swarm decide which zero values the engine returns;
 * api/server/router/swarm/helpers.go `adjustForAPIVersion` strips what an
 * older API version does not carry. Recordings of real daemons pin them:
 * test/stack/engine-specs/.
 */
import type { ServiceSpec } from '../docker/index.js';
import { supports } from '../compose/convert/api-version.js';

type Obj = Record<string, unknown>;

interface RuleBase {
  /** Dotted path from the service spec; `[]` after a key means every element of that array. */
  path: string;
  /** Where moby does it. */
  moby: string;
  /** Only from this API version on (the engine has the field). */
  since?: string;
  /** Only below this API version (the engine strips or lacks the field). */
  below?: string;
}

export type EngineRule =
  /** Unset (absent, null or "") becomes this value. */
  | (RuleBase & { fill: unknown })
  /** Unset becomes a value taken from the field's parent object. */
  | (RuleBase & { fillFrom: (parent: Obj) => unknown })
  /** The engine never keeps the field ('always'), or returns no zero value of it ('zero', Go's omitempty). */
  | (RuleBase & { drop: 'always' | 'zero' });

const CONVERT = 'daemon/cluster/convert';
const ROUTER = 'api/server/router/swarm/helpers.go adjustForAPIVersion';

const updateConfig = (key: 'UpdateConfig' | 'RollbackConfig'): EngineRule[] => [
  { path: `${key}.Parallelism`, fill: 0, moby: 'api/types/swarm/service.go: UpdateConfig.Parallelism has no omitempty' },
  { path: `${key}.FailureAction`, fill: 'pause', moby: `${CONVERT}/service.go updateConfigToGRPC: "" is UpdateConfig_PAUSE` },
  { path: `${key}.MaxFailureRatio`, fill: 0, moby: 'api/types/swarm/service.go: UpdateConfig.MaxFailureRatio has no omitempty' },
  { path: `${key}.Order`, fill: 'stop-first', moby: `${CONVERT}/service.go updateConfigToGRPC: "" is UpdateConfig_STOP_FIRST` },
  { path: `${key}.Delay`, drop: 'zero', moby: 'api/types/swarm/service.go: UpdateConfig.Delay omitempty' },
  { path: `${key}.Monitor`, drop: 'zero', moby: `${CONVERT}/service.go updateConfigToGRPC: Monitor only when not 0` },
];

const CONTAINER = 'TaskTemplate.ContainerSpec';
const MOUNTS = `${CONTAINER}.Mounts[]`;

/** Applied in this order: a rule may depend on an earlier one (a parent filled, a child dropped). */
export const ENGINE_RULES: readonly EngineRule[] = [
  { path: 'Labels', fill: {}, moby: `${CONVERT}/service.go annotationsFromGRPC: nil labels become an empty map` },
  { path: 'Mode', fill: {}, moby: 'api/types/swarm/service.go: ServiceSpec.Mode is a struct, always returned' },
  {
    path: 'Mode.Replicated',
    fillFrom: (mode) => ((mode['Global'] ?? mode['ReplicatedJob'] ?? mode['GlobalJob']) ? undefined : {}),
    moby: `${CONVERT}/service.go ServiceSpecToGRPC: no mode is replicated`,
  },
  { path: 'Mode.Replicated.Replicas', fill: 1, moby: `${CONVERT}/service.go ServiceSpecToGRPC: Replicas nil is 1` },
  { path: 'Mode.ReplicatedJob.MaxConcurrent', fill: 1, moby: `${CONVERT}/service.go ServiceSpecToGRPC: MaxConcurrent nil is 1` },
  {
    path: 'Mode.ReplicatedJob.TotalCompletions',
    fillFrom: (job) => job['MaxConcurrent'],
    moby: `${CONVERT}/service.go ServiceSpecToGRPC: TotalCompletions nil is MaxConcurrent`,
  },
  ...updateConfig('UpdateConfig'),
  ...updateConfig('RollbackConfig'),
  { path: 'EndpointSpec.Mode', fill: 'vip', moby: `${CONVERT}/service.go ServiceSpecToGRPC: "" is EndpointSpec_VIP (enum 0)` },
  { path: 'EndpointSpec.Ports[].Protocol', fill: 'tcp', moby: `${CONVERT}/service.go ServiceSpecToGRPC: "" is PortConfig_TCP (enum 0)` },
  { path: 'EndpointSpec.Ports[].PublishMode', fill: 'ingress', moby: `${CONVERT}/service.go ServiceSpecToGRPC: "" is PublishModeIngress (enum 0)` },

  { path: 'TaskTemplate.ForceUpdate', fill: 0, moby: 'api/types/swarm/task.go: TaskSpec.ForceUpdate has no omitempty' },
  { path: 'TaskTemplate.Runtime', fill: 'container', moby: `${CONVERT}/service.go serviceSpecFromGRPC: a container task is RuntimeContainer` },
  { path: 'TaskTemplate.LogDriver.Name', drop: 'zero', moby: `api/types/swarm/task.go: Driver.Name omitempty (${CONVERT}/service.go driverFromGRPC)` },
  { path: 'TaskTemplate.LogDriver.Options', drop: 'zero', moby: 'api/types/swarm/task.go: Driver.Options omitempty' },
  { path: 'TaskTemplate.RestartPolicy.Condition', fill: 'any', moby: `${CONVERT}/service.go restartPolicyToGRPC: "" is RestartOnAny` },
  { path: 'TaskTemplate.RestartPolicy.MaxAttempts', fill: 0, moby: `${CONVERT}/service.go restartPolicyFromGRPC: MaxAttempts always set` },

  { path: `${CONTAINER}.Isolation`, fill: 'default', moby: `${CONVERT}/container.go IsolationFromGRPC: "" is ContainerIsolationDefault` },
  { path: `${CONTAINER}.Privileges.CredentialSpec`, fill: null, moby: 'api/types/swarm/container.go: Privileges.CredentialSpec has no omitempty' },
  { path: `${CONTAINER}.Privileges.SELinuxContext`, fill: null, moby: 'api/types/swarm/container.go: Privileges.SELinuxContext has no omitempty' },
  { path: `${CONTAINER}.Privileges.Seccomp`, drop: 'always', below: '1.44', moby: ROUTER },
  { path: `${CONTAINER}.Privileges.AppArmor`, drop: 'always', below: '1.44', moby: ROUTER },
  { path: `${CONTAINER}.Privileges.Seccomp.Mode`, fill: 'default', since: '1.44', moby: `${CONVERT}/container.go containerToGRPC: "" is SeccompOpts_DEFAULT (enum 0)` },
  { path: `${CONTAINER}.Privileges.AppArmor.Mode`, fill: 'default', since: '1.44', moby: `${CONVERT}/container.go containerToGRPC: "" is AppArmorOpts_DEFAULT (enum 0)` },
  { path: `${CONTAINER}.Privileges.NoNewPrivileges`, drop: 'always', below: '1.44', moby: ROUTER },
  {
    path: `${CONTAINER}.Privileges.NoNewPrivileges`,
    fill: false,
    since: '1.44',
    moby: 'api/types/swarm/container.go: Privileges.NoNewPrivileges (API 1.44, moby v25) has no omitempty',
  },
  { path: `${CONTAINER}.Healthcheck.StartInterval`, drop: 'always', below: '1.44', moby: ROUTER },
  { path: `${CONTAINER}.OomScoreAdj`, drop: 'always', below: '1.46', moby: ROUTER },
  { path: `${MOUNTS}.TmpfsOptions.Options`, drop: 'always', below: '1.46', moby: ROUTER },
  { path: `${MOUNTS}.Type`, fill: 'bind', moby: `${CONVERT}/container.go containerToGRPC: "" is MountTypeBind (enum 0)` },
  { path: `${MOUNTS}.ReadOnly`, drop: 'zero', moby: 'api/types/mount/mount.go: Mount.ReadOnly omitempty' },
  { path: `${MOUNTS}.Consistency`, drop: 'always', moby: `${CONVERT}/container.go containerToGRPC: swarmkit's Mount has no consistency` },
  // containerToGRPC keeps a bind's propagation and NonRecursive only; without either it keeps no BindOptions.
  { path: `${MOUNTS}.BindOptions.CreateMountpoint`, drop: 'always', moby: `${CONVERT}/container.go containerToGRPC: not copied` },
  { path: `${MOUNTS}.BindOptions.ReadOnlyNonRecursive`, drop: 'always', moby: `${CONVERT}/container.go containerToGRPC: not copied` },
  { path: `${MOUNTS}.BindOptions.ReadOnlyForceRecursive`, drop: 'always', moby: `${CONVERT}/container.go containerToGRPC: not copied` },
  { path: `${MOUNTS}.BindOptions.Propagation`, drop: 'zero', moby: `${CONVERT}/container.go containerToGRPC: "" is no propagation` },
  { path: `${MOUNTS}.BindOptions.NonRecursive`, drop: 'zero', moby: 'api/types/mount/mount.go: BindOptions.NonRecursive omitempty' },
  { path: `${MOUNTS}.BindOptions`, drop: 'zero', moby: `${CONVERT}/container.go containerToGRPC: BindOptions only with a propagation or NonRecursive` },
  { path: `${MOUNTS}.BindOptions.Propagation`, fill: 'rprivate', moby: `${CONVERT}/container.go containerToGRPC: "the propagation defaults to rprivate"` },
];

function isObject(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const isUnset = (v: unknown) => v === undefined || v === null || v === '';

/** Go's zero value, which an `omitempty` field is not returned with. */
const isZero = (v: unknown) =>
  isUnset(v) || v === 0 || v === false || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0);

/** Whether the rule holds for an engine speaking `apiVersion`; undefined is the newest. */
export function ruleHolds(rule: EngineRule, apiVersion: string | undefined): boolean {
  if (rule.since !== undefined && apiVersion !== undefined && !supports(apiVersion, rule.since)) return false;
  if (rule.below !== undefined && (apiVersion === undefined || supports(apiVersion, rule.below))) return false;
  return true;
}

/** The objects a path's last key lives in: `A.B[].C` gives every element of A.B. */
function parents(root: Obj, segments: string[]): Obj[] {
  let at: Obj[] = [root];
  for (const segment of segments) {
    const each = segment.endsWith('[]');
    const key = each ? segment.slice(0, -2) : segment;
    at = at.flatMap((o) => {
      const v = o[key];
      if (each) return Array.isArray(v) ? v.filter(isObject) : [];
      return isObject(v) ? [v] : [];
    });
  }
  return at;
}

function apply(rule: EngineRule, root: Obj): void {
  const segments = rule.path.split('.');
  const key = segments.pop()!;
  for (const parent of parents(root, segments)) {
    if ('drop' in rule) {
      if (rule.drop === 'always' || isZero(parent[key])) delete parent[key];
    } else if (isUnset(parent[key])) {
      const value = 'fill' in rule ? structuredClone(rule.fill) : rule.fillFrom(parent);
      if (value !== undefined) parent[key] = value;
    }
  }
}

/** A copy of `spec` as an engine speaking `apiVersion` (undefined: the newest) stores and returns it. */
export function asEngineStores(spec: ServiceSpec, apiVersion?: string, rules: readonly EngineRule[] = ENGINE_RULES): ServiceSpec {
  const s = structuredClone(spec) as Obj;
  for (const rule of rules) if (ruleHolds(rule, apiVersion)) apply(rule, s);
  return s as ServiceSpec;
}
