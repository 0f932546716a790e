import { asAirlockError, type AirlockError } from '../errors/index.js';
import { waitForConvergence } from '../stack/converge.js';
import { runPhase } from '../stack/execute.js';
import { planStack } from '../stack/plan.js';
import { readStackState } from '../stack/state.js';
import type { DesiredStack, Change } from '../stack/types.js';
import type { PipelineContext } from './context.js';
import { convergeOptions } from './stack-steps.js';

/**
 * Puts every service of a deployment back to the spec recorded before it:
 * services it created are removed, the others updated to their old specs.
 * Used when a step fails and by crash recovery. Returns why the restored
 * services did not settle when the wait for them failed (recorded), so a
 * caller does not call that a success.
 */
export async function restorePrevious(ctx: PipelineContext, deploymentId: number, stack: string): Promise<AirlockError | undefined> {
  const records = ctx.recorder.services(deploymentId);
  const current = await readStackState(ctx.docker, stack, ctx.signal);
  const old: DesiredStack = { stack, networks: [], secrets: [], configs: [], services: records.flatMap((r) => (r.before ? [r.before] : [])) };
  const plan = planStack(old, current, { prune: false });
  const created = new Set(records.filter((r) => r.before === null).map((r) => r.name));
  const removals: Change[] = current.services.filter((s) => created.has(s.Spec.Name)).map((s) => ({ action: 'remove-service', name: s.Spec.Name, id: s.ID }));
  await runPhase(ctx.docker, [...plan.services, ...removals], { ...(ctx.onChange ? { onChange: ctx.onChange } : {}) });
  const names = old.services.map((s) => s.Name);
  if (names.length === 0) return undefined;
  try {
    await waitForConvergence(ctx.docker, names, convergeOptions(ctx, false));
    return undefined;
  } catch (e) {
    const err = asAirlockError(e);
    ctx.recorder.event({ kind: 'deployment.restore', outcome: 'failed', subject: stack, message: err.message, details: { deployment: deploymentId } });
    return err;
  }
}
