/** Networks, secrets and configs: the named objects a stack declares next to its services. */
import type { CallOptions, DockerClient } from './client.js';
import { type Filters, encodeFilters, pathName } from './query.js';
import type {
  Config,
  ConfigSpec,
  IdResponse,
  Network,
  NetworkCreateRequest,
  NetworkCreateResponse,
  Secret,
  SecretSpec,
} from './types.js';

type WithData<T extends { Data?: string }> = Omit<T, 'Data'> & { Data?: string | Uint8Array };

// The API takes base64; callers usually hold bytes.
function encodeData<T extends { Data?: string }>(spec: WithData<T>): T {
  const { Data, ...rest } = spec;
  if (Data === undefined) return rest as unknown as T;
  return { ...rest, Data: typeof Data === 'string' ? Data : Buffer.from(Data).toString('base64') } as unknown as T;
}

export class NetworksApi {
  constructor(private readonly c: DockerClient) {}

  create(req: NetworkCreateRequest, opts: CallOptions = {}): Promise<NetworkCreateResponse> {
    return this.c.json('POST', '/networks/create', { ...opts, json: req, subject: req.Name });
  }

  inspect(idOrName: string, opts: CallOptions & { verbose?: boolean; scope?: string } = {}): Promise<Network> {
    const { verbose, scope, ...call } = opts;
    return this.c.json('GET', `/networks/${pathName(idOrName)}`, {
      ...call,
      query: { verbose, scope },
      subject: idOrName,
    });
  }

  list(opts: CallOptions & { filters?: Filters } = {}): Promise<Network[]> {
    const { filters, ...call } = opts;
    return this.c.json('GET', '/networks', { ...call, query: { filters: encodeFilters(filters) } });
  }

  delete(idOrName: string, opts: CallOptions = {}): Promise<void> {
    return this.c.send('DELETE', `/networks/${pathName(idOrName)}`, { ...opts, subject: idOrName });
  }
}

export class SecretsApi {
  constructor(private readonly c: DockerClient) {}

  create(spec: WithData<SecretSpec>, opts: CallOptions = {}): Promise<IdResponse> {
    return this.c.json('POST', '/secrets/create', { ...opts, json: encodeData(spec), subject: spec.Name });
  }

  inspect(idOrName: string, opts: CallOptions = {}): Promise<Secret> {
    return this.c.json('GET', `/secrets/${pathName(idOrName)}`, { ...opts, subject: idOrName });
  }

  list(opts: CallOptions & { filters?: Filters } = {}): Promise<Secret[]> {
    const { filters, ...call } = opts;
    return this.c.json('GET', '/secrets', { ...call, query: { filters: encodeFilters(filters) } });
  }

  delete(idOrName: string, opts: CallOptions = {}): Promise<void> {
    return this.c.send('DELETE', `/secrets/${pathName(idOrName)}`, { ...opts, subject: idOrName });
  }
}

export class ConfigsApi {
  constructor(private readonly c: DockerClient) {}

  create(spec: WithData<ConfigSpec>, opts: CallOptions = {}): Promise<IdResponse> {
    return this.c.json('POST', '/configs/create', { ...opts, json: encodeData(spec), subject: spec.Name });
  }

  inspect(idOrName: string, opts: CallOptions = {}): Promise<Config> {
    return this.c.json('GET', `/configs/${pathName(idOrName)}`, { ...opts, subject: idOrName });
  }

  list(opts: CallOptions & { filters?: Filters } = {}): Promise<Config[]> {
    const { filters, ...call } = opts;
    return this.c.json('GET', '/configs', { ...call, query: { filters: encodeFilters(filters) } });
  }

  delete(idOrName: string, opts: CallOptions = {}): Promise<void> {
    return this.c.send('DELETE', `/configs/${pathName(idOrName)}`, { ...opts, subject: idOrName });
  }
}
