/**
 * Normalisation for the parity test: what `docker stack deploy` made and
 * what airlock made are read back from the same engine, and the fields that
 * differ legitimately are rewritten or dropped here, each with the reason.
 * Everything else must be deep-equal.
 */
import { keyedNameSuffix } from '../../../src/seal/names.js';
import { createHash } from 'node:crypto';
import type { Config, Network, Secret, Service, ServiceSpec } from '../../../src/docker/types.js';
import { LOGICAL_NAME_LABEL } from '../../../src/compose/labels.js';

/** The objects of one deployed stack, as the engine reports them. */
export interface StackSnapshot {
  stack: string;
  services: Service[];
  networks: Network[];
  secrets: Secret[];
  configs: Config[];
  /** Every network the engine has (the stack's, external ones, ingress): ID → name. */
  networkNames: Map<string, string>;
}

export interface NormalisedStack {
  services: Record<string, { Spec: ServiceSpec; EndpointSpec: unknown }>;
  networks: Record<string, unknown>;
  secrets: Record<string, unknown>;
  configs: Record<string, unknown>;
}

const STACK = 'STACK';
const CONTENT_SUFFIX = /-([0-9a-f]{10})$/;

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/**
 * 1. The stack name. The two deployments use stacks `parity_ref_NN` and
 *    `parity_air_NN`, which appear in object names (`<stack>_web`), in the
 *    `com.docker.stack.namespace` label values and in targets. Every
 *    occurrence becomes `STACK`. (NN is zero-padded, so no stack name is a
 *    prefix of another.)
 */
function replaceStack<T>(v: T, stack: string): T {
  return JSON.parse(JSON.stringify(v).split(stack).join(STACK)) as T;
}

/**
 * 2. airlock's content-named secrets and configs. airlock names each one
 *    `<stack>_<name>-<10 hex>` on purpose (Swarm cannot update them in
 *    place), the hex keyed by the host's names key (`namesKey`), and labels
 *    it with its compose name. Map each such engine name back to the name
 *    docker gives, `<stack>_<name>`, after checking that the suffix really is
 *    the content's keyed hash (configs: the engine returns their data) or at
 *    least 10 hex digits (secrets: the engine never returns secret data).
 *    Explicit `name:`s are kept by both.
 */
function contentNameMap(objects: (Secret | Config)[], stack: string, namesKey: Buffer | undefined): Map<string, string> {
  const map = new Map<string, string>();
  for (const o of objects) {
    const logical = o.Spec.Labels?.[LOGICAL_NAME_LABEL];
    if (logical === undefined) continue;
    const dockerName = `${stack}_${logical}`;
    const m = CONTENT_SUFFIX.exec(o.Spec.Name);
    if (!o.Spec.Name.startsWith(`${dockerName}-`) || !m) continue; // an explicit name:
    const data = (o.Spec as { Data?: string }).Data;
    if (data !== undefined) {
      const value = Buffer.from(data, 'base64');
      const hash = namesKey ? keyedNameSuffix(`${stack}_${logical}`, value, namesKey) : createHash('sha256').update(value).digest('hex').slice(0, 10);
      if (hash !== m[1]) throw new Error(`${o.Spec.Name}: the name's hash is not the hash of its content (${hash})`);
    }
    map.set(o.Spec.Name, dockerName);
  }
  return map;
}

/**
 * 3. The airlock logical-name label, which docker does not set (airlock's
 *    addition, so tools can find a content-named object by its compose name).
 */
function withoutLogicalName(labels: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!labels) return labels;
  const { [LOGICAL_NAME_LABEL]: _drop, ...rest } = labels;
  return rest;
}

function byNameThenTarget(a: [string, string | undefined], b: [string, string | undefined]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : (a[1] ?? '') < (b[1] ?? '') ? -1 : (a[1] ?? '') > (b[1] ?? '') ? 1 : 0;
}

