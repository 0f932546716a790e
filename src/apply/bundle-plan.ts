import { openBundleFile, readBundle } from '../bundle/reader.js';
import type { Docker } from '../docker/index.js';
import { planDeploy } from '../stack/deploy.js';
import { desiredStack } from '../stack/desired.js';
import type { Plan } from '../stack/types.js';
import type { TrustStore } from '../trust/trust-store.js';
import type { ComposeNotice } from '../compose/model.js';
import { bundleStackFiles, memoryBlobs } from './bundle-files.js';

export interface BundlePlan {
  bundle: { name: string; version: string };
  stacks: { stack: string; plan: Plan; warnings: ComposeNotice[] }[];
}

/**
 * What `bundle apply` would change, changing nothing: the bundle is verified
 * in full (its stack files kept in memory, nothing stored), then each stack
 * is planned against the engine.
 */
export async function planBundle(file: string, opts: { trust: TrustStore; docker: Docker }): Promise<BundlePlan> {
  const { sink, source } = memoryBlobs();
  const verified = await readBundle(await openBundleFile(file), { trust: opts.trust, sink });
  const m = verified.manifest;
  const apiVersion = await opts.docker.client.apiVersion();
  const stacks = [];
  for (const stack of m.stacks) {
    const { desired, warnings } = await desiredStack({ stack: stack.name, apiVersion, ...bundleStackFiles(source, m, stack) });
    stacks.push({ stack: stack.name, plan: await planDeploy(opts.docker, desired, true), warnings });
  }
  return { bundle: { name: m.name, version: m.version }, stacks };
}
