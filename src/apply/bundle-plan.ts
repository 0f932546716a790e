import { readFileSync } from 'node:fs';
import { baseBlobs } from '../bundle/manifest.js';
import { openBundleFile, readBundle } from '../bundle/reader.js';
import type { SwarmEngine } from '../docker/engine.js';
import { contentStoreOf } from '../store/state-dir.js';
import { checkBaseBlobs } from '../import/base-check.js';
import { planDeploy } from '../stack/deploy.js';
import { desiredStack } from '../stack/desired.js';
import type { Plan } from '../stack/types.js';
import type { TrustStore } from '../trust/trust-store.js';
import type { ComposeNotice } from '../compose/model.js';
import { hostKeysOf, type SealingOptions } from '../seal/sealing-options.js';
import { bundleStackFiles, memoryBlobs, type BlobSource } from './bundle-files.js';

export interface BundlePlan {
  bundle: { name: string; version: string };
  stacks: { stack: string; plan: Plan; warnings: ComposeNotice[] }[];
}

/**
 * What `bundle apply` would change, changing nothing: the bundle is verified
 * in full (its stack files kept in memory, nothing stored), then each stack
 * is planned against the engine. A delta's files that it relies on without
 * carrying (an env file that did not change) are read from the content store
 * of `stateDir`, as apply reads them; a host that lacks them is refused as
 * apply refuses it (missing-base), before the payload is read.
 */
export async function planBundle(file: string, opts: { trust: TrustStore; docker: SwarmEngine; stateDir: string; sealing?: SealingOptions }): Promise<BundlePlan> {
  const store = contentStoreOf(opts.stateDir);
  const { sink, source: carried } = memoryBlobs();
  const verified = await readBundle(await openBundleFile(file), {
    trust: opts.trust,
    sink,
    beforePayload: async (h) => {
      await checkBaseBlobs(h.manifest, store);
    },
  });
  const m = verified.manifest;
  const fromBase = new Set(baseBlobs(m).map((b) => b.digest));
  const source: BlobSource = { readBlob: (digest) => (fromBase.has(digest) ? readFileSync(store.pathOf(digest)) : carried.readBlob(digest)) };
  const apiVersion = await opts.docker.client.apiVersion();
  const keys = hostKeysOf(opts.stateDir, opts.sealing);
  const stacks = [];
  for (const stack of m.stacks) {
    const { desired, warnings } = await desiredStack({ stack: stack.name, apiVersion, ...(await bundleStackFiles(source, m, stack, keys)) });
    stacks.push({ stack: stack.name, plan: await planDeploy(opts.docker, desired, true), warnings });
  }
  return { bundle: { name: m.name, version: m.version }, stacks };
}
