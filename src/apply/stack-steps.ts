/**
 * What each per-stack step of the pipeline runs (pipeline.ts says when, and
 * what a failure does). The work carries what one step hands the next: the
 * desired stack, the plan, the convergence.
 */
import type { NamedServiceSpec } from '../docker/index.js';
import { familiarRef } from '../images/reference.js';
import type { ServiceRecord } from '../journal/deployments.js';
import { crashArmed, crashPoint } from '../process/fault.js';
import { bindIds } from '../stack/bind.js';
import { waitForConvergence, type ConvergeOptions, type ServiceProgress } from '../stack/converge.js';
import { runPhase, type ExecuteOptions } from '../stack/execute.js';
import { planStack } from '../stack/plan.js';
import { readStackState } from '../stack/state.js';
import type { DesiredStack, Plan, Change } from '../stack/types.js';
import type { PipelineContext } from './context.js';

/** One stack's deployment as it goes through the steps. */
export interface StackWork {
  id: number;
  stack: string;
  /** The stack the deployment should make; converted in the prepare step, so a bad file fails there. */
  desired: () => Promise<DesiredStack>;
  /** The image id each reference is pinned to (the load step's answer). */
  images: ReadonlyMap<string, string>;
  prune: boolean;
  resolved?: DesiredStack;
  prepared?: Change[];
  plan?: Plan;
  converged?: ServiceProgress[];
}

/** The health gate's settings of a context: the same for a deploy, a restore and a recovery. A restore is not cut short by the signal that stopped the deploy. */
export const convergeOptions = (ctx: PipelineContext, abortable = true): ConvergeOptions => ({
  timeoutMs: ctx.timeoutMs,
  ...(ctx.stableMs === undefined ? {} : { stableMs: ctx.stableMs }),
  ...(ctx.pollMs === undefined ? {} : { pollMs: ctx.pollMs }),
  ...(ctx.signal && abortable ? { signal: ctx.signal } : {}),
});

const execOf = (ctx: PipelineContext): ExecuteOptions => ({ ...(ctx.signal ? { signal: ctx.signal } : {}), ...(ctx.onChange ? { onChange: ctx.onChange } : {}) });

export async function prepareStep(ctx: PipelineContext, w: StackWork): Promise<void> {
  const desired = (w.resolved = await w.desired());
  await ctx.recorder.recordObjects(w.id, desired);
  const before = await readStackState(ctx.docker, w.stack, ctx.signal);
  w.prepared = planStack(desired, before, { prune: w.prune }).prepare;
  await runPhase(ctx.docker, w.prepared, execOf(ctx));
}

export async function servicesStep(ctx: PipelineContext, w: StackWork): Promise<void> {
  const { docker } = ctx;
  const current = await readStackState(docker, w.stack, ctx.signal);
  const bound = await bindIds(docker, w.resolved!, { allowMissing: false });
  const plan = planStack(bound, current, { prune: w.prune });
  const currentSpecs = new Map(current.services.map((s) => [s.Spec.Name, s.Spec]));
  ctx.recorder.recordServices(w.id, serviceRecords(plan, currentSpecs, bound.services, w.images));
  w.plan = { ...plan, prepare: w.prepared ?? [] };
  let done = 0;
  await runPhase(docker, plan.services, {
    ...execOf(ctx),
    // Changes run in parallel; armed for services-mid they run one at a time, so the kill
    // lands with exactly one change made and the others not yet sent: a real mix.
    ...(crashArmed('services-mid') ? { parallel: 1 } : {}),
    onChange: (step, phase) => {
      ctx.onChange?.(step, phase);
      if (phase === 'done' && ++done === 1) crashPoint('services-mid');
    },
  });
}

export async function convergeStep(ctx: PipelineContext, w: StackWork): Promise<void> {
  w.converged = await waitForConvergence(ctx.docker, w.resolved!.services.map((s) => s.Name), { ...convergeOptions(ctx), ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}) });
}

export async function commitStep(ctx: PipelineContext, w: StackWork): Promise<void> {
  ctx.recorder.finish(w.id, 'committed');
}

export async function cleanupStep(ctx: PipelineContext, w: StackWork): Promise<void> {
  await runPhase(ctx.docker, w.plan!.cleanup, execOf(ctx));
}

/**
 * What the deployment does to each service of the stack: the exact spec
 * before (as the engine holds it) and after, and the image id each new spec
 * is pinned to. Untouched services are recorded too, so that a deployment is
 * a complete picture of the stack for rollback.
 */
function serviceRecords(plan: Plan, current: Map<string, NamedServiceSpec>, desired: NamedServiceSpec[], images: ReadonlyMap<string, string>): ServiceRecord[] {
  const records = new Map<string, ServiceRecord>();
  const pin = (spec: NamedServiceSpec | null) => {
    const ref = spec?.TaskTemplate?.ContainerSpec?.Image ?? null;
    return { imageRef: ref, imageId: ref === null ? null : images.get(familiarRef(ref)) ?? null };
  };
  for (const [name, spec] of current) records.set(name, { name, before: spec, after: spec, ...pin(spec) });
  for (const spec of desired) records.set(spec.Name, { name: spec.Name, before: current.get(spec.Name) ?? null, after: spec, ...pin(spec) });
  for (const step of plan.services) {
    if (step.action === 'remove-service') records.set(step.name, { name: step.name, before: current.get(step.name) ?? null, after: null, imageRef: null, imageId: null });
  }
  return [...records.values()];
}
