/**
 * What real engines answered to the calls the stack code makes, recorded by
 * scripts/record-engine into test/fixtures/engine/<engine version>/: the
 * shapes the fake engine (fake-engine.ts) gives its answers. The recording's
 * stack name is written STACK and its image IMAGE.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config, Network, NetworkCreateRequest, Secret, Service, ServiceSpec, SwarmNode, SystemInfo, Task, VersionInfo } from '../../src/docker/types.js';
import { REPO } from './fixtures.js';

const ENGINE_FIXTURES_DIR = join(REPO, 'test/fixtures/engine');

/** An error answer: the request that provoked it, its status and body. */
export interface RecordedError {
  request: { method: string; path: string };
  status: number;
  body: { message: string };
}

export interface EngineFixtures {
  /** The folder's name: the engine's version, e.g. `20.10.24+dfsg1`. */
  engine: string;
  apiVersion: string;
  version: VersionInfo;
  info: SystemInfo;
  nodes: SwarmNode[];
  networkSent: NetworkCreateRequest;
  networkCreate: { Id: string; Warning?: string };
  networkInspect: Network;
  secretCreate: { ID: string };
  secretInspect: Secret;
  configCreate: { ID: string };
  configInspect: Config;
  serviceSent: ServiceSpec;
  serviceCreate: { ID: string; Warnings?: string[] | null };
  serviceInspect: Service;
  serviceUpdate: { Warnings?: string[] | null };
  serviceInspectUpdated: Service;
  serviceListStatus: Service[];
  tasksRunning: Task[];
  tasksUpdated: Task[];
  tasksFailed: Task[];
  /** By the fixture's name without `error-`: `404-service`, `409-secret-exists`, `out-of-sequence`, `503-not-manager` (a row started outside a swarm only). */
  errors: Record<string, RecordedError>;
}

/** The recorded engines, oldest first. */
export function recordedEngines(): string[] {
  return readdirSync(ENGINE_FIXTURES_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

/** The recording of the engine whose version starts with `prefix` (`20.10`, `28`); the newest when several do. */
export function loadEngineFixtures(prefix: string): EngineFixtures {
  const engine = recordedEngines().filter((e) => e.startsWith(prefix)).at(-1);
  if (!engine) throw new Error(`no recording of an engine ${prefix} in ${ENGINE_FIXTURES_DIR}: run scripts/record-engine (README, Development)`);
  const dir = join(ENGINE_FIXTURES_DIR, engine);
  const read = <T>(name: string): T => JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as T;
  const errors: Record<string, RecordedError> = {};
  for (const f of readdirSync(dir)) if (f.startsWith('error-')) errors[f.slice('error-'.length, -'.json'.length)] = read<RecordedError>(f.slice(0, -'.json'.length));
  return {
    engine,
    apiVersion: read<{ apiVersion: string }>('recording').apiVersion,
    version: read('version'),
    info: read('info'),
    nodes: read('nodes'),
    networkSent: read('network-sent'),
    networkCreate: read('network-create'),
    networkInspect: read('network-inspect'),
    secretCreate: read('secret-create'),
    secretInspect: read('secret-inspect'),
    configCreate: read('config-create'),
    configInspect: read('config-inspect'),
    serviceSent: read('service-sent'),
    serviceCreate: read('service-create'),
    serviceInspect: read('service-inspect'),
    serviceUpdate: read('service-update'),
    serviceInspectUpdated: read('service-inspect-updated'),
    serviceListStatus: read('service-list-status'),
    tasksRunning: read('tasks-running'),
    tasksUpdated: read('tasks-updated'),
    tasksFailed: read('tasks-failed'),
    errors,
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * What the engine filled in: the fields of `stored` that `sent` left out, at
 * any depth of nested objects (arrays are taken as sent). Deep-merged into a
 * spec by withDefaults.
 */
export function filledIn(sent: unknown, stored: unknown): Record<string, unknown> {
  if (!isObject(sent) || !isObject(stored)) return {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(stored)) {
    if (!(k in sent)) out[k] = v;
    else if (isObject(v)) {
      const inner = filledIn(sent[k], v);
      if (Object.keys(inner).length > 0) out[k] = inner;
    }
  }
  return out;
}

/** `spec` with `defaults` put in where it says nothing, as the engine stores it. */
export function withDefaults<T>(spec: T, defaults: Record<string, unknown>): T {
  if (!isObject(spec)) return spec;
  const out: Record<string, unknown> = { ...spec };
  for (const [k, d] of Object.entries(defaults)) {
    if (!(k in out)) out[k] = structuredClone(d);
    else if (isObject(out[k]) && isObject(d)) out[k] = withDefaults(out[k], d);
  }
  return out as T;
}
