import { asAirlockError } from '../errors/index.js';
import type { DeploymentRow } from '../journal/deployments.js';
import { waitForConvergence } from '../stack/converge.js';
import type { ApplyContext } from './context.js';
import { ruleOf } from './pipeline.js';
import { recordedStack } from './recorded-stack.js';
import { restorePrevious } from './restore.js';
import { resumeCleanup } from './run-pipeline.js';
import { checkRevocation, revokedBundle, type RevocationGate } from './revocation.js';
import { stackDrift } from './stack-drift.js';
import { convergeOptions } from './stack-steps.js';

/** After this many interrupted recoveries of one deployment, airlock stops trying and leaves it to the operator. */
export const MAX_RECOVERIES = 3;

/**
 * The one recovery rule, run before any apply or rollback: a deployment
 * still `running` was interrupted (kill -9, power loss), and what is done
 * with it is the pipeline table's `onCrash` for the step it was at
 * (pipeline.ts): closed as failed when no service was touched yet (applying
 * the bundle again resumes it); its services restored to their recorded
 * previous specs; or, when every change had been sent, the engine runs
 * exactly the new specs and they pass the health gate now, committed, rather
 * than restarting every task of a healthy stack twice. A counter stops a
 * recovery that itself keeps crashing. Previous specs from a bundle whose
 * key was revoked since are not restored without the operator's override.
 * Then a committed deployment whose cleanup never finished gets it run.
 * Returns the deployments closed, as they ended.
 */
export async function recoverUnfinished(ctx: ApplyContext, revocation: RevocationGate): Promise<DeploymentRow[]> {
  const recovered: DeploymentRow[] = [];
  for (const d of ctx.deployments.unfinished()) {
    const attempts = ctx.deployments.countRecovery(d.id);
    if (attempts > MAX_RECOVERIES) {
      ctx.deployments.finish(d.id, 'failed', `recovery was interrupted ${attempts - 1} times; left for the operator (see airlock history ${d.stack})`);
      ctx.journal.record({ kind: 'deployment.recover', outcome: 'failed', subject: d.stack, reason: 'crash-loop', details: { deployment: d.id } });
    } else {
      await recoverOne(ctx, d, revocation);
    }
    recovered.push(ctx.deployments.get(d.id)!);
  }
  for (const d of ctx.deployments.cleanupPending()) await resumeCleanup(ctx, d.id, await recordedStack(ctx, d.id, d.stack));
  return recovered;
}

async function recoverOne(ctx: ApplyContext, d: DeploymentRow, revocation: RevocationGate): Promise<void> {
  const onCrash = ruleOf(d.step).onCrash;
  if (onCrash === 'close-failed') {
    ctx.deployments.finish(d.id, 'failed', `interrupted at step ${d.step}, before any service changed; apply the bundle again to resume`);
    ctx.journal.record({ kind: 'deployment.recover', outcome: 'ok', subject: d.stack, reason: 'nothing-to-undo', details: { deployment: d.id, step: d.step } });
    return;
  }
  // A deployment still running at cleanup cannot be (it commits first): judged as one at commit.
  const notForward = onCrash === 'restore-previous' ? undefined : await whyNotForward(ctx, d, revocation);
  if (notForward === null) {
    ctx.deployments.finish(d.id, 'committed', `interrupted at step ${d.step}, after every service was sent; the stack ran the new specs, healthy, so recovery committed it`);
    ctx.journal.record({ kind: 'deployment.recover', outcome: 'ok', subject: d.stack, reason: 'committed', details: { deployment: d.id, step: d.step } });
    return;
  }
  const because = notForward ? ` (not finished forward: ${notForward})` : '';
  const previous = d.replaces === null ? undefined : ctx.deployments.get(d.replaces);
  if (previous) await checkRevocation(ctx.journal, revocation, { action: 'restore', stack: d.stack, deployment: previous.id, bundleId: previous.bundle_id, recovering: d.id });
  let unsettled;
  try {
    unsettled = await restorePrevious(ctx, d.id, d.stack);
  } catch (e) {
    ctx.journal.record({ kind: 'deployment.recover', outcome: 'failed', subject: d.stack, reason: asAirlockError(e).reason, message: asAirlockError(e).message, details: { deployment: d.id } });
    throw e;
  }
  if (unsettled) {
    // The specs are back, but the wait for them failed: not a success to report.
    ctx.deployments.finish(d.id, 'rolled-back', `interrupted at step ${d.step}${because}; restored the previous specs, but they did not converge: ${unsettled.message}`);
    ctx.journal.record({ kind: 'deployment.recover', outcome: 'failed', subject: d.stack, reason: 'not-converged', message: unsettled.message, details: { deployment: d.id, step: d.step } });
  } else {
    ctx.deployments.finish(d.id, 'rolled-back', `interrupted at step ${d.step}${because}; restored the previous specs`);
    ctx.journal.record({ kind: 'deployment.recover', outcome: 'ok', subject: d.stack, reason: 'restored', details: { deployment: d.id, step: d.step } });
  }
}

/**
 * Why an interrupted deployment cannot be finished forward, or null when it
 * can: nothing changed the stack since, its bundle's key is not revoked and
 * its services converge within the timeout. The reason goes into the
 * rolled-back deployment's row, so the operator reads why recovery went back.
 */
async function whyNotForward(ctx: ApplyContext, d: DeploymentRow, revocation: RevocationGate): Promise<string | null> {
  if (await stackDrift(ctx.docker, ctx.deployments, d, ctx.signal)) return 'the stack was changed since';
  const revoked = await revokedBundle(ctx.journal, revocation, d.bundle_id).catch((e: unknown) => asAirlockError(e).message);
  if (revoked) return revoked === true ? "the bundle's key is revoked" : `the trust could not be read: ${revoked}`;
  const names = ctx.deployments.services(d.id).flatMap((s) => (s.after ? [s.name] : []));
  if (names.length === 0) return 'no service has new specs';
  return waitForConvergence(ctx.docker, names, convergeOptions(ctx)).then(
    () => null,
    (e: unknown) => `the new specs did not converge: ${asAirlockError(e).message}`,
  );
}
