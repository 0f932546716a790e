/**
 * Whether a freshly started engine is the one airlock meant and is ready:
 * it answers `/_ping`, reports the expected version, and on a swarm node is
 * back in the swarm (`active`) with its node `ready`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Docker, unixSocketTransport } from '../docker/index.js';
import { AirlockError } from '../errors/index.js';

export type HealthCheck = 'ping' | 'version' | 'swarm' | 'node';

export interface HealthOptions {
  /** What `/version` `.Version` must say (the bundle's `engine.version`). */
  version: string;
  /** The node was in a swarm: wait for it to be again. */
  swarm?: boolean;
  timeoutMs: number;
  /** Each failed check, as it is seen (for a progress line). */
  onProgress?: (check: HealthCheck, detail: string) => void;
  pollMs?: number;
}

export interface HealthResult {
  version: string;
  apiVersion: string;
  /** The swarm node's id, when `swarm` was asked. */
  nodeId?: string;
}

class NotYet extends Error {
  constructor(
    readonly check: HealthCheck,
    message: string,
  ) {
    super(message);
  }
}

/** Runs one check's call; what it throws becomes that check's failure. */
async function step<T>(check: HealthCheck, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw new NotYet(check, (e as Error).message);
  }
}

async function checkOnce(docker: Docker, opts: HealthOptions): Promise<HealthResult> {
  const call = { retry: false as const };
  await step('ping', () => docker.system.ping(call));
  const v = await step('version', () => docker.system.version(call));
  // Definite: the engine that answers is another one, and waiting will not change it.
  if (v.Version !== opts.version) {
    throw new AirlockError('engine', `the engine at the socket reports version ${v.Version}, not ${opts.version}`, {
      reason: 'engine-wrong-version',
      subject: 'version',
      hint: "the bundle's engine.version must be what its dockerd reports (dockerd --version)",
    });
  }
  if (!opts.swarm) return { version: v.Version, apiVersion: v.ApiVersion };
  const info = await step('swarm', () => docker.system.info(call));
  if (info.Swarm.LocalNodeState !== 'active') throw new NotYet('swarm', `the node's swarm state is ${info.Swarm.LocalNodeState || 'empty'}, not active`);
  // Only a manager can read a node; a worker's own node is read by a manager (the caller's drain and activate do).
  if (info.Swarm.ControlAvailable) {
    const node = await step('node', () => docker.nodes.inspect(info.Swarm.NodeID, call));
    if (node.Status.State !== 'ready') throw new NotYet('node', `node ${info.Swarm.NodeID} is ${node.Status.State}, not ready${node.Status.Message ? ` (${node.Status.Message})` : ''}`);
  }
  return { version: v.Version, apiVersion: v.ApiVersion, nodeId: info.Swarm.NodeID };
}

/** `1.5s`, `60s`. */
const seconds = (ms: number) => `${Number((ms / 1000).toFixed(1))}s`;

/**
 * Polls the engine at `socketPath` until every check passes; throws
 * `engine-unhealthy` (exit 15) at the timeout, naming the check that failed
 * last and what it saw.
 */
export async function waitEngineHealthy(socketPath: string, opts: HealthOptions): Promise<HealthResult> {
  const deadline = Date.now() + opts.timeoutMs;
  const docker = new Docker({ transport: unixSocketTransport(socketPath), endpoint: `unix://${socketPath}`, retry: false, connectTimeoutMs: 2_000, headersTimeoutMs: 10_000 });
  let last: NotYet = new NotYet('ping', 'not tried');
  try {
    for (;;) {
      try {
        return await checkOnce(docker, opts);
      } catch (e) {
        if (!(e instanceof NotYet)) throw e;
        last = e;
        opts.onProgress?.(last.check, last.message);
      }
      if (Date.now() >= deadline) break;
      await sleep(Math.min(opts.pollMs ?? 500, Math.max(0, deadline - Date.now())));
    }
  } finally {
    await docker.client.destroy();
  }
  throw new AirlockError('engine', `the engine at ${socketPath} is not healthy after ${seconds(opts.timeoutMs)}: ${last.check} check: ${last.message}`, {
    reason: 'engine-unhealthy',
    subject: last.check,
    hint: 'see the engine log (journalctl -u docker, or /var/log/airlock/engine/dockerd.log)',
  });
}
