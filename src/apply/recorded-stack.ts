import { readFileSync } from 'node:fs';
import type { ConfigSpec, NetworkCreateRequest, SecretSpec } from '../docker/index.js';
import type { DesiredStack } from '../stack/types.js';
import type { ApplyContext } from './context.js';

/** The stack a deployment made, from its records: specs from the journal, secret and config data from the content store. */
export function recordedStack(ctx: ApplyContext, deploymentId: number, stack: string): DesiredStack {
  const objects = ctx.deployments.objects(deploymentId);
  const data = (digest: string | null) => (digest === null ? undefined : readFileSync(ctx.store.pathOf(digest)));
  return {
    stack,
    networks: objects.filter((o) => o.kind === 'network').map((o) => o.spec as unknown as NetworkCreateRequest),
    secrets: objects.filter((o) => o.kind === 'secret').map((o) => ({ ...(o.spec as unknown as SecretSpec), Data: data(o.dataDigest) })),
    configs: objects.filter((o) => o.kind === 'config').map((o) => ({ ...(o.spec as unknown as ConfigSpec), Data: data(o.dataDigest) })),
    services: ctx.deployments.services(deploymentId).flatMap((s) => (s.after ? [s.after] : [])),
  };
}
