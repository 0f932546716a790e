/**
 * An apply of the bundle a host already runs, untouched, changes nothing, so
 * it starts no deployment: a timer or an operator re-running the same apply
 * must not fill the history with copies of the same deployment (and move the
 * rollback target away from the last real change). "Runs" means, for every
 * stack of the bundle: the last committed deployment is an apply of this very
 * bundle (same signed manifest) that ran through its cleanup, the engine runs
 * exactly its recorded specs, and the images they were pinned to are in the
 * engine.
 */
import type { ImageRecord } from '../bundle/manifest.js';
import type { Engine } from '../docker/engine.js';
import { findBundleImage } from '../images/identity.js';
import { BundleRecords } from '../journal/bundles.js';
import type { DeploymentRecords, DeploymentRow } from '../journal/deployments.js';
import type { Journal } from '../journal/journal.js';
import { stackDrift } from './stack-drift.js';

/** The deployments that already run this bundle, one per stack; undefined when an apply has work to do. */
export async function runningDeployments(
  docker: Engine,
  journal: Journal,
  deployments: DeploymentRecords,
  bundle: { manifestDigest: string; stacks: readonly string[]; images: readonly ImageRecord[] },
): Promise<DeploymentRow[] | undefined> {
  const stored = new BundleRecords(journal).byDigest(bundle.manifestDigest);
  if (!stored) return undefined;
  const running: DeploymentRow[] = [];
  for (const stack of bundle.stacks) {
    const current = deployments.current(stack);
    // An apply of this very bundle that ran to its end (a rollback to it, or one killed before its
    // cleanup, leaves work that a real apply does: the downgrade rule, the cleanup).
    if (current?.bundle_id !== stored.id || current.kind !== 'apply') return undefined;
    const last = deployments.steps(current.id).at(-1);
    if (last?.step !== 'cleanup' || last.outcome !== 'ok') return undefined;
    if (await stackDrift(docker, deployments, current)) return undefined;
    for (const s of deployments.services(current.id)) {
      if (!s.after || !s.imageId) continue;
      // Pinned by config digest; the engine names it so, or by its manifest digest (containerd store).
      const image = bundle.images.find((i) => i.id === s.imageId);
      if (!image || !(await findBundleImage(docker, image))) return undefined;
    }
    running.push(current);
  }
  return running;
}
