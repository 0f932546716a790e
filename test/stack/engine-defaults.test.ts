/**
 * The planner's comparison on what real engines stored (recordings in
 * engine-specs/, see test/helpers/engine-specs.ts), with no engine: a spec
 * the engine only completed is no change; a real change, and a field set
 * back to the engine's default, are.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NamedServiceSpec, Service } from '../../src/docker/index.js';
import { planStack } from '../../src/stack/plan.js';
import type { FieldChange } from '../../src/stack/types.js';
import { loadEngineRecordings, unwitnessedRules, type EngineRecording } from '../helpers/engine-specs.js';

const recordings = loadEngineRecordings();
const engines = [...new Set(recordings.map((r) => r.engine))];

/** Every recorded service, planned against what the engine stored for it. */
function planRecording(rec: EngineRecording) {
  return planStack(
    { stack: 'recorded', networks: [], secrets: [], configs: [], services: rec.services.map((s) => s.sent) },
    { apiVersion: rec.engine.apiVersion, services: rec.services.map((s) => s.inspect), networks: [], secrets: [], configs: [] },
    { prune: false },
  );
}

test('recordings of a Docker 20.10 engine are there', () => {
  assert.ok(engines.some((e) => e.startsWith('docker-20.10')), `engines recorded: ${engines.join(', ')}`);
});

describe('what an engine stored is no change', () => {
  for (const { engine, name, recording } of recordings) {
    test(`${engine}/${name}`, () => {
      const plan = planRecording(recording);
      assert.deepEqual(plan.services, []);
      assert.deepEqual(plan.unchanged, recording.services.map((s) => s.sent.Name).sort());
    });
  }
});

describe('every engine default of the table is seen in the recordings of each engine', () => {
  for (const engine of engines) {
    test(engine, () => {
      const ofEngine = recordings.filter((r) => r.engine === engine);
      const apiVersion = ofEngine[0]!.recording.engine.apiVersion;
      const pairs = ofEngine.flatMap((r) => r.recording.services);
      assert.deepEqual(unwitnessedRules(pairs, apiVersion).map((r) => r.path), []);
    });
  }
});

/** One recorded service of the 20.10 engine, by file and service name: `sent` as airlock sent it, `stored` as the engine returned it. */
function recorded(file: string, service: string): { sent: NamedServiceSpec; stored: Service; apiVersion: string } {
  const r = recordings.find((x) => x.engine.startsWith('docker-20.10') && x.name === file);
  const s = r?.recording.services.find((x) => x.sent.Name === service);
  assert.ok(r && s, `recording ${file} has ${service}`);
  return { sent: structuredClone(s.sent), stored: structuredClone(s.inspect), apiVersion: r.recording.engine.apiVersion };
}

interface Case {
  name: string;
  file: string;
  service: string;
  /** The engine API version to plan at; the recording's when not given. */
  apiVersion?: string;
  /** Edits the spec to send and the service as stored, before planning. */
  edit: (sent: NamedServiceSpec, stored: Service) => void;
  changes: [path: string, before: unknown, after: unknown][];
}

const APP = { file: 'parity-19-engine-defaults', service: 'parity_air_19_app' };

