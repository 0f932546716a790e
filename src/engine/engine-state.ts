/** What the engine on this host's socket says of itself: whether it answers, its version, its swarm node. */
import { Docker } from '../docker/index.js';
import { unixSocketTransport } from '../docker/transport.js';
import type { EngineHostPaths } from './host-paths.js';

/** A client of the host's own engine that fails at once: an engine change asks while the engine may be down. */
export const localEngine = (paths: EngineHostPaths): Docker =>
  new Docker({ transport: unixSocketTransport(paths.socket), endpoint: `unix://${paths.socket}`, retry: false });

export interface EngineState {
  /** null when no engine answers. */
  reported: { version: string; apiVersion: string } | null;
  swarm: { state: string; nodeId: string | null; manager: boolean } | null;
}

export async function engineState(paths: EngineHostPaths): Promise<EngineState> {
  const docker = localEngine(paths);
  try {
    const v = await docker.system.version();
    const info = await docker.system.info();
    return {
      reported: { version: v.Version, apiVersion: v.ApiVersion },
      swarm: { state: info.Swarm?.LocalNodeState || 'inactive', nodeId: info.Swarm?.NodeID || null, manager: info.Swarm?.ControlAvailable === true },
    };
  } catch {
    return { reported: null, swarm: null };
  } finally {
    await docker.close();
  }
}
