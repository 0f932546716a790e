/**
 * Reaching the inventory's engines: an SSH session per host (bounded
 * parallel), the project's Docker client over the forwarded socket, and what
 * each engine says about itself and its swarm.
 */
import type { Docker } from '../docker/index.js';
import { AirlockError, asAirlockError } from '../errors/index.js';
import { hostLabel, managersOf, swarmRole, type Inventory, type InventoryHost } from '../remote/inventory.js';
import { forEachHost } from '../remote/for-each-host.js';
import { connectHost, type ConnectOptions, type SshSession } from '../remote/ssh.js';
import type { EngineFacts, Observed } from './plan.js';

export interface HostConnection {
  host: InventoryHost;
  session: SshSession;
  docker: Docker;
  facts: EngineFacts;
}

export interface ConnectAllOptions extends ConnectOptions {
  /** Hosts worked on at once (default 8). */
  parallel?: number;
  /** Called as each host is reached (or not). */
  onHost?: (host: InventoryHost, event: string) => void;
}

/** An error about a host, said as such: `h2 (10.99.0.12): <what>: <why>`, keeping its kind, reason and hint. */
export function onHost(host: InventoryHost, what: string, e: unknown): AirlockError {
  const err = asAirlockError(e);
  if (err.subject === host.name && err.message.startsWith(hostLabel(host))) return err;
  return new AirlockError(err.kind, `${hostLabel(host)}: ${what}: ${err.message}`, {
    reason: err.reason,
    subject: host.name,
    ...(err.hint === undefined ? {} : { hint: err.hint }),
    cause: err,
  });
}

/** Reads the engine's version and swarm state. */
export async function readFacts(docker: Docker): Promise<EngineFacts> {
  await docker.system.ping();
  const version = await docker.system.version();
  const info = await docker.system.info();
  return {
    engineVersion: version.Version,
    apiVersion: version.ApiVersion,
    engineId: info.ID,
    swarm: {
      state: info.Swarm.LocalNodeState,
      nodeId: info.Swarm.NodeID,
      controlAvailable: info.Swarm.ControlAvailable,
      ...(info.Swarm.Cluster?.ID ? { clusterId: info.Swarm.Cluster.ID } : {}),
      error: info.Swarm.Error,
    },
  };
}

/**
 * Connects to every host and reads its engine. Returns the live connections
 * and each host's outcome; close the connections with closeAll().
 */
export async function connectAll(
  inventory: Inventory,
  opts: ConnectAllOptions = {},
): Promise<{ connections: Map<string, HostConnection>; observed: Map<string, Observed> }> {
  const connections = new Map<string, HostConnection>();
  const observed = new Map<string, Observed>();
  const outcomes = await forEachHost(inventory.hosts, opts.parallel, async (host) => {
    const session = await connectHost(host, opts);
    try {
      const docker = session.docker();
      const facts = await readFacts(docker).catch((e: unknown) => {
        throw onHost(host, 'engine check failed', e);
      });
      const c: HostConnection = { host, session, docker, facts };
      connections.set(host.name, c);
      opts.onHost?.(host, `engine ${facts.engineVersion} (API ${facts.apiVersion}), swarm ${facts.swarm.state || 'unknown'}`);
      return facts;
    } catch (e) {
      await session.close();
      throw e;
    }
  });
  for (const o of outcomes) {
    if (o.ok) observed.set(o.host.name, { ok: true, facts: o.value });
    else {
      observed.set(o.host.name, { ok: false, error: o.error });
      opts.onHost?.(o.host, `failed: ${o.error.message}`);
    }
  }
  return { connections, observed };
}

export async function closeAll(connections: Map<string, HostConnection>): Promise<void> {
  await Promise.all([...connections.values()].map((c) => c.session.close().catch(() => undefined)));
}

/**
 * The first inventory host whose engine manages the swarm: managers first,
 * in inventory order, then the others; one SSH session at a time. Close the
 * connection's session when done. Not found (exit 4) when none does, naming
 * what each host said; a remote failure (exit 17) when none could be reached.
 */
export async function connectManager(inventory: Inventory, opts: ConnectOptions = {}): Promise<HostConnection> {
  const byPreference = [...managersOf(inventory), ...inventory.hosts.filter((h) => swarmRole(h) !== 'manager')];
  const tried: string[] = [];
  let unreachable = 0;
  for (const host of byPreference) {
    let session: SshSession | undefined;
    try {
      session = await connectHost(host, opts);
      const docker = session.docker();
      const facts = await readFacts(docker);
      if (facts.swarm.state === 'active' && facts.swarm.controlAvailable) return { host, session, docker, facts };
      tried.push(`${host.name}: not a manager (swarm ${facts.swarm.state || 'inactive'})`);
    } catch (e) {
      unreachable++;
      tried.push(`${host.name}: ${asAirlockError(e).message}`);
    }
    await session?.close().catch(() => undefined);
  }
  const why = `no inventory host manages a swarm (${tried.join('; ')})`;
  const hint = 'airlock cluster status --inventory shows the hosts; airlock cluster up makes the swarm';
  if (unreachable > 0 && unreachable === tried.length) throw new AirlockError('remote', why, { reason: 'unreachable', subject: inventory.file, hint });
  throw new AirlockError('notFound', why, { reason: 'no-manager', subject: inventory.file, hint });
}