export function normaliseStack(s: StackSnapshot, fileText: string, namesKey?: Buffer): NormalisedStack {
  const secretNames = contentNameMap(s.secrets, s.stack, namesKey);
  const configNames = contentNameMap(s.configs, s.stack, namesKey);
  const out: NormalisedStack = { services: {}, networks: {}, secrets: {}, configs: {} };

  for (const svc of s.services) {
    // 4. Only Spec and Endpoint.Spec are compared. ID, Version, CreatedAt and
    //    UpdatedAt are the engine's bookkeeping; Endpoint.VirtualIPs and
    //    Endpoint.Ports are what the engine allocated (addresses, and ports
    //    it picks when none is published); UpdateStatus/ServiceStatus/
    //    JobStatus are runtime state.
    const spec = clone(svc.Spec);
    const container = spec.TaskTemplate?.ContainerSpec;
    // 5. Network attachments name networks by ID, which differ between any
    //    two networks; compare by the network's name.
    for (const n of spec.TaskTemplate?.Networks ?? []) n.Target = s.networkNames.get(n.Target) ?? `unknown network ${n.Target}`;
    // 6. Secret and config references carry the object's ID (drop it) and
    //    airlock's content name (mapped back, see 2).
    //    Both sort references by engine name, which holds the stack name:
    //    `parity_ref_11_x` and `parity_air_11_x` sort differently against an
    //    explicit `parity_pinned_…`. So references are re-sorted after the
    //    stack name is replaced (below). And docker collects references
    //    through a Go map, so two references to one object (different
    //    targets) come in random order: ties are ordered by target.
    for (const r of container?.Secrets ?? []) {
      r.SecretID = 'ID';
      r.SecretName = secretNames.get(r.SecretName) ?? r.SecretName;
    }
    for (const r of container?.Configs ?? []) {
      r.ConfigID = 'ID';
      r.ConfigName = configNames.get(r.ConfigName) ?? r.ConfigName;
    }
    const name = svc.Spec.Name ?? svc.ID;
    const normal = replaceStack({ Spec: spec, EndpointSpec: svc.Endpoint?.Spec ?? null }, s.stack);
    const c = normal.Spec.TaskTemplate?.ContainerSpec;
    c?.Secrets?.sort((a, b) => byNameThenTarget([a.SecretName, a.File?.Name], [b.SecretName, b.File?.Name]));
    c?.Configs?.sort((a, b) => byNameThenTarget([a.ConfigName, a.File?.Name], [b.ConfigName, b.File?.Name]));
    out.services[replaceStack(name, s.stack)] = normal;
  }

  for (const n of s.networks) {
    // 7. Networks: Id, Created, Containers, Peers and Services are runtime
    //    facts. The engine adds a VXLAN id option per overlay network,
    //    allocated by the swarm. A subnet the file does not fix is allocated
    //    from the swarm's pool, so its Subnet and Gateway are compared only
    //    when the compose file names that subnet.
    const { 'com.docker.network.driver.overlay.vxlanid_list': _vxlan, ...options } = n.Options ?? {};
    const pools = (n.IPAM.Config ?? []).map((c) =>
      c.Subnet !== undefined && fileText.includes(c.Subnet) ? c : { ...c, Subnet: 'ALLOCATED', Gateway: 'ALLOCATED' },
    );
    out.networks[replaceStack(n.Name, s.stack)] = replaceStack(
      {
        Driver: n.Driver,
        Scope: n.Scope,
        Internal: n.Internal,
        Attachable: n.Attachable,
        Ingress: n.Ingress,
        EnableIPv6: n.EnableIPv6,
        IPAM: { Driver: n.IPAM.Driver, Options: n.IPAM.Options, Config: pools },
        Options: options,
        Labels: n.Labels,
      },
      s.stack,
    );
  }

  for (const o of s.secrets) {
    // 8. Secrets: the engine never returns their data (compared by a task
    //    that reads it, see the test); ID, Version and times are bookkeeping.
    const name = secretNames.get(o.Spec.Name) ?? o.Spec.Name;
    out.secrets[replaceStack(name, s.stack)] = replaceStack({ ...o.Spec, Name: name, Labels: withoutLogicalName(o.Spec.Labels) }, s.stack);
  }
  for (const o of s.configs) {
    // 9. Configs: compared with their data; ID, Version and times are bookkeeping.
    const name = configNames.get(o.Spec.Name) ?? o.Spec.Name;
    out.configs[replaceStack(name, s.stack)] = replaceStack({ ...o.Spec, Name: name, Labels: withoutLogicalName(o.Spec.Labels) }, s.stack);
  }
  return out;
}
