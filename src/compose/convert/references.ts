/**
 * The Engine API wants each secret and config reference to carry the
 * object's ID, which exists only once the object was created. The converter
 * leaves the IDs empty; this fills them from what the engine reports, by name.
 */
import type { ServiceSpec } from '../../docker/types.js';

export interface ObjectIds {
  secrets: ReadonlyMap<string, string>;
  configs: ReadonlyMap<string, string>;
}

/** A copy of `spec` with SecretID/ConfigID set; `missing` names the objects the engine does not have. */
export function bindObjectIds<T extends ServiceSpec>(spec: T, ids: ObjectIds): { spec: T; missing: string[] } {
  const missing: string[] = [];
  const container = spec.TaskTemplate?.ContainerSpec;
  if (!container) return { spec, missing };
  const secrets = container.Secrets?.map((ref) => {
    const id = ids.secrets.get(ref.SecretName);
    if (id === undefined) missing.push(`secret ${ref.SecretName}`);
    return { ...ref, SecretID: id ?? ref.SecretID };
  });
  const configs = container.Configs?.map((ref) => {
    const id = ids.configs.get(ref.ConfigName);
    if (id === undefined) missing.push(`config ${ref.ConfigName}`);
    return { ...ref, ConfigID: id ?? ref.ConfigID };
  });
  const boundContainer = { ...container, ...(secrets && { Secrets: secrets }), ...(configs && { Configs: configs }) };
  return { spec: { ...spec, TaskTemplate: { ...spec.TaskTemplate, ContainerSpec: boundContainer } }, missing: [...new Set(missing)] };
}
