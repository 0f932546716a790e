/**
 * An in-memory swarm behind the engine interface of src/docker/engine.ts,
 * for in-process tests of the planner, convergence and the apply pipeline
 * (as docker/cli tests against its fakeClient). Its answers take their shape
 * from a real engine's recording (engine-fixtures.ts): the defaults it fills
 * into a stored spec, what a task carries, the objects' fields, and the
 * bodies of its 404/409/503 and out-of-sequence errors, turned into the same
 * typed errors the real client throws (fromHttpError).
 *
 * Time is mostly polls: every `tasks.list` moves each task one step
 * (fake-scheduler.ts; `failImage` sets how an image's tasks end). A pure
 * logic seam: every capability it stands in for keeps a test against a
 * real dockerd.
 */
import { randomBytes } from 'node:crypto';
import type { Engine } from '../../src/docker/engine.js';
import { fromHttpError, type CallOptions, type Filters } from '../../src/docker/index.js';
import type {
  Config,
  ConfigSpec,
  ImageInspect,
  Network,
  NetworkCreateRequest,
  Secret,
  SecretSpec,
  Service,
  NamedServiceSpec,
  ServiceSpec,
  SwarmNode,
  Task,
} from '../../src/docker/types.js';
import { stable } from '../../src/stack/spec-diff.js';
import { filledIn, loadEngineFixtures, withDefaults, type EngineFixtures } from './engine-fixtures.js';
import { newId, now, TaskScheduler, type TaskFailure } from './fake-scheduler.js';

type WithData<T> = Omit<T, 'Data'> & { Data?: string | Uint8Array };

const firstOf = (v: string | readonly string[] | undefined): readonly string[] | undefined => (typeof v === 'string' ? [v] : v);

/** Swarm's label filter: `k` (present) or `k=v`. */
function labelsMatch(labels: Record<string, string> | undefined, wanted: readonly string[] | undefined): boolean {
  return (wanted ?? []).every((w) => {
    const [k, ...v] = w.split('=');
    return v.length === 0 ? labels?.[k!] !== undefined : labels?.[k!] === v.join('=');
  });
}

/** Swarm's name filter matches prefixes (src/stack/bind.ts keeps exact names). */
const nameMatches = (name: string, wanted: readonly string[] | undefined) => wanted === undefined || wanted.some((w) => name.startsWith(w));

export class FakeEngine implements Engine {
  readonly fixtures: EngineFixtures;
  /** Every call made, `services.update my_app`, for tests that assert what was (not) sent. */
  readonly calls: string[] = [];
  private index: number;
  private readonly serviceDefaults: Record<string, unknown>;
  private readonly servicesById = new Map<string, Service>();
  private readonly scheduler: TaskScheduler;
  private readonly networksById = new Map<string, Network>();
  private readonly secretsById = new Map<string, Secret>();
  private readonly configsById = new Map<string, Config>();
  private readonly imagesByRef = new Map<string, ImageInspect>();
  private manager = true;

  /** `engine`: which recording shapes the answers, by version prefix (`20.10`, `28`). */
  constructor(engine = '20.10') {
    const f = loadEngineFixtures(engine);
    this.fixtures = f;
    this.index = f.serviceInspect.Version.Index;
    this.serviceDefaults = filledIn(f.serviceSent, f.serviceInspect.Spec);
    this.scheduler = new TaskScheduler(f, this.servicesById, () => this.bump());
  }

  // ---- test controls

  /** Tasks of `image` end in `failure` once started, instead of running. */
  failImage(image: string, failure: TaskFailure = { state: 'rejected', err: this.fixtures.tasksFailed.find((t) => t.Status.Err)?.Status.Err?.replace(/: .*$/, `: ${image}`) ?? `No such image: ${image}` }): void {
    this.scheduler.fail(image, failure);
  }

  /** An image the engine holds, under `ref`. */
  addImage(ref: string, id = `sha256:${randomBytes(32).toString('hex')}`): ImageInspect {
    const image: ImageInspect = { Id: id, RepoTags: [ref], RepoDigests: [], Created: now(), Size: 0, Architecture: 'amd64', Os: 'linux', RootFS: { Type: 'layers', Layers: [] } };
    this.imagesByRef.set(ref, image);
    this.imagesByRef.set(id, image);
    return image;
  }

