/**
 * The service settings a drain that keeps capacity changes for a while, and
 * puts back. Pure: specs in, specs out.
 *
 * Docker's drain stops a node's tasks first and starts their replacements
 * after (moby 33220, 34139). Instead, a service with tasks on the node gets
 * one more placement constraint, `node.id!=<node>`, and a rolling update
 * that starts each new task before it stops the old one. Swarmkit replaces
 * only the tasks whose node no longer meets the constraints: one whose spec
 * differs in placement alone, on a node that still meets them, is not dirty
 * (orchestrator.IsTaskDirtyPlacementConstraintsOnly). Putting the original
 * placement back is, for the same reason, no change to any running task.
 */
import type { ServiceSpec, TaskSpec, UpdateConfig } from '../docker/types.js';

type Placement = NonNullable<TaskSpec['Placement']>;

/** What a drain changed on one service, as it was before: put back exactly (undefined: the spec had none). */
export interface HeldService {
  id: string;
  name: string;
  placement?: Placement;
  updateConfig?: UpdateConfig;
}

/** The constraint that keeps a service's tasks off the node being drained. */
export const awayFrom = (nodeId: string): string => `node.id!=${nodeId}`;

/** One task at a time, the new one running before the old one stops; a new task that fails pauses the update. */
export const START_FIRST: UpdateConfig = { Parallelism: 1, Delay: 0, Order: 'start-first', FailureAction: 'pause' };

/** What the spec holds now of the settings a drain changes. */
export function heldOf(id: string, spec: ServiceSpec): HeldService {
  const placement = spec.TaskTemplate?.Placement;
  return {
    id,
    name: spec.Name ?? id,
    ...(placement === undefined ? {} : { placement: structuredClone(placement) }),
    ...(spec.UpdateConfig === undefined ? {} : { updateConfig: structuredClone(spec.UpdateConfig) }),
  };
}

/** The spec with the node's tasks moved off it, start-first. */
export function movingSpec<S extends ServiceSpec>(spec: S, nodeId: string): S {
  const next = structuredClone(spec);
  const placement = next.TaskTemplate?.Placement ?? {};
  const constraints = placement.Constraints ?? [];
  next.TaskTemplate = {
    ...next.TaskTemplate,
    Placement: { ...placement, Constraints: constraints.includes(awayFrom(nodeId)) ? constraints : [...constraints, awayFrom(nodeId)] },
  };
  next.UpdateConfig = { ...START_FIRST };
  return next;
}

/**
 * The spec as it is now with the held placement and update settings put back
 * (other changes made meanwhile are kept). A service that had no placement
 * at all gets an empty one: swarmkit's nodeMatches reads the service's
 * placement without a nil check when a task's placement differs from it, and
 * the manager's dockerd panics (seen on Docker 20.10 and 28.5; fixed in swarmkit only
 * by eb52e393d, July 2026). An empty placement places as none does; airlock's
 * compose converter always writes one, so its stacks get theirs back exactly.
 */
export function restoredSpec<S extends ServiceSpec>(spec: S, held: HeldService): S {
  const next = structuredClone(spec);
  const task = { ...next.TaskTemplate };
  task.Placement = structuredClone(held.placement ?? {});
  next.TaskTemplate = task;
  if (held.updateConfig === undefined) delete next.UpdateConfig;
  else next.UpdateConfig = structuredClone(held.updateConfig);
  return next;
}

/** Whether the spec still differs from what was held (its placement or update settings). */
export function needsRestore(spec: ServiceSpec, held: HeldService): boolean {
  return !sameJson(spec.TaskTemplate?.Placement ?? {}, held.placement ?? {}) || !sameJson(spec.UpdateConfig, held.updateConfig);
}

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
