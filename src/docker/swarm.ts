/** Swarm membership and nodes: what `cluster up` and the agent's first boot need. */
import type { CallOptions, DockerClient } from './client.js';
import { type Filters, encodeFilters, pathName } from './query.js';
import type { JoinTokens, NodeSpec, SwarmInitRequest, SwarmInspect, SwarmJoinRequest, SwarmNode, SwarmSpec } from './types.js';

export class SwarmApi {
  constructor(private readonly c: DockerClient) {}

  /** Throws reason `not-swarm-manager` when this node is not a manager (or in no swarm). */
  inspect(opts: CallOptions = {}): Promise<SwarmInspect> {
    return this.c.json('GET', '/swarm', opts);
  }

  /** Returns the new node's ID. */
  init(req: SwarmInitRequest, opts: CallOptions = {}): Promise<string> {
    return this.c.json('POST', '/swarm/init', { ...opts, json: req });
  }

  join(req: SwarmJoinRequest, opts: CallOptions = {}): Promise<void> {
    return this.c.send('POST', '/swarm/join', { ...opts, json: req });
  }

  leave(opts: CallOptions & { force?: boolean } = {}): Promise<void> {
    const { force, ...call } = opts;
    return this.c.send('POST', '/swarm/leave', { ...call, query: { force } });
  }

  /** `version` is SwarmInspect.Version.Index; a stale one fails with OutOfSequenceError. */
  update(
    version: number,
    spec: SwarmSpec,
    opts: CallOptions & { rotateWorkerToken?: boolean; rotateManagerToken?: boolean } = {},
  ): Promise<void> {
    const { rotateWorkerToken, rotateManagerToken, ...call } = opts;
    return this.c.send('POST', '/swarm/update', {
      ...call,
      json: spec,
      query: { version, rotateWorkerToken, rotateManagerToken },
    });
  }

  async joinTokens(opts: CallOptions = {}): Promise<JoinTokens> {
    return (await this.inspect(opts)).JoinTokens;
  }
}

export class NodesApi {
  constructor(private readonly c: DockerClient) {}

  list(opts: CallOptions & { filters?: Filters } = {}): Promise<SwarmNode[]> {
    const { filters, ...call } = opts;
    return this.c.json('GET', '/nodes', { ...call, query: { filters: encodeFilters(filters) } });
  }

  inspect(id: string, opts: CallOptions = {}): Promise<SwarmNode> {
    return this.c.json('GET', `/nodes/${pathName(id)}`, { ...opts, subject: id });
  }

  /** The whole spec is replaced: read, change, write back with the version read. */
  update(id: string, version: number, spec: NodeSpec, opts: CallOptions = {}): Promise<void> {
    return this.c.send('POST', `/nodes/${pathName(id)}/update`, {
      ...opts,
      json: spec,
      query: { version },
      subject: id,
    });
  }

  remove(id: string, opts: CallOptions & { force?: boolean } = {}): Promise<void> {
    const { force, ...call } = opts;
    return this.c.send('DELETE', `/nodes/${pathName(id)}`, { ...call, query: { force }, subject: id });
  }
}
