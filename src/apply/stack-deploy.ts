import type { Engine } from '../docker/engine.js';
import type { ServiceProgress } from '../stack/converge.js';
import { DEFAULT_TIMEOUT_MS } from '../stack/deploy.js';
import type { ExecuteOptions } from '../stack/execute.js';
import type { DesiredStack, Plan } from '../stack/types.js';
import { NO_RECORDS } from './recorder.js';
import { runPipeline } from './run-pipeline.js';

export interface StackDeployOptions extends ExecuteOptions {
  prune?: boolean;
  /** Wait until every service converged; required for cleanup of replaced secrets and configs. */
  wait?: boolean;
  timeoutMs?: number;
  /** How long services must run steadily to count as converged (src/stack/converge.ts); default stableWindowMs(). */
  stableMs?: number;
  /** How often convergence looks at the tasks; default 1 s. */
  pollMs?: number;
  onProgress?: (status: ServiceProgress[]) => void;
  /** What went wrong but did not stop the deploy (a cleanup that failed). */
  onWarning?: (message: string) => void;
}

export interface StackDeployResult {
  plan: Plan;
  converged?: ServiceProgress[];
}

/**
 * `airlock stack deploy`: the apply pipeline's per-stack steps, prepare,
 * services and (when waiting) converge and cleanup, with nothing recorded:
 * no journal, and so no previous specs to restore when a step fails.
 */
export async function deployStack(docker: Engine, desired: DesiredStack, opts: StackDeployOptions = {}): Promise<StackDeployResult> {
  const [outcome] = await runPipeline(
    {
      docker,
      // No journal, so nothing to restore or recover: of what the pipeline records, only a failed
      // cleanup is worth saying (the deploy stands; the error of a failed step is thrown).
      recorder: { ...NO_RECORDS, event: (e) => void (e.kind === 'deployment.cleanup' && opts.onWarning?.(`cleanup: ${e.message ?? 'failed'}`)) },
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      ...(opts.stableMs === undefined ? {} : { stableMs: opts.stableMs }),
      ...(opts.pollMs === undefined ? {} : { pollMs: opts.pollMs }),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onChange ? { onChange: opts.onChange } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    },
    { stacks: [{ id: 0, stack: desired.stack, desired: async () => desired }], bundle: {}, prune: opts.prune ?? false, ...(opts.wait ? {} : { until: 'services' as const }) },
  );
  return opts.wait ? { plan: outcome!.plan, converged: outcome!.converged } : { plan: outcome!.plan };
}
