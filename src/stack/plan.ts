import { diffSpecs } from './spec-diff.js';
import { LOGICAL_NAME_LABEL } from '../compose/labels.js';
import type { DesiredStack, Plan, StackState, Change } from './types.js';

export interface PlanOptions {
  /** Remove services that are no longer in the stack (as `docker stack deploy --prune`). */
  prune: boolean;
}

/**
 * Pure: the changes that turn `current` into `desired`. An unchanged service
 * gets no change; a changed one gets an update carrying its field-level diff.
 * Specs are compared as the engine stores them (spec-diff.ts), so the
 * defaults the engine filled into a deployed spec are no change.
 */
export function planStack(desired: DesiredStack, current: StackState, opts: PlanOptions): Plan {
  const prepare: Change[] = [];
  const networkNames = new Set(current.networks.map((n) => n.Name));
  for (const n of desired.networks) {
    if (!networkNames.has(n.Name)) prepare.push({ action: 'create-network', name: n.Name, network: n });
  }
  const secretNames = new Set(current.secrets.map((s) => s.Spec.Name));
  for (const s of desired.secrets) {
    if (!secretNames.has(s.Name)) prepare.push({ action: 'create-secret', name: s.Name, secret: s });
  }
  const configNames = new Set(current.configs.map((c) => c.Spec.Name));
  for (const c of desired.configs) {
    if (!configNames.has(c.Name)) prepare.push({ action: 'create-config', name: c.Name, config: c });
  }

  const services: Change[] = [];
  const unchanged: string[] = [];
  const existing = new Map(current.services.map((s) => [s.Spec.Name, s]));
  for (const spec of desired.services) {
    const name = spec.Name;
    const svc = existing.get(name);
    if (!svc) {
      services.push({ action: 'create-service', name, spec });
      continue;
    }
    // As docker stack deploy: keep ForceUpdate, so an unchanged task template does not redeploy.
    const next = structuredClone(spec);
    next.TaskTemplate = { ...next.TaskTemplate, ForceUpdate: svc.Spec.TaskTemplate?.ForceUpdate ?? 0 };
    const changes = diffSpecs(svc.Spec, next, current.apiVersion);
    if (changes.length === 0) unchanged.push(name);
    else services.push({ action: 'update-service', name, id: svc.ID, version: svc.Version.Index, spec: next, changes });
  }
  if (opts.prune) {
    const wanted = new Set(desired.services.map((s) => s.Name));
    for (const svc of current.services) {
      if (!wanted.has(svc.Spec.Name)) services.push({ action: 'remove-service', name: svc.Spec.Name, id: svc.ID });
    }
  }

  // Content-named objects that the new specs no longer use are removed once the deploy converged.
  const cleanup: Change[] = [];
  const wantedSecrets = new Set(desired.secrets.map((s) => s.Name));
  for (const s of current.secrets) {
    if (s.Spec.Labels?.[LOGICAL_NAME_LABEL] && !wantedSecrets.has(s.Spec.Name)) cleanup.push({ action: 'remove-secret', name: s.Spec.Name, id: s.ID });
  }
  const wantedConfigs = new Set(desired.configs.map((c) => c.Name));
  for (const c of current.configs) {
    if (c.Spec.Labels?.[LOGICAL_NAME_LABEL] && !wantedConfigs.has(c.Spec.Name)) cleanup.push({ action: 'remove-config', name: c.Spec.Name, id: c.ID });
  }
  return { stack: desired.stack, prepare, services, cleanup, unchanged: unchanged.sort() };
}
