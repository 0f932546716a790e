/**
 * The Docker Engine API client. `new Docker()` talks to DOCKER_HOST or
 * /var/run/docker.sock; pass `{ transport, endpoint }` to talk through SSH.
 */
import { DockerClient, type DockerClientOptions } from './client.js';
import { ImagesApi } from './images.js';
import { ConfigsApi, NetworksApi, SecretsApi } from './objects.js';
import { ServicesApi, TasksApi } from './services.js';
import { NodesApi, SwarmApi } from './swarm.js';
import { SystemApi } from './system.js';

export class Docker {
  readonly client: DockerClient;
  readonly system: SystemApi;
  readonly images: ImagesApi;
  readonly swarm: SwarmApi;
  readonly nodes: NodesApi;
  readonly services: ServicesApi;
  readonly tasks: TasksApi;
  readonly networks: NetworksApi;
  readonly secrets: SecretsApi;
  readonly configs: ConfigsApi;

  constructor(options: DockerClientOptions | DockerClient = {}) {
    const c = options instanceof DockerClient ? options : new DockerClient(options);
    this.client = c;
    this.system = new SystemApi(c);
    this.images = new ImagesApi(c);
    this.swarm = new SwarmApi(c);
    this.nodes = new NodesApi(c);
    this.services = new ServicesApi(c);
    this.tasks = new TasksApi(c);
    this.networks = new NetworksApi(c);
    this.secrets = new SecretsApi(c);
    this.configs = new ConfigsApi(c);
  }

  get endpoint(): string {
    return this.client.endpoint;
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

export * from './api-version.js';
export * from './client.js';
export * from './query.js';
export * from './errors.js';
export * from './progress.js';
export { isShutdownAnswer } from './transient.js';
export * from './transport.js';
export type * from './types.js';
export { ImagesApi, type LoadResult } from './images.js';
export { ConfigsApi, NetworksApi, SecretsApi } from './objects.js';
export { ServicesApi, TasksApi } from './services.js';
export { NodesApi, SwarmApi } from './swarm.js';
export { SystemApi, imageStoreOf } from './system.js';
