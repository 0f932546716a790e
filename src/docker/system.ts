/** Daemon-wide reads: liveness, versions, and the info that tells swarm state. */
import type { CallOptions, DockerClient, PingResult } from './client.js';
import type { SystemInfo, VersionInfo } from './types.js';

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