  /** The node stops being a manager: swarm calls answer the recorded 503. */
  demote(): void {
    this.manager = false;
  }

  /** The tasks as they are, without moving them on. */
  get tasksNow(): readonly Task[] {
    return this.scheduler.list;
  }

  // ---- the engine interface

  readonly client = {
    endpoint: 'fake-engine',
    apiVersion: async (_opts?: CallOptions): Promise<string> => this.fixtures.apiVersion,
  };

  readonly system = {
    info: async (_opts?: CallOptions) => {
      const info = structuredClone(this.fixtures.info);
      if (!this.manager) info.Swarm = { ...info.Swarm, LocalNodeState: 'inactive', ControlAvailable: false };
      return info;
    },
    version: async (_opts?: CallOptions) => structuredClone(this.fixtures.version),
  };

  readonly swarm = {
    init: async (): Promise<string> => {
      this.manager = true;
      return this.fixtures.nodes[0]!.ID;
    },
  };

  readonly nodes = {
    list: async (_opts?: CallOptions & { filters?: Filters }): Promise<SwarmNode[]> => {
      this.swarmCall('GET', '/nodes');
      return structuredClone(this.fixtures.nodes);
    },
  };

  readonly services = {
    create: async (spec: ServiceSpec) => {
      this.swarmCall('POST', '/services/create', `services.create ${spec.Name}`);
      if ([...this.servicesById.values()].some((s) => s.Spec.Name === spec.Name)) throw this.recorded('409-service-exists', 'POST', '/services/create', spec.Name!);
      const stored = this.store(spec);
      const service: Service = { ID: newId(), Version: { Index: this.bump() }, CreatedAt: now(), UpdatedAt: now(), Spec: stored, Endpoint: this.endpointOf(stored) };
      this.servicesById.set(service.ID, service);
      this.scheduler.schedule(service, true);
      return { ...structuredClone(this.fixtures.serviceCreate), ID: service.ID };
    },
    inspect: async (idOrName: string, _opts?: CallOptions & { insertDefaults?: boolean }) => {
      this.swarmCall('GET', `/services/${idOrName}`);
      return structuredClone(this.service(idOrName));
    },
    update: async (idOrName: string, version: number, spec: ServiceSpec, _opts?: CallOptions & { rollback?: 'previous' }) => {
      this.swarmCall('POST', `/services/${idOrName}/update`, `services.update ${spec.Name}`);
      const service = this.service(idOrName);
      if (version !== service.Version.Index) throw this.recorded('out-of-sequence', 'POST', `/services/${idOrName}/update`, idOrName);
      const stored = this.store(spec);
      const redeploy = stable(this.scheduler.carried(stored)) !== stable(this.scheduler.carried(service.Spec));
      service.PreviousSpec = service.Spec;
      service.Spec = stored;
      service.Version = { Index: this.bump() };
      service.UpdatedAt = now();
      service.Endpoint = this.endpointOf(stored);
      if (redeploy) service.UpdateStatus = { State: 'updating', StartedAt: now(), Message: 'update in progress' };
      this.scheduler.schedule(service, redeploy);
      return structuredClone(this.fixtures.serviceUpdate);
    },
    list: async (opts: CallOptions & { filters?: Filters; status?: boolean } = {}) => {
      this.swarmCall('GET', '/services');
      const f = opts.filters ?? {};
      return [...this.servicesById.values()]
        .filter((s) => nameMatches(s.Spec.Name, firstOf(f['name'])) && labelsMatch(s.Spec.Labels, firstOf(f['label'])) && (f['id'] === undefined || firstOf(f['id'])!.includes(s.ID)))
        .map((s) => (opts.status ? { ...structuredClone(s), ServiceStatus: this.scheduler.statusOf(s) } : structuredClone(s)));
    },
    delete: async (idOrName: string) => {
      this.swarmCall('DELETE', `/services/${idOrName}`, `services.delete ${idOrName}`);
      const service = this.service(idOrName);
      this.servicesById.delete(service.ID);
      this.scheduler.remove(service.ID);
    },
  };

