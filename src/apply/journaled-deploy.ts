import { asAirlockError, type AirlockError } from '../errors/index.js';
import type { Engine } from '../docker/engine.js';
import type { ServiceSpec } from '../docker/index.js';
import { familiarRef } from '../images/reference.js';
import type { Journal } from '../journal/journal.js';
import type { ApplyStep, DeploymentRecords, ObjectRecord, ServiceRecord } from '../journal/deployments.js';
import type { ContentStore } from '../store/content-store.js';
import { bindIds } from '../stack/bind.js';
import { waitForConvergence, type ServiceProgress } from '../stack/converge.js';
import { dataOf } from '../stack/data.js';
import { runPhase } from '../stack/execute.js';
import { planStack } from '../stack/plan.js';
import { readStackState } from '../stack/state.js';
import type { DesiredStack, Plan, Step } from '../stack/types.js';
import { crashArmed, crashPoint } from './fault.js';

export interface ApplyContext {
  docker: Engine;
  journal: Journal;
  deployments: DeploymentRecords;
  store: ContentStore;
  /** Convergence (health gate) timeout. */
  timeoutMs: number;
  signal?: AbortSignal;
  onStep?: (step: Step, phase: 'start' | 'done') => void;
  onProgress?: (status: ServiceProgress[]) => void;
  /** Journal steps as they begin, for progress output. */
  onApplyStep?: (deploymentId: number, step: ApplyStep) => void;
}

/** Runs one journaled step: its start is recorded (fsynced) before its side effect, its end after. */
export async function journaledStep<T>(ctx: ApplyContext, deploymentId: number, step: ApplyStep, run: () => Promise<T>): Promise<T> {
  const stepId = ctx.deployments.beginStep(deploymentId, step);
  ctx.onApplyStep?.(deploymentId, step);
  crashPoint(step);
  try {
    const result = await run();
    ctx.deployments.endStep(stepId, 'ok');
    return result;
  } catch (e) {
    ctx.deployments.endStep(stepId, 'failed', asAirlockError(e).message);
    throw e;
  }
}

/** Network, secret and config specs as the journal keeps them: data goes to the content store, never the journal. */
async function objectRecords(store: ContentStore, desired: DesiredStack): Promise<ObjectRecord[]> {
  const records: ObjectRecord[] = desired.networks.map((n) => ({ kind: 'network', name: n.Name, spec: { ...n }, dataDigest: null }));
  for (const [kind, list] of [['secret', desired.secrets], ['config', desired.configs]] as const) {
    for (const o of list) {
      const { Data, ...spec } = o;
      records.push({ kind, name: o.Name, spec, dataDigest: Data === undefined ? null : await store.putBytes(dataOf(Data)) });
    }
  }
  return records;
}

/**
 * What the deployment does to each service of the stack: the exact spec
 * before (as the engine holds it) and after, and the image id each new spec
 * is pinned to. Untouched services are recorded too, so that a deployment is
 * a complete picture of the stack for rollback.
 */
function serviceRecords(plan: Plan, current: Map<string, ServiceSpec>, desired: ServiceSpec[], images: ReadonlyMap<string, string>): ServiceRecord[] {
  const records = new Map<string, ServiceRecord>();
  const pin = (spec: ServiceSpec | null) => {
    const ref = spec?.TaskTemplate?.ContainerSpec?.Image ?? null;
    return { imageRef: ref, imageId: ref === null ? null : images.get(familiarRef(ref)) ?? null };
  };
  for (const [name, spec] of current) records.set(name, { name, before: spec, after: spec, ...pin(spec) });
  for (const spec of desired) records.set(spec.Name!, { name: spec.Name!, before: current.get(spec.Name!) ?? null, after: spec, ...pin(spec) });
  for (const step of plan.services) {
    if (step.action === 'remove-service') records.set(step.name, { name: step.name, before: current.get(step.name) ?? null, after: null, imageRef: null, imageId: null });
  }
  return [...records.values()];
}

/**
 * Deploys one stack as a journaled sequence: prepare, services, converge
 * (the health gate), commit, cleanup. A deploy that does not converge is
 * rolled back to the specs recorded before it, and the journal says why.
 */
