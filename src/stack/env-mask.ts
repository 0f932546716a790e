/**
 * A plan with the values of environment variables hidden: `bundle plan`
 * shows which variables a deploy adds, removes or changes, not what they
 * hold (passwords and tokens are often passed that way), unless the
 * operator asks for the values.
 */
import type { ServiceSpec } from '../docker/index.js';
import type { FieldChange, Plan, Change } from './types.js';

/** What a hidden value reads as. */
export const HIDDEN = '(hidden)';
const ENV_PATH = 'TaskTemplate.ContainerSpec.Env';

const nameOf = (entry: string): string => {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : entry.slice(0, eq);
};

/** `KEY=value` as `KEY=(hidden)`; a bare `KEY` (taken from the engine's environment) has no value to hide. */
const maskEntry = (entry: string): string => (entry.includes('=') ? `${nameOf(entry)}=${HIDDEN}` : entry);

const maskList = (v: unknown): unknown => (Array.isArray(v) ? v.map((e) => (typeof e === 'string' ? maskEntry(e) : e)) : v);

/** Which variables an Env change adds, removes and changes, by name. */
export interface EnvChange {
  added: string[];
  removed: string[];
  changed: string[];
}

export function envChangeOf(before: unknown, after: unknown): EnvChange {
  const asMap = (v: unknown) => new Map((Array.isArray(v) ? v : []).filter((e): e is string => typeof e === 'string').map((e) => [nameOf(e), e]));
  const a = asMap(before);
  const b = asMap(after);
  return {
    added: [...b.keys()].filter((k) => !a.has(k)),
    removed: [...a.keys()].filter((k) => !b.has(k)),
    changed: [...b.keys()].filter((k) => a.has(k) && a.get(k) !== b.get(k)),
  };
}

export const isEnvChange = (c: FieldChange): boolean => c.path === ENV_PATH;

/** An Env change with its values hidden, naming what changed. */
export function maskEnvChange(c: FieldChange): FieldChange & { env: EnvChange } {
  return { path: c.path, before: maskList(c.before), after: maskList(c.after), env: envChangeOf(c.before, c.after) };
}

function maskSpec<S extends ServiceSpec>(spec: S): S {
  const cs = spec.TaskTemplate?.ContainerSpec;
  if (!cs?.Env) return spec;
  return { ...spec, TaskTemplate: { ...spec.TaskTemplate, ContainerSpec: { ...cs, Env: maskList(cs.Env) as string[] } } };
}

function maskChange(s: Change): Change {
  if (s.action === 'create-service') return { ...s, spec: maskSpec(s.spec) };
  if (s.action === 'update-service') return { ...s, spec: maskSpec(s.spec), changes: s.changes.map((c) => (isEnvChange(c) ? maskEnvChange(c) : c)) };
  return s;
}

/** The plan with every environment value hidden, in the specs and in the changes. */
export function maskPlanEnv(plan: Plan): Plan {
  return { ...plan, services: plan.services.map(maskChange) };
}
