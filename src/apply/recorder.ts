/**
 * Where the pipeline writes what it does. The journal recorder writes every
 * step before its side effect, the specs before and after, and the data of
 * secrets and configs to the content store, so that any deployment can be
 * rolled back or recovered. `stack deploy` runs the same pipeline with the
 * recorder that records nothing: no journal, and so nothing to restore.
 */
import type { ApplyStep, DeploymentRecords, DeploymentStatus, ObjectRecord, ServiceRecord } from '../journal/deployments.js';
import type { EventInput, Journal } from '../journal/journal.js';
import type { ContentStore } from '../store/content-store.js';
import { dataOf } from '../stack/data.js';
import type { DesiredStack } from '../stack/types.js';

export interface DeploymentRecorder {
  /** Records that `step` begins, durably, before its side effect; the id to end it with. */
  beginStep(id: number, step: ApplyStep): number;
  endStep(stepId: number, outcome: 'ok' | 'failed', detail?: string): void;
  setBundle(id: number, bundleId: number): void;
  recordObjects(id: number, desired: DesiredStack): Promise<void>;
  recordServices(id: number, services: ServiceRecord[]): void;
  /** What the deployment recorded of its services: the specs a restore puts back. */
  services(id: number): ServiceRecord[];
  finish(id: number, status: Exclude<DeploymentStatus, 'running'>, reason?: string): void;
  event(e: EventInput): void;
}

/** The host's journal, with secret and config data in the content store. */
export function journalRecorder(journal: Journal, deployments: DeploymentRecords, store: ContentStore): DeploymentRecorder {
  return {
    beginStep: (id, step) => deployments.beginStep(id, step),
    endStep: (stepId, outcome, detail) => deployments.endStep(stepId, outcome, detail),
    setBundle: (id, bundleId) => deployments.setBundle(id, bundleId),
    recordObjects: async (id, desired) => deployments.recordObjects(id, await objectRecords(store, desired)),
    recordServices: (id, services) => deployments.recordServices(id, services),
    services: (id) => deployments.services(id),
    finish: (id, status, reason) => deployments.finish(id, status, reason),
    event: (e) => void journal.record(e),
  };
}

/** `stack deploy`: nothing is recorded, so a failure has no previous specs to restore. */
export const NO_RECORDS: DeploymentRecorder = {
  beginStep: () => 0,
  endStep: () => {},
  setBundle: () => {},
  recordObjects: async () => {},
  recordServices: () => {},
  services: () => [],
  finish: () => {},
  event: () => {},
};

/**
 * Network, secret and config specs as the journal keeps them: data goes to
 * the content store, never the journal. A value that arrived sealed is
 * already there as its sealed blob: that digest is kept, and the value is
 * never written anywhere.
 */
async function objectRecords(store: ContentStore, desired: DesiredStack): Promise<ObjectRecord[]> {
  const data = async (name: string, value: string | Uint8Array | undefined) => {
    const sealed = desired.sealedData?.[name];
    if (sealed !== undefined) return { dataDigest: sealed, sealed: true };
    return { dataDigest: value === undefined ? null : await store.putBytes(dataOf(value)) };
  };
  const records: ObjectRecord[] = desired.networks.map((n) => ({ kind: 'network', name: n.Name, spec: { ...n }, dataDigest: null }));
  for (const { Data, ...spec } of desired.secrets) records.push({ kind: 'secret', name: spec.Name, spec, ...(await data(spec.Name, Data)) });
  for (const { Data, ...spec } of desired.configs) records.push({ kind: 'config', name: spec.Name, spec, ...(await data(spec.Name, Data)) });
  return records;
}