  readonly tasks = {
    list: async (opts: CallOptions & { filters?: Filters } = {}): Promise<Task[]> => {
      this.swarmCall('GET', '/tasks');
      this.scheduler.tick();
      const f = opts.filters ?? {};
      const services = firstOf(f['service']);
      return this.scheduler.list
        .filter((t) => {
          const svc = this.servicesById.get(t.ServiceID);
          return (
            (services === undefined || services.includes(t.ServiceID) || (svc !== undefined && services.includes(svc.Spec.Name))) &&
            labelsMatch({ ...svc?.Spec.Labels, ...t.Spec.ContainerSpec?.Labels }, firstOf(f['label'])) &&
            (f['desired-state'] === undefined || firstOf(f['desired-state'])!.includes(t.DesiredState))
          );
        })
        .map((t) => structuredClone(t));
    },
  };

  readonly networks = {
    create: async (req: NetworkCreateRequest) => {
      this.swarmCall('POST', '/networks/create', `networks.create ${req.Name}`);
      if (this.findNetwork(req.Name)) throw this.recorded('409-network-exists', 'POST', '/networks/create', req.Name);
      const base = this.fixtures.networkInspect;
      const network: Network = { ...structuredClone(base), ...structuredClone(req), Id: newId(), Created: now(), Labels: req.Labels ?? {}, Scope: 'swarm' } as Network;
      this.networksById.set(network.Id, network);
      return { ...structuredClone(this.fixtures.networkCreate), Id: network.Id };
    },
    inspect: async (idOrName: string, _opts?: CallOptions & { verbose?: boolean; scope?: string }) => {
      const found = this.findNetwork(idOrName);
      if (!found) throw this.recorded('404-network', 'GET', `/networks/${idOrName}`, idOrName);
      return structuredClone(found);
    },
    list: async (opts: CallOptions & { filters?: Filters } = {}) => {
      const f = opts.filters ?? {};
      return [...this.networksById.values()].filter((n) => nameMatches(n.Name, firstOf(f['name'])) && labelsMatch(n.Labels ?? undefined, firstOf(f['label']))).map((n) => structuredClone(n));
    },
    delete: async (idOrName: string) => {
      this.calls.push(`networks.delete ${idOrName}`);
      const found = this.findNetwork(idOrName);
      if (!found) throw this.recorded('404-network', 'DELETE', `/networks/${idOrName}`, idOrName);
      this.networksById.delete(found.Id);
    },
  };

  readonly secrets = this.objects<Secret, SecretSpec>('secret', this.secretsById, () => this.fixtures.secretInspect, false);
  readonly configs = this.objects<Config, ConfigSpec>('config', this.configsById, () => this.fixtures.configInspect, true);

  readonly images = {
    find: async (name: string, _opts?: CallOptions) => structuredClone(this.imagesByRef.get(name)),
    inspect: async (name: string, _opts?: CallOptions) => {
      const found = this.imagesByRef.get(name);
      if (!found) throw fromHttpError(404, `No such image: ${name}`, { method: 'GET', path: `/v${this.fixtures.apiVersion}/images/${name}/json`, subject: name });
      return structuredClone(found);
    },
    tag: async (name: string, repo: string, tag: string, _opts?: CallOptions) => {
      const found = await this.images.inspect(name);
      this.imagesByRef.set(`${repo}:${tag}`, { ...found, RepoTags: [...found.RepoTags, `${repo}:${tag}`] });
    },
    loadAll: async (): Promise<never> => {
      throw new Error('the fake engine loads no image archives: give it images with addImage(ref)');
    },
  };

  // ---- the swarm's insides

  private bump(): number {
    this.index += 1 + Math.floor(Math.random() * 3);
    return this.index;
  }

  private swarmCall(method: string, path: string, record?: string): void {
    if (record) this.calls.push(record);
    if (!this.manager) throw this.recorded('503-not-manager', method, path, path);
  }

