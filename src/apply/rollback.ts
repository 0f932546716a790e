import { AirlockError, notFound } from '../errors/index.js';
import type { ImageRecord } from '../bundle/manifest.js';
import { findBundleImage } from '../images/identity.js';
import { loadImages, splitRef } from '../images/load-images.js';
import { familiarRef } from '../images/reference.js';
import { missingImageBlobs, prunedImageError } from '../retention/restorable.js';
import { BundleRecords } from '../journal/bundles.js';
import { journalPresence, noJournalHere } from '../store/state-dir.js';
import type { DeploymentRow } from '../journal/deployments.js';
import { effectiveDeployment } from '../journal/rollback-chain.js';
import type { ServiceProgress } from '../stack/converge.js';
import { appliedBy } from './applied-by.js';
import { withApplyContext, type DeployOptions } from './bundle-apply.js';
import { checkRevocation } from './revocation.js';
import type { ApplyContext } from './context.js';
import { runPipeline } from './run-pipeline.js';
import { recordedStack } from './recorded-stack.js';

/** `--to` as a deployment id or a bundle version; by default the release before the one running. */
export function rollbackTarget(history: DeploymentRow[], to: string | undefined): DeploymentRow {
  const committed = history.filter((d) => d.status === 'committed');
  const current = committed[0];
  if (!current) throw notFound('the stack has no committed deployment to roll back from', { reason: 'no-deployment' });
  let target: DeploymentRow | undefined;
  if (to === undefined) {
    const byId = new Map(history.map((d) => [d.id, d]));
    const running = effectiveDeployment(current, (id) => byId.get(id));
    target = committed.find((d) => d.kind === 'apply' && d.id < running);
    if (!target) throw notFound(`no deployment before #${running} to roll back to`, { reason: 'no-deployment', hint: "see 'airlock history STACK'" });
  } else if (/^\d+$/.test(to)) {
    target = history.find((d) => d.id === Number(to));
    if (!target) throw notFound(`no deployment #${to} of this stack`, { reason: 'no-deployment', hint: "see 'airlock history STACK'" });
  } else {
    target = committed.find((d) => d.kind === 'apply' && d.bundle_version === to);
    if (!target) throw notFound(`no committed deployment of version ${to}`, { reason: 'no-deployment', hint: "see 'airlock history STACK'" });
  }
  if (target.status !== 'committed') {
    throw new AirlockError('policy', `deployment #${target.id} was ${target.status}, never a running state to go back to`, { reason: 'not-committed' });
  }
  return target;
}

/**
 * Makes each pinned image present and tagged as the spec names it, loading it
 * from the content store if the engine lost it. Pins are config digests, of
 * the variant this host loaded (a multi-platform bundle carries one record
 * per variant, so the pin finds exactly that one); the bundle record that
 * carried the image also names its manifest, which is the image's id on the
 * containerd image store (src/images/identity.ts).
 */
async function restoreImages(ctx: ApplyContext, pins: { ref: string; id: string }[]): Promise<void> {
  const bundles = new BundleRecords(ctx.journal);
  const missing: ImageRecord[] = [];
  const engineIds = new Map<string, string>();
  for (const pin of pins) {
    const carriers = bundles.all().filter((b) => bundles.manifest(b.id).images.some((i) => i.id === pin.id));
    const record = carriers.length ? bundles.manifest(carriers[0]!.id).images.find((i) => i.id === pin.id) : undefined;
    const found = record ? await findBundleImage(ctx.docker, record) : await ctx.docker.images.find(pin.id);
    if (found) {
      engineIds.set(pin.id, found.Id);
      continue;
    }
    if (!record) throw notFound(`image ${pin.ref} (${pin.id}) is gone from the engine and from every stored bundle`, { reason: 'image-not-found' });
    const gone = await missingImageBlobs(ctx.store, record);
    if (gone.length > 0) throw prunedImageError(pin.ref, record, gone, carriers.map((b) => `${b.name} ${b.version}`));
    missing.push(record);
  }
  if (missing.length > 0) await loadImages(ctx.docker, ctx.store, missing);
  for (const record of missing) engineIds.set(record.id, (await findBundleImage(ctx.docker, record))!.Id);
  for (const pin of pins) {
    const { repo, tag } = splitRef(pin.ref);
    await ctx.docker.images.tag(engineIds.get(pin.id)!, repo, tag);
  }
}

/**
 * Restores the exact specs of a recorded deployment, offline: images come
 * from the engine or the content store, secret and config data from the
 * content store. Journaled as a deployment of its own. Specs of a bundle
 * whose key was revoked since are refused (src/apply/revocation.ts).
 */
export async function rollbackStack(
  stack: string,
  to: string | undefined,
  opts: DeployOptions,
): Promise<{ deployment: number; restores: number; services: ServiceProgress[] }> {
  // Refused before the journal is opened: opening would make a fresh one in place of a lost one.
  if (journalPresence(opts.stateDir) !== 'present') throw noJournalHere(opts.stateDir, ': rollback restores recorded deployments, and none is recorded here', { lost: true });
  return withApplyContext(opts, `rollback ${stack}`, async (ctx) => {
    const history = ctx.deployments.history(stack, 10_000);
    const target = rollbackTarget(history, to);
    // Refused before anything is recorded or touched.
    const overridden = await checkRevocation(ctx.journal, opts.revocation, { action: 'rollback', stack, deployment: target.id, bundleId: target.bundle_id });
    const current = ctx.deployments.current(stack)!;
    const id = ctx.deployments.start({
      stack,
      bundleId: target.bundle_id,
      kind: 'rollback',
      replaces: current.id,
      restores: target.id,
      appliedBy: appliedBy(),
      source: `rollback to #${target.id}${overridden ? ' (key revoked; --allow-revoked)' : ''}`,
    });
    const services = ctx.deployments.services(target.id).filter((s) => s.after !== null);
    const pins = services.flatMap((s) => (s.imageRef && s.imageId ? [{ ref: familiarRef(s.imageRef), id: s.imageId }] : []));
    const [outcome] = await runPipeline(ctx, {
      stacks: [{ id, stack, desired: () => recordedStack(ctx, target.id, stack) }],
      prune: true,
      bundle: {
        load: async () => {
          await restoreImages(ctx, pins);
          return new Map(pins.map((p) => [p.ref, p.id]));
        },
      },
    });
    const converged = outcome!.converged;
    return { deployment: id, restores: target.id, services: converged };
  });
}
