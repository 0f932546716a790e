import type { SwarmEngine } from '../docker/engine.js';
import { isOutOfSequence, type ServiceSpec } from '../docker/index.js';
import type { Action, Step } from './types.js';

export interface ExecuteOptions {
  signal?: AbortSignal;
  /** Steps run at once within a phase. */
  parallel?: number;
  onStep?: (step: Step, outcome: 'start' | 'done') => void;
}

type Runner<A extends Action> = (docker: SwarmEngine, step: Extract<Step, { action: A }>, call: { signal?: AbortSignal }) => Promise<void>;

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
async function updateService(docker: SwarmEngine, step: Extract<Step, { action: 'update-service' }>, call: { signal?: AbortSignal }): Promise<void> {
  let version = step.version;
  let spec: ServiceSpec = step.spec;
  for (let attempt = 0; ; attempt++) {
    try {
      await docker.services.update(step.id, version, spec, call);
      return;
    } catch (e) {
      if (!isOutOfSequence(e) || attempt >= OUT_OF_SEQUENCE_RETRIES) throw e;
      const fresh = await docker.services.inspect(step.id, call);
      version = fresh.Version.Index;
      spec = { ...spec, TaskTemplate: { ...spec.TaskTemplate, ForceUpdate: fresh.Spec.TaskTemplate?.ForceUpdate ?? 0 } };
    }
  }
}

export async function runStep(docker: SwarmEngine, step: Step, opts: ExecuteOptions = {}): Promise<void> {
  opts.onStep?.(step, 'start');
  const runner = RUNNERS[step.action] as Runner<Action>;
  await runner(docker, step as never, opts.signal ? { signal: opts.signal } : {});
  opts.onStep?.(step, 'done');
}

/** Runs independent steps with bounded parallelism; the first failure stops new starts. */
export async function runPhase(docker: SwarmEngine, steps: readonly Step[], opts: ExecuteOptions = {}): Promise<void> {
  const queue = [...steps];
  let failure: unknown;
  const worker = async () => {
    while (queue.length > 0 && failure === undefined) {
      const step = queue.shift()!;
      try {
        await runStep(docker, step, opts);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.parallel ?? 8, queue.length) }, worker));
  if (failure !== undefined) throw failure;
}
