import { readFileSync } from 'node:fs';
import type { DesiredStack } from '../stack/types.js';
import type { ApplyContext } from './context.js';

/** The stack a deployment made, from its records: specs from the journal, secret and config data from the content store. */
export function recordedStack(ctx: ApplyContext, deploymentId: number, stack: string): DesiredStack {
  const desired: DesiredStack = { stack, networks: [], secrets: [], configs: [], services: [] };
  const data = (digest: string | null) => (digest === null ? undefined : readFileSync(ctx.store.pathOf(digest)));
  for (const o of ctx.deployments.objects(deploymentId)) {
    if (o.kind === 'network') desired.networks.push(o.spec);
    else if (o.kind === 'secret') desired.secrets.push({ ...o.spec, Data: data(o.dataDigest) });
    else desired.configs.push({ ...o.spec, Data: data(o.dataDigest) });
  }
  desired.services = ctx.deployments.services(deploymentId).flatMap((s) => (s.after ? [s.after] : []));
  return desired;
}