  /**
   * A recorded error answer, its recorded names replaced by `subject`, as the
   * real client throws it. A recording without it (the 503 is recorded only
   * from an engine started outside a swarm) borrows another engine's. A
   * config's answers are its secret's, said of a config, as swarm says them.
   */
  private recorded(name: string, method: string, path: string, subject: string, kind: 'secret' | 'config' = 'secret'): Error {
    const rec = this.fixtures.errors[name] ?? loadEngineFixtures('').errors[name];
    if (!rec) throw new Error(`no engine recording has error-${name}.json: run scripts/record-engine`);
    const message = rec.body.message.replace(/STACK_\w+/g, subject).replace(/\bsecret\b/g, kind);
    return fromHttpError(rec.status, message, { method, path: `/v${this.fixtures.apiVersion}${path}`, subject });
  }

  private service(idOrName: string): Service {
    const found = this.servicesById.get(idOrName) ?? [...this.servicesById.values()].find((s) => s.Spec.Name === idOrName);
    if (!found) throw this.recorded('404-service', 'GET', `/services/${idOrName}`, idOrName);
    return found;
  }

  private findNetwork(idOrName: string): Network | undefined {
    return this.networksById.get(idOrName) ?? [...this.networksById.values()].find((n) => n.Name === idOrName);
  }

  /** The spec as the engine keeps it: the recorded defaults filled in, networks named by id. */
  private store(spec: ServiceSpec): NamedServiceSpec {
    // Swarm names a service created without a name.
    const stored = withDefaults({ ...structuredClone(spec), Name: spec.Name ?? `service-${newId().slice(0, 8)}` }, this.serviceDefaults);
    for (const n of stored.TaskTemplate?.Networks ?? []) {
      const network = this.findNetwork(n.Target);
      if (!network) throw this.recorded('404-network', 'POST', '/services/create', n.Target);
      n.Target = network.Id;
    }
    return stored;
  }

  private endpointOf(spec: ServiceSpec): Service['Endpoint'] {
    return { Spec: {}, VirtualIPs: (spec.TaskTemplate?.Networks ?? []).map((n, i) => ({ NetworkID: n.Target, Addr: `10.0.${i + 1}.2/24` })) };
  }

  /** Secrets and configs: the same calls, shaped by their own recording. */
  private objects<T extends Secret | Config, S extends SecretSpec | ConfigSpec>(kind: 'secret' | 'config', byId: Map<string, T>, recorded: () => T, keepsData: boolean) {
    const find = (idOrName: string) => byId.get(idOrName) ?? [...byId.values()].find((o) => o.Spec.Name === idOrName);
    return {
      create: async (spec: WithData<S>) => {
        this.swarmCall('POST', `/${kind}s/create`, `${kind}s.create ${spec.Name}`);
        if (find(spec.Name)) throw this.recorded('409-secret-exists', 'POST', `/${kind}s/create`, spec.Name, kind);
        const { Data, ...rest } = spec;
        const data = Data === undefined ? undefined : typeof Data === 'string' ? Data : Buffer.from(Data).toString('base64');
        const object = { ...structuredClone(recorded()), ID: newId(), Version: { Index: this.bump() }, CreatedAt: now(), UpdatedAt: now(), Spec: { ...rest, ...(keepsData && data !== undefined ? { Data: data } : {}) } } as T;
        byId.set(object.ID, object);
        return { ID: object.ID };
      },
      list: async (opts: CallOptions & { filters?: Filters } = {}) => {
        this.swarmCall('GET', `/${kind}s`);
        const f = opts.filters ?? {};
        return [...byId.values()].filter((o) => nameMatches(o.Spec.Name, firstOf(f['name'])) && labelsMatch(o.Spec.Labels, firstOf(f['label']))).map((o) => structuredClone(o));
      },
      delete: async (idOrName: string) => {
        this.swarmCall('DELETE', `/${kind}s/${idOrName}`, `${kind}s.delete ${idOrName}`);
        const found = find(idOrName);
        if (!found) throw this.recorded('404-secret', 'DELETE', `/${kind}s/${idOrName}`, idOrName, kind);
        byId.delete(found.ID);
      },
    };
  }
}
