/**
 * Runs the pipeline table (pipeline.ts): the bundle-wide steps once,
 * journaled on every stack's deployment, then each stack's steps in turn.
 * Each step is recorded before its side effect and after it; a failure does
 * what the table says for that step.
 */
import { asAirlockError } from '../errors/index.js';
import { crashPoint, ProcessStop } from '../process/fault.js';
import type { ServiceProgress } from '../stack/converge.js';
import { planStack } from '../stack/plan.js';
import { readStackState } from '../stack/state.js';
import type { DesiredStack, Plan } from '../stack/types.js';
import type { PipelineContext } from './context.js';
import { BUNDLE_RULES, STACK_RULES, type BundleSteps, type BundleWork, type StackStep, type StepRule } from './pipeline.js';
import { restorePrevious } from './restore.js';
import type { StackWork } from './stack-steps.js';

export interface PipelineRun {
  /** One deployment per stack, started by the caller. */
  stacks: { id: number; stack: string; desired: () => Promise<DesiredStack> }[];
  bundle: BundleSteps;
  /** Remove services that left the stack. */
  prune: boolean;
  /** `stack deploy` without --wait stops once the services were sent. */
  until?: StackStep;
}

export interface StackOutcome {
  id: number;
  stack: string;
  plan: Plan;
  converged: ServiceProgress[];
}

export async function runPipeline(ctx: PipelineContext, run: PipelineRun): Promise<StackOutcome[]> {
  const bundle: BundleWork = { ids: run.stacks.map((s) => s.id), images: new Map() };
  for (const rule of BUNDLE_RULES) {
    if (run.bundle[rule.step]) await runStep(ctx, rule, bundle.ids, undefined, () => rule.run(ctx, run.bundle, bundle));
  }
  const outcomes: StackOutcome[] = [];
  for (const s of run.stacks) {
    const work: StackWork = { ...s, images: bundle.images, prune: run.prune };
    for (const rule of STACK_RULES) {
      await runStep(ctx, rule, [s.id], s.stack, () => rule.run(ctx, work));
      if (rule.step === run.until) break;
    }
    outcomes.push({ id: s.id, stack: s.stack, plan: work.plan!, converged: work.converged ?? [] });
  }
  return outcomes;
}

/** One step of the table on its deployments; the failure rule applies when it throws. */
async function runStep(ctx: PipelineContext, rule: StepRule, ids: readonly number[], stack: string | undefined, body: () => Promise<void>): Promise<void> {
  try {
    await journaled(ctx, ids, rule.step, body);
  } catch (e) {
    if (e instanceof ProcessStop) throw e; // a simulated kill (fault.ts): as after SIGKILL, no failure rule runs
    await onFailure(ctx, rule, ids, stack, e);
  }
  if (rule.after) crashPoint(rule.after);
}

/** Recorded (fsynced) before the side effect and after it; a bundle-wide step on every deployment, the work once. */
async function journaled(ctx: PipelineContext, ids: readonly number[], step: StepRule['step'], body: () => Promise<void>): Promise<void> {
  const [first, ...rest] = ids;
  for (const id of rest) ctx.recorder.beginStep(id, step);
  const stepId = ctx.recorder.beginStep(first!, step);
  ctx.onApplyStep?.(first!, step);
  crashPoint(step);
  try {
    await body();
    ctx.recorder.endStep(stepId, 'ok');
  } catch (e) {
    if (e instanceof ProcessStop) throw e; // nor is the step closed: a kill leaves it open in the journal
    ctx.recorder.endStep(stepId, 'failed', asAirlockError(e).message);
    throw e;
  }
}

/** What the table says a failure does; rethrows unless the deployment goes on. */
async function onFailure(ctx: PipelineContext, rule: StepRule, ids: readonly number[], stack: string | undefined, e: unknown): Promise<void> {
  const err = asAirlockError(e);
  const failure = rule.onFailure;
  switch (failure.does) {
    case 'close-failed':
      for (const id of ids) ctx.recorder.finish(id, 'failed', err.message);
      throw e;
    case 'leave-for-recovery':
      throw e;
    case 'record-and-go-on':
      ctx.recorder.event({ kind: 'deployment.cleanup', outcome: 'failed', subject: stack, message: err.message });
      return;
    case 'restore-previous': {
      const id = ids[0]!;
      try {
        await restorePrevious(ctx, id, stack!);
      } catch (undo) {
        // The engine is gone (often why the step failed): the deployment stays running, for recovery.
        ctx.recorder.event({ kind: 'deployment.restore', outcome: 'failed', subject: stack, reason: err.reason, message: `left for recovery: ${asAirlockError(undo).message}`, details: { deployment: id } });
        throw e;
      }
      ctx.recorder.finish(id, 'rolled-back', `${failure.says}: ${err.message}`);
      if (failure.event) ctx.recorder.event({ kind: 'deployment.rollback', outcome: 'ok', subject: stack, reason: failure.event, message: err.message, details: { deployment: id } });
      throw e;
    }
  }
}

/**
 * Recovery's part for a deployment that committed but whose cleanup never
 * finished: the cleanup phase planned again, from the stack it recorded
 * against what the engine holds now, and run as its cleanup step. Journaled
 * as resumed once it ran; a failure is recorded as any cleanup's is.
 */
export async function resumeCleanup(ctx: PipelineContext, id: number, desired: DesiredStack): Promise<void> {
  const rule = STACK_RULES.find((r) => r.step === 'cleanup')!;
  const work: StackWork = { id, stack: desired.stack, desired: async () => desired, resolved: desired, images: new Map(), prune: true };
  await runStep(ctx, rule, [id], desired.stack, async () => {
    work.plan = planStack(desired, await readStackState(ctx.docker, desired.stack, ctx.signal), { prune: true });
    await rule.run(ctx, work);
    ctx.recorder.event({ kind: 'deployment.cleanup', outcome: 'ok', subject: desired.stack, reason: 'resumed', details: { deployment: id } });
  });
}
