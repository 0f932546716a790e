/**
 * The engine as stack/, apply/ and the agent use it: exactly the calls they
 * make, picked from the concrete API classes so the signatures cannot drift.
 * `Docker` (index.ts) satisfies these structurally; so does the in-memory
 * fake engine of the tests (test/helpers/fake-engine.ts), which is why the
 * planner, convergence and the apply pipeline can run without a dockerd.
 */
import type { DockerClient } from './client.js';
import type { ImagesApi } from './images.js';
import type { ConfigsApi, NetworksApi, SecretsApi } from './objects.js';
import type { ServicesApi, TasksApi } from './services.js';
import type { NodesApi, SwarmApi } from './swarm.js';
import type { SystemApi } from './system.js';

/** What planning, deploying and waiting on a stack need: services, their tasks, the swarm's nodes and the stack's objects. */
export interface SwarmEngine {
  readonly client: Pick<DockerClient, 'endpoint' | 'apiVersion'>;
  readonly system: Pick<SystemApi, 'info' | 'version'>;
  readonly swarm: Pick<SwarmApi, 'init'>;
  readonly nodes: Pick<NodesApi, 'list'>;
  readonly services: Pick<ServicesApi, 'list' | 'inspect' | 'create' | 'update' | 'delete'>;
  readonly tasks: Pick<TasksApi, 'list'>;
  readonly networks: Pick<NetworksApi, 'list' | 'inspect' | 'create' | 'delete'>;
  readonly secrets: Pick<SecretsApi, 'list' | 'create' | 'delete'>;
  readonly configs: Pick<ConfigsApi, 'list' | 'create' | 'delete'>;
}

/** What finding, loading and tagging a bundle's images need. */
export interface ImageEngine {
  readonly system: Pick<SystemApi, 'info' | 'version'>;
  readonly images: Pick<ImagesApi, 'find' | 'inspect' | 'tag' | 'loadAll'>;
}

/** Everything an apply does to the engine: its stacks and its images. */
export type Engine = SwarmEngine & ImageEngine;
