import type { SwarmEngine } from '../docker/engine.js';
import { isOutOfSequence, type ServiceSpec } from '../docker/index.js';
import type { Action, Change } from './types.js';

export interface ExecuteOptions {
  signal?: AbortSignal;
  /** Changes run at once within a phase. */
  parallel?: number;
  onChange?: (change: Change, outcome: 'start' | 'done') => void;
}

type Runner<A extends Action> = (docker: SwarmEngine, change: Extract<Change, { action: A }>, call: { signal?: AbortSignal }) => Promise<void>;

const OUT_OF_SEQUENCE_RETRIES = 5;

/** What each action does to the engine. */
const RUNNERS: { [A in Action]: Runner<A> } = {
  'create-network': async (d, s, call) => void (await d.networks.create(s.network, call)),
  'create-secret': async (d, s, call) => void (await d.secrets.create(s.secret, call)),
  'create-config': async (d, s, call) => void (await d.configs.create(s.config, call)),
  'create-service': async (d, s, call) => void (await d.services.create(s.spec, call)),
  'update-service': updateService,
  'remove-service': (d, s, call) => d.services.delete(s.id, call),
  'remove-secret': (d, s, call) => d.secrets.delete(s.id, call),
  'remove-config': (d, s, call) => d.configs.delete(s.id, call),
  'remove-network': (d, s, call) => d.networks.delete(s.id, call),
};

/**
 * Updates with the version read at plan time; when someone else changed the
 * service since ("update out of sequence"), re-reads it and tries again.
 */
async function updateService(docker: SwarmEngine, change: Extract<Change, { action: 'update-service' }>, call: { signal?: AbortSignal }): Promise<void> {
  let version = change.version;
  let spec: ServiceSpec = change.spec;
  for (let attempt = 0; ; attempt++) {
    try {
      await docker.services.update(change.id, version, spec, call);
      return;
    } catch (e) {
      if (!isOutOfSequence(e) || attempt >= OUT_OF_SEQUENCE_RETRIES) throw e;
      const fresh = await docker.services.inspect(change.id, call);
      version = fresh.Version.Index;
      spec = { ...spec, TaskTemplate: { ...spec.TaskTemplate, ForceUpdate: fresh.Spec.TaskTemplate?.ForceUpdate ?? 0 } };
    }
  }
}

export async function runChange(docker: SwarmEngine, change: Change, opts: ExecuteOptions = {}): Promise<void> {
  opts.onChange?.(change, 'start');
  const runner = RUNNERS[change.action] as Runner<Action>;
  await runner(docker, change as never, opts.signal ? { signal: opts.signal } : {});
  opts.onChange?.(change, 'done');
}

/** Runs independent changes with bounded parallelism; the first failure stops new starts. */
export async function runPhase(docker: SwarmEngine, changes: readonly Change[], opts: ExecuteOptions = {}): Promise<void> {
  const queue = [...changes];
  let failure: unknown;
  const worker = async () => {
    while (queue.length > 0 && failure === undefined) {
      const change = queue.shift()!;
      try {
        await runChange(docker, change, opts);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.parallel ?? 8, queue.length) }, worker));
  if (failure !== undefined) throw failure;
}
