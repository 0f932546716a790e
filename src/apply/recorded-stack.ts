import { readFileSync } from 'node:fs';
import type { DesiredStack } from '../stack/types.js';
import type { ObjectRecord } from '../journal/deployments.js';
import type { ApplyContext } from './context.js';

/**
 * The stack a deployment made, from its records: specs from the journal,
 * secret and config data from the content store. A value that came sealed
 * is opened again, in memory, with the site identity; the new deployment
 * records its sealed blob as the old one did.
 */
export async function recordedStack(ctx: ApplyContext, deploymentId: number, stack: string): Promise<DesiredStack> {
  const desired: DesiredStack = { stack, networks: [], secrets: [], configs: [], services: [] };
  const sealedData: Record<string, string> = {};
  const data = async (o: Exclude<ObjectRecord, { kind: 'network' }>) => {
    if (o.dataDigest === null) return undefined;
    const stored = readFileSync(ctx.store.pathOf(o.dataDigest));
    if (!o.sealed) return stored;
    sealedData[o.name] = o.dataDigest;
    return (await ctx.keys.open(stored, `the sealed ${o.kind} ${o.name} of deployment ${deploymentId}`)).plaintext;
  };
  for (const o of ctx.deployments.objects(deploymentId)) {
    if (o.kind === 'network') desired.networks.push(o.spec);
    else if (o.kind === 'secret') desired.secrets.push({ ...o.spec, Data: await data(o) });
    else desired.configs.push({ ...o.spec, Data: await data(o) });
  }
  if (Object.keys(sealedData).length > 0) desired.sealedData = sealedData;
  desired.services = ctx.deployments.services(deploymentId).flatMap((s) => (s.after ? [s.after] : []));
  return desired;
}
