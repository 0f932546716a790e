/** Daemon-wide reads: liveness, versions, and the info that tells swarm state. */
import type { CallOptions, DockerClient, PingResult } from './client.js';
import type { SystemInfo, VersionInfo } from './types.js';

/**
 * The image store the engine uses: the containerd image store (Docker 29's
 * default, an option from 25 on) reports a snapshotter driver type; the classic
 * store, a graph driver such as overlay2.
 */
export function imageStoreOf(info: Pick<SystemInfo, 'DriverStatus'>): 'containerd' | 'classic' {
  return (info.DriverStatus ?? []).some(([k, v]) => k === 'driver-type' && v.startsWith('io.containerd.snapshotter')) ? 'containerd' : 'classic';
}

export class SystemApi {
  constructor(private readonly c: DockerClient) {}

  ping(opts: CallOptions = {}): Promise<PingResult> {
    return this.c.ping(opts);
  }

  version(opts: CallOptions = {}): Promise<VersionInfo> {
    return this.c.json('GET', '/version', opts);
  }

  info(opts: CallOptions = {}): Promise<SystemInfo> {
    return this.c.json('GET', '/info', opts);
  }
}
