/**
 * The apply pipeline as one table: each step, whether it runs once per
 * bundle or once per stack, what it runs, what a failure of it does and what
 * recovery does with a deployment a crash interrupted there. `bundle apply`,
 * the agent's deploys, `rollback`, `recover` and `stack deploy` all read it;
 * docs/architecture.md prints it.
 */
import type { ApplyStep } from '../journal/deployments.js';
import type { CrashPoint } from '../process/fault.js';
import { cleanupStep, commitStep, convergeStep, prepareStep, servicesStep, type StackWork } from './stack-steps.js';
import type { PipelineContext } from './context.js';

/** What a failure of a step does to its deployments. */
export type OnFailure =
  /** Nothing touched a service: the deployments close as failed; the stacks run as before. */
  | { does: 'close-failed' }
  /**
   * Services may have changed: the specs recorded before are put back and the
   * deployment closes as rolled-back, saying `says`; when even that fails (the
   * engine is gone), it stays running, for recovery.
   */
  | { does: 'restore-previous'; says: string; event?: 'health-gate' }
  /** The deployment stays running: recovery decides at the next start, with the engine's state in hand. */
  | { does: 'leave-for-recovery' }
  /** The deployment stands: the failure is recorded; a later cleanup or prune finishes the work. */
  | { does: 'record-and-go-on' };

/** What recovery does with a deployment a crash interrupted at a step. */
export type OnCrash =
  /** Closed as failed: nothing needs undoing, and applying the bundle again resumes it. */
  | 'close-failed'
  /** Every service is put back to its recorded previous spec. */
  | 'restore-previous'
  /** Every change was sent: committed when the stack runs exactly its specs, healthy; otherwise restored. */
  | 'finish-or-restore'
  /** The deployment had committed: its cleanup is run again. */
  | 'resume-cleanup';

/** What the caller brings to the bundle-wide steps. A step it does not bring is not run: a rollback has no verify or store. */
export interface BundleSteps {
  verify?: () => Promise<void>;
  /** Stores (or finds) the bundle's blobs; the bundle's id in the journal. */
  store?: () => Promise<number>;
  /** Makes the images present; the image id each reference is pinned to. */
  load?: (work: BundleWork) => Promise<ReadonlyMap<string, string>>;
}

export type BundleStep = keyof BundleSteps;
export type StackStep = 'prepare' | 'services' | 'converge' | 'commit' | 'cleanup';

interface Rule {
  /** What the step does, for the docs and the reader. */
  runs: string;
  onFailure: OnFailure;
  onCrash: OnCrash;
  /** A crash point just after the step ended, for the fault tests. */
  after?: CrashPoint;
}
/** The bundle-wide steps' shared state: the deployments (one per stack) and the images the load pinned. */
export interface BundleWork {
  ids: readonly number[];
  /** The bundle the store step stored or found. */
  bundleId?: number;
  images: ReadonlyMap<string, string>;
}
export interface BundleRule extends Rule {
  step: BundleStep;
  scope: 'bundle';
  run: (ctx: PipelineContext, steps: BundleSteps, work: BundleWork) => Promise<void>;
}
export interface StackRule extends Rule {
  step: StackStep;
  scope: 'stack';
  run: (ctx: PipelineContext, work: StackWork) => Promise<void>;
}
export type StepRule = BundleRule | StackRule;

const closeFailed: OnFailure = { does: 'close-failed' };

export const PIPELINE: readonly StepRule[] = [
  { step: 'verify', scope: 'bundle', run: (_, s) => s.verify!(), runs: 'the anti-downgrade check against what was applied here', onFailure: closeFailed, onCrash: 'close-failed' },
  {
    step: 'store',
    scope: 'bundle',
    run: async (ctx, s, w) => {
      w.bundleId = await s.store!();
      for (const id of w.ids) ctx.recorder.setBundle(id, w.bundleId);
    },
    runs: 'every blob verified into the content store, or found there',
    onFailure: closeFailed,
    onCrash: 'close-failed',
  },
  {
    step: 'load',
    scope: 'bundle',
    run: async (_, s, w) => void (w.images = await s.load!(w)),
    runs: 'the images loaded into the engine (a rollback restores them from the store)',
    onFailure: closeFailed,
    onCrash: 'close-failed',
  },
  { step: 'prepare', scope: 'stack', run: prepareStep, runs: 'the stack converted; networks, secrets and configs recorded and created', onFailure: closeFailed, onCrash: 'close-failed' },
  {
    step: 'services',
    scope: 'stack',
    run: servicesStep,
    runs: 'services created, updated and pruned, the specs before and after recorded first',
    onFailure: { does: 'restore-previous', says: 'updating services failed, restored the previous specs' },
    onCrash: 'restore-previous',
  },
  {
    step: 'converge',
    scope: 'stack',
    run: convergeStep,
    runs: 'the health gate: every task of every service running its new spec, stable',
    onFailure: { does: 'restore-previous', says: 'did not converge, rolled back to the previous specs', event: 'health-gate' },
    onCrash: 'finish-or-restore',
  },
  { step: 'commit', scope: 'stack', run: commitStep, runs: 'the deployment marked committed', onFailure: { does: 'leave-for-recovery' }, onCrash: 'finish-or-restore', after: 'after-commit' },
  { step: 'cleanup', scope: 'stack', run: cleanupStep, runs: 'secrets and configs no spec uses any more removed', onFailure: { does: 'record-and-go-on' }, onCrash: 'resume-cleanup' },
];

export const BUNDLE_RULES = PIPELINE.filter((r): r is BundleRule => r.scope === 'bundle');
export const STACK_RULES = PIPELINE.filter((r): r is StackRule => r.scope === 'stack');

/** The rule of a journaled step; 'done' (no step left) is recovered as the last one. */
export function ruleOf(step: ApplyStep): StepRule {
  return PIPELINE.find((r) => r.step === step) ?? PIPELINE.at(-1)!;
}