const CASES: Case[] = [
  // Unset against the engine's default: equal.
  { name: 'an unset update order is the engine\'s stop-first', ...APP, edit: (s) => delete s.UpdateConfig!.Order, changes: [] },
  { name: 'an unset restart condition and attempts (only a delay in the file) are any and 0', ...APP, edit: () => undefined, changes: [] },
  { name: 'an empty log driver name is the daemon\'s default', ...APP, edit: (s) => void (s.TaskTemplate!.LogDriver!.Name = ''), changes: [] },
  { name: 'an unset replica count is 1', ...APP, edit: (s) => void (s.Mode = { Replicated: {} }), changes: [] },
  { name: 'no mode at all is one replica', ...APP, edit: (s) => delete s.Mode, changes: [] },
  { name: 'a bind\'s consistency is kept by no engine', file: 'parity-10-volumes', service: 'parity_air_10_store', edit: (s) => {
    for (const m of s.TaskTemplate!.ContainerSpec!.Mounts!) if (m.Consistency) m.Consistency = 'delegated';
  }, changes: [] },
  // A real change.
  { name: 'start-first instead of stop-first is a change', ...APP, edit: (s) => void (s.UpdateConfig!.Order = 'start-first'), changes: [['UpdateConfig.Order', 'stop-first', 'start-first']] },
  { name: 'three restart attempts instead of the default is a change', ...APP, edit: (s) => void (s.TaskTemplate!.RestartPolicy!.MaxAttempts = 3), changes: [['TaskTemplate.RestartPolicy.MaxAttempts', 0, 3]] },
  // Back to the default, from a value a previous release or a hand set.
  { name: 'an order left unset after start-first is an update to stop-first', ...APP, edit: (_s, c) => void (c.Spec.UpdateConfig!.Order = 'start-first'), changes: [['UpdateConfig.Order', 'start-first', 'stop-first']] },
  { name: 'stop-first written out after start-first is an update', ...APP, edit: (s, c) => {
    c.Spec.UpdateConfig!.Order = 'start-first';
    s.UpdateConfig!.Order = 'stop-first';
  }, changes: [['UpdateConfig.Order', 'start-first', 'stop-first']] },
  { name: 'restart attempts set by hand go back to 0', ...APP, edit: (_s, c) => void (c.Spec.TaskTemplate!.RestartPolicy!.MaxAttempts = 5), changes: [['TaskTemplate.RestartPolicy.MaxAttempts', 5, 0]] },
  { name: 'a service scaled by hand goes back to 1 replica', ...APP, edit: (_s, c) => void (c.Spec.Mode = { Replicated: { Replicas: 3 } }), changes: [['Mode.Replicated.Replicas', 3, 1]] },
  { name: 'a log driver named before goes back to the daemon\'s default', ...APP, edit: (_s, c) => void (c.Spec.TaskTemplate!.LogDriver!.Name = 'json-file'), changes: [['TaskTemplate.LogDriver.Name', 'json-file', undefined]] },
  { name: 'a rollback config the file no longer has is removed', file: 'parity-01-minimal', service: 'parity_air_01_web', edit: (_s, c) => {
    c.Spec.RollbackConfig = { Parallelism: 1, FailureAction: 'pause', MaxFailureRatio: 0, Order: 'stop-first' };
  }, changes: [['RollbackConfig', { Parallelism: 1, FailureAction: 'pause', MaxFailureRatio: 0, Order: 'stop-first' }, undefined]] },
  // By API version: what an older engine strips is no change there; a newer one keeps and fills it.
  { name: 'a healthcheck start interval is no change where the engine (API 1.41) strips it', file: 'parity-07-healthcheck', service: 'parity_air_07_exec', edit: (s) => {
    s.TaskTemplate!.ContainerSpec!.Healthcheck!.StartInterval = 2e9;
  }, changes: [] },
  { name: 'a healthcheck start interval is a change at API 1.44', file: 'parity-07-healthcheck', service: 'parity_air_07_exec', apiVersion: '1.44', edit: (s) => {
    s.TaskTemplate!.ContainerSpec!.Healthcheck!.StartInterval = 2e9;
  }, changes: [['TaskTemplate.ContainerSpec.Healthcheck.StartInterval', undefined, 2e9]] },
  { name: 'NoNewPrivileges false, as API 1.44 engines return it, equals the unset field', ...APP, apiVersion: '1.44', edit: (_s, c) => {
    c.Spec.TaskTemplate!.ContainerSpec!.Privileges = { CredentialSpec: null, SELinuxContext: null, NoNewPrivileges: false };
  }, changes: [] },
  { name: 'NoNewPrivileges set by hand goes back to false at API 1.44', ...APP, apiVersion: '1.44', edit: (_s, c) => {
    c.Spec.TaskTemplate!.ContainerSpec!.Privileges = { CredentialSpec: null, SELinuxContext: null, NoNewPrivileges: true };
  }, changes: [['TaskTemplate.ContainerSpec.Privileges.NoNewPrivileges', true, false]] },
];

describe('the comparison, case by case, on recorded specs', () => {
  for (const c of CASES) {
    test(c.name, () => {
      const { sent, stored, apiVersion } = recorded(c.file, c.service);
      c.edit(sent, stored);
      const plan = planStack(
        { stack: 'recorded', networks: [], secrets: [], configs: [], services: [sent] },
        { apiVersion: c.apiVersion ?? apiVersion, services: [stored], networks: [], secrets: [], configs: [] },
        { prune: false },
      );
      const step = plan.services[0];
      const changes: FieldChange[] = step?.action === 'update-service' ? step.changes : [];
      assert.deepEqual(changes.map((x) => [x.path, x.before, x.after]), c.changes);
      assert.deepEqual(plan.unchanged, c.changes.length === 0 ? [c.service] : []);
      if (step?.action === 'update-service') assert.deepEqual(step.spec, { ...sent, TaskTemplate: { ...sent.TaskTemplate, ForceUpdate: 0 } }, 'the update sends the spec as converted');
    });
  }
});
