/** Services and their tasks: what deploy, health waits and rollback need. */
import type { CallOptions, DockerClient } from './client.js';
import { type Filters, encodeFilters, pathName } from './query.js';
import type { Service, ServiceCreateResponse, ServiceSpec, ServiceUpdateResponse, Task } from './types.js';

export class ServicesApi {
  constructor(private readonly c: DockerClient) {}

  create(spec: ServiceSpec, opts: CallOptions = {}): Promise<ServiceCreateResponse> {
    return this.c.json('POST', '/services/create', { ...opts, json: spec, subject: spec.Name });
  }

  inspect(idOrName: string, opts: CallOptions & { insertDefaults?: boolean } = {}): Promise<Service> {
    const { insertDefaults, ...call } = opts;
    return this.c.json('GET', `/services/${pathName(idOrName)}`, {
      ...call,
      query: { insertDefaults },
      subject: idOrName,
    });
  }

  /**
   * Replaces the spec. `version` is Service.Version.Index as read; when someone
   * else changed the service since, this throws OutOfSequenceError: re-read
   * and retry. `rollback: 'previous'` makes the daemon restore PreviousSpec.
   */
  update(
    idOrName: string,
    version: number,
    spec: ServiceSpec,
    opts: CallOptions & { rollback?: 'previous' } = {},
  ): Promise<ServiceUpdateResponse> {
    const { rollback, ...call } = opts;
    return this.c.json('POST', `/services/${pathName(idOrName)}/update`, {
      ...call,
      json: spec,
      query: { version, rollback },
      subject: idOrName,
    });
  }

  /** `status: true` fills ServiceStatus (running/desired task counts). */
  list(opts: CallOptions & { filters?: Filters; status?: boolean } = {}): Promise<Service[]> {
    const { filters, status, ...call } = opts;
    return this.c.json('GET', '/services', { ...call, query: { filters: encodeFilters(filters), status } });
  }

  delete(idOrName: string, opts: CallOptions = {}): Promise<void> {
    return this.c.send('DELETE', `/services/${pathName(idOrName)}`, { ...opts, subject: idOrName });
  }
}

export class TasksApi {
  constructor(private readonly c: DockerClient) {}

  /** Filters: `service`, `node`, `desired-state`, `label`, `name`, `id`. */
  list(opts: CallOptions & { filters?: Filters } = {}): Promise<Task[]> {
    const { filters, ...call } = opts;
    return this.c.json('GET', '/tasks', { ...call, query: { filters: encodeFilters(filters) } });
  }

  inspect(id: string, opts: CallOptions = {}): Promise<Task> {
    return this.c.json('GET', `/tasks/${pathName(id)}`, { ...opts, subject: id });
  }
}
