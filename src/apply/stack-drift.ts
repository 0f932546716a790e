/**
 * Drift of one stack: what the engine runs against the specs the stack's
 * last committed deployment applied. A service removed, added or changed by
 * hand (docker service update, scale, rm) is drift. The agent's drift check
 * and the apply's "already runs this bundle" test both read it here.
 */
import type { SwarmEngine } from '../docker/engine.js';
import type { ServiceSpec } from '../docker/index.js';
import type { DeploymentRecords, DeploymentRow } from '../journal/deployments.js';
import { diffSpecs } from '../stack/spec-diff.js';
import { readStackState } from '../stack/state.js';
import type { FieldChange } from '../stack/types.js';

export interface StackDrift {
  stack: string;
  deployment: number;
  missing: string[];
  extra: string[];
  changed: { service: string; fields: string[] }[];
}

/** How the engine's stack differs from deployment `current`; undefined when it runs exactly that. */
export async function stackDrift(docker: SwarmEngine, deployments: DeploymentRecords, current: DeploymentRow, signal?: AbortSignal): Promise<StackDrift | undefined> {
  const recorded = new Map(deployments.services(current.id).flatMap((s) => (s.after ? [[s.name, s.after] as const] : [])));
  const state = await readStackState(docker, current.stack, signal);
  const running = new Map(state.services.map((s) => [s.Spec.Name, s.Spec]));
  const drift: StackDrift = {
    stack: current.stack,
    deployment: current.id,
    missing: [...recorded.keys()].filter((n) => !running.has(n)),
    extra: [...running.keys()].filter((n) => !recorded.has(n)),
    changed: [],
  };
  for (const [name, spec] of recorded) {
    const live = running.get(name);
    if (!live) continue;
    const fields = specChanges(spec, live, state.apiVersion).map((c) => c.path);
    if (fields.length > 0) drift.changed.push({ service: name, fields });
  }
  return drift.missing.length + drift.extra.length + drift.changed.length > 0 ? drift : undefined;
}

/** ForceUpdate is the engine's counter of forced redeploys, not part of what runs. */
function specChanges(recorded: ServiceSpec, live: ServiceSpec, apiVersion: string): FieldChange[] {
  const a = structuredClone(recorded);
  a.TaskTemplate = { ...a.TaskTemplate, ForceUpdate: live.TaskTemplate?.ForceUpdate ?? 0 };
  return diffSpecs(a, live, apiVersion);
}