export async function deployJournaled(
  ctx: ApplyContext,
  deploymentId: number,
  desired: DesiredStack,
  images: ReadonlyMap<string, string>,
  opts: { prune: boolean },
): Promise<ServiceProgress[]> {
  const { docker, deployments } = ctx;
  const exec = { ...(ctx.signal ? { signal: ctx.signal } : {}), ...(ctx.onStep ? { onStep: ctx.onStep } : {}) };
  try {
    await journaledStep(ctx, deploymentId, 'prepare', async () => {
      deployments.recordObjects(deploymentId, await objectRecords(ctx.store, desired));
      const before = await readStackState(docker, desired.stack, ctx.signal);
      await runPhase(docker, planStack(desired, before, opts).prepare, exec);
    });
  } catch (e) {
    // No service was touched: the stack runs as before.
    deployments.finish(deploymentId, 'failed', asAirlockError(e).message);
    throw e;
  }
  const plan = await undoOnFailure(ctx, deploymentId, desired.stack, () => journaledStep(ctx, deploymentId, 'services', async () => {
    const current = await readStackState(docker, desired.stack, ctx.signal);
    const bound = await bindIds(docker, desired, { allowMissing: false });
    const plan = planStack(bound, current, opts);
    const currentSpecs = new Map(current.services.map((s) => [s.Spec.Name!, s.Spec]));
    deployments.recordServices(deploymentId, serviceRecords(plan, currentSpecs, bound.services, images));
    let done = 0;
    await runPhase(docker, plan.services, {
      ...exec,
      // Changes run in parallel; armed for services-mid they run one at a time, so the kill
      // lands with exactly one change made and the others not yet sent: a real mix.
      ...(crashArmed('services-mid') ? { parallel: 1 } : {}),
      onStep: (step, phase) => {
        ctx.onStep?.(step, phase);
        if (phase === 'done' && ++done === 1) crashPoint('services-mid');
      },
    });
    return plan;
  }));
  let converged: ServiceProgress[];
  try {
    converged = await journaledStep(ctx, deploymentId, 'converge', () =>
      waitForConvergence(docker, desired.services.map((s) => s.Name!), {
        timeoutMs: ctx.timeoutMs,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}),
      }),
    );
  } catch (e) {
    const err = asAirlockError(e);
    try {
      await restorePrevious(ctx, deploymentId, desired.stack);
    } catch (undo) {
      // The engine is gone (it is why convergence failed, often): the deployment stays running, for recovery.
      ctx.journal.record({ kind: 'deployment.restore', outcome: 'failed', subject: desired.stack, reason: err.reason, message: `left for recovery: ${asAirlockError(undo).message}`, details: { deployment: deploymentId } });
      throw err;
    }
    deployments.finish(deploymentId, 'rolled-back', `did not converge, rolled back to the previous specs: ${err.message}`);
    ctx.journal.record({ kind: 'deployment.rollback', outcome: 'ok', subject: desired.stack, reason: 'health-gate', message: err.message, details: { deployment: deploymentId } });
    throw err;
  }
  await journaledStep(ctx, deploymentId, 'commit', async () => deployments.finish(deploymentId, 'committed'));
  crashPoint('after-commit');
  try {
    await journaledStep(ctx, deploymentId, 'cleanup', () => runPhase(docker, plan.cleanup, exec));
  } catch (e) {
    // The deployment stands; an object still in use is removed by a later cleanup or prune.
    ctx.journal.record({ kind: 'deployment.cleanup', outcome: 'failed', subject: desired.stack, message: asAirlockError(e).message });
  }
  return converged;
}

/**
 * A services step that failed part-way (an engine error, say) is undone.
 * When even that fails (the engine is gone), the deployment stays
 * `running`: recovery restores it at the next start.
 */
async function undoOnFailure<T>(ctx: ApplyContext, deploymentId: number, stack: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    const err = asAirlockError(e);
    try {
      await restorePrevious(ctx, deploymentId, stack);
      ctx.deployments.finish(deploymentId, 'rolled-back', `updating services failed, restored the previous specs: ${err.message}`);
    } catch {
      ctx.journal.record({ kind: 'deployment.restore', outcome: 'failed', subject: stack, reason: err.reason, message: `left for recovery: ${err.message}`, details: { deployment: deploymentId } });
    }
    throw err;
  }
}

/**
 * Puts every service of a deployment back to the spec recorded before it:
 * services it created are removed, the others updated to their old specs.
 * Used by the health gate and by crash recovery. Returns why the restored
 * services did not settle when the wait for them failed (journaled), so a
 * caller does not call that a success.
 */
export async function restorePrevious(ctx: ApplyContext, deploymentId: number, stack: string): Promise<AirlockError | undefined> {
  const records = ctx.deployments.services(deploymentId);
  const current = await readStackState(ctx.docker, stack, ctx.signal);
  const old: DesiredStack = { stack, networks: [], secrets: [], configs: [], services: records.flatMap((r) => (r.before ? [r.before] : [])) };
  const plan = planStack(old, current, { prune: false });
  const created = new Set(records.filter((r) => r.before === null).map((r) => r.name));
  const removals: Step[] = current.services.filter((s) => created.has(s.Spec.Name!)).map((s) => ({ action: 'remove-service', name: s.Spec.Name!, id: s.ID }));
  await runPhase(ctx.docker, [...plan.services, ...removals], { ...(ctx.onStep ? { onStep: ctx.onStep } : {}) });
  const names = old.services.map((s) => s.Name!);
  if (names.length === 0) return undefined;
  try {
    await waitForConvergence(ctx.docker, names, { timeoutMs: ctx.timeoutMs });
    return undefined;
  } catch (e) {
    const err = asAirlockError(e);
    ctx.journal.record({ kind: 'deployment.restore', outcome: 'failed', subject: stack, message: err.message, details: { deployment: deploymentId } });
    return err;
  }
}
