import { asAirlockError } from '../errors/index.js';
import { FIRST_SERVICE_STEP, stepIndex, type DeploymentRow } from '../journal/deployments.js';
import { restorePrevious, type ApplyContext } from './journaled-deploy.js';
import { checkRevocation, revokedBundle, type RevocationGate } from './revocation.js';
import { stackDrift } from './stack-drift.js';
import { waitForConvergence } from '../stack/converge.js';

/** After this many interrupted recoveries of one deployment, airlock stops trying and leaves it to the operator. */
export const MAX_RECOVERIES = 3;

/**
 * The one recovery rule, run before any apply or rollback: a deployment
 * still `running` was interrupted (kill -9, power loss). If it had not yet
 * touched a service, nothing needs undoing: it is closed as failed, and
 * applying the bundle again resumes it (every step before services is
 * idempotent). Otherwise every service is restored to its recorded previous
 * spec, unless every service had been sent (the step was converge or
 * commit), the engine runs exactly the new specs and they pass the health
 * gate now: then the deployment is committed, as the apply would have done,
 * rather than restarting every task of a healthy stack twice (back, and
 * forward again on the next apply). A counter stops a recovery that itself keeps crashing. Previous
 * specs from a bundle whose key was revoked since are not restored without
 * the operator's override: the deployment is left as it is, and the
 * refusal says how to go on.
 */
export async function recoverUnfinished(ctx: ApplyContext, revocation: RevocationGate): Promise<number[]> {
  const recovered: number[] = [];
  for (const d of ctx.deployments.unfinished()) {
    const attempts = ctx.deployments.countRecovery(d.id);
    if (attempts > MAX_RECOVERIES) {
      ctx.deployments.finish(d.id, 'failed', `recovery was interrupted ${attempts - 1} times; left for the operator (see airlock history ${d.stack})`);
      ctx.journal.record({ kind: 'deployment.recover', outcome: 'failed', subject: d.stack, reason: 'crash-loop', details: { deployment: d.id } });
      recovered.push(d.id);
      continue;
    }
    if (stepIndex(d.step) < stepIndex(FIRST_SERVICE_STEP)) {
      ctx.deployments.finish(d.id, 'failed', `interrupted at step ${d.step}, before any service changed; apply the bundle again to resume`);
      ctx.journal.record({ kind: 'deployment.recover', outcome: 'ok', subject: d.stack, reason: 'nothing-to-undo', details: { deployment: d.id, step: d.step } });
    } else if (await finishedForward(ctx, d, revocation)) {
      ctx.deployments.finish(d.id, 'committed', `interrupted at step ${d.step}, after every service was sent; the stack ran the new specs, healthy, so recovery committed it`);
      ctx.journal.record({ kind: 'deployment.recover', outcome: 'ok', subject: d.stack, reason: 'committed', details: { deployment: d.id, step: d.step } });
    } else {
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
        ctx.deployments.finish(d.id, 'rolled-back', `interrupted at step ${d.step}; restored the previous specs, but they did not converge: ${unsettled.message}`);
        ctx.journal.record({ kind: 'deployment.recover', outcome: 'failed', subject: d.stack, reason: 'not-converged', message: unsettled.message, details: { deployment: d.id, step: d.step } });
      } else {
        ctx.deployments.finish(d.id, 'rolled-back', `interrupted at step ${d.step}; restored the previous specs`);
        ctx.journal.record({ kind: 'deployment.recover', outcome: 'ok', subject: d.stack, reason: 'restored', details: { deployment: d.id, step: d.step } });
      }
    }
    recovered.push(d.id);
  }
  return recovered;
}

/** Steps after which every service of the deployment had been sent. */
const SENT_ALL: ReadonlySet<string> = new Set(['converge', 'commit']);

/**
 * Whether an interrupted deployment can be finished forward: all its changes
 * were sent, nothing changed the stack since, its bundle's key is not revoked
 * and its services converge within the timeout.
 */
async function finishedForward(ctx: ApplyContext, d: DeploymentRow, revocation: RevocationGate): Promise<boolean> {
  if (!SENT_ALL.has(d.step)) return false;
  if (await stackDrift(ctx.docker, ctx.deployments, d, ctx.signal)) return false;
  if (await revokedBundle(ctx.journal, revocation, d.bundle_id).catch(() => true)) return false;
  const names = ctx.deployments.services(d.id).flatMap((s) => (s.after ? [s.name] : []));
  if (names.length === 0) return false;
  return waitForConvergence(ctx.docker, names, { timeoutMs: ctx.timeoutMs, ...(ctx.signal ? { signal: ctx.signal } : {}) }).then(
    () => true,
    () => false,
  );
}
