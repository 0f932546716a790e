import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Config, NamedServiceSpec, Network, Secret, Service, ServiceSpec } from '../../src/docker/index.js';
import { planStack } from '../../src/stack/plan.js';
import { diffSpecs } from '../../src/stack/spec-diff.js';
import { LOGICAL_NAME_LABEL, NAMESPACE_LABEL } from '../../src/compose/labels.js';
import type { DesiredStack, StackState } from '../../src/stack/types.js';

const ns = { [NAMESPACE_LABEL]: 'web' };
const spec = (name: string, image: string, extra: Partial<ServiceSpec> = {}): NamedServiceSpec => ({
  Name: name,
  Labels: { ...ns },
  TaskTemplate: { ContainerSpec: { Image: image } },
  Mode: { Replicated: { Replicas: 1 } },
  ...extra,
});

/** A service as the engine returns it: the spec completed with the engine's defaults. */
const running = (s: NamedServiceSpec, id: string, version = 7): Service => ({
  ID: id,
  Version: { Index: version },
  CreatedAt: '',
  UpdatedAt: '',
  Spec: {
    ...s,
    TaskTemplate: { ...s.TaskTemplate, ContainerSpec: { ...s.TaskTemplate!.ContainerSpec, Isolation: 'default' }, ForceUpdate: 0, Runtime: 'container' },
  },
});

const empty: StackState = { apiVersion: '1.41', services: [], networks: [], secrets: [], configs: [] };
const desired = (over: Partial<DesiredStack> = {}): DesiredStack => ({ stack: 'web', networks: [], secrets: [], configs: [], services: [], ...over });

test('a first deploy creates networks, secrets and configs, then services', () => {
  const plan = planStack(
    desired({
      networks: [{ Name: 'web_default', Driver: 'overlay', Labels: ns }],
      secrets: [{ Name: 'web_db-0123456789', Data: 'cw==' }],
      configs: [{ Name: 'web_conf-abcdef0123', Data: 'Yw==' }],
      services: [spec('web_app', 'demo/web:1')],
    }),
    empty,
    { prune: false },
  );
  assert.deepEqual(plan.prepare.map((s) => [s.action, s.name]), [
    ['create-network', 'web_default'],
    ['create-secret', 'web_db-0123456789'],
    ['create-config', 'web_conf-abcdef0123'],
  ]);
  assert.deepEqual(plan.services.map((s) => [s.action, s.name]), [['create-service', 'web_app']]);
  assert.deepEqual(plan.cleanup, []);
});

test('an unchanged service gets no step, though the engine completed its spec', () => {
  const s = spec('web_app', 'demo/web:1', { UpdateConfig: { Parallelism: 1 } });
  const engine = running(s, 'id1');
  engine.Spec.UpdateConfig = { Parallelism: 1, FailureAction: 'pause', MaxFailureRatio: 0, Order: 'stop-first' };
  const plan = planStack(desired({ services: [s] }), { ...empty, services: [engine] }, { prune: false });
  assert.deepEqual(plan.services, []);
  assert.deepEqual(plan.unchanged, ['web_app']);
});

test('a changed service is updated at the version read, with a field-level diff, keeping ForceUpdate', () => {
  const before = running(spec('web_app', 'demo/web:1'), 'id1', 42);
  before.Spec.TaskTemplate!.ForceUpdate = 3;
  const plan = planStack(desired({ services: [spec('web_app', 'demo/web:2')] }), { ...empty, services: [before] }, { prune: false });
  const [step] = plan.services;
  assert.equal(step?.action, 'update-service');
  if (step?.action !== 'update-service') return;
  assert.equal(step.id, 'id1');
  assert.equal(step.version, 42);
  assert.equal(step.spec.TaskTemplate?.ForceUpdate, 3);
  assert.deepEqual(step.changes, [{ path: 'TaskTemplate.ContainerSpec.Image', before: 'demo/web:1', after: 'demo/web:2' }]);
});

test('services that left the stack are removed only with prune', () => {
  const current = { ...empty, services: [running(spec('web_app', 'a'), 'id1'), running(spec('web_old', 'b'), 'id2')] };
  const want = desired({ services: [spec('web_app', 'a')] });
  assert.deepEqual(planStack(want, current, { prune: false }).services, []);
  assert.deepEqual(planStack(want, current, { prune: true }).services, [{ action: 'remove-service', name: 'web_old', id: 'id2' }]);
});

test('existing objects are kept; content-named secrets and configs no longer used are cleaned up after', () => {
  const meta = { Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '' };
  const secret = (name: string, id: string, logical?: string): Secret => ({ ID: id, ...meta, Spec: { Name: name, Labels: { ...ns, ...(logical ? { [LOGICAL_NAME_LABEL]: logical } : {}) } } });
  const config = (name: string, id: string): Config => ({ ID: id, ...meta, Spec: { Name: name, Labels: { ...ns, [LOGICAL_NAME_LABEL]: 'conf' } } });
  const network = { Name: 'web_default', Id: 'n1' } as Network;
  const current: StackState = {
    ...empty,
    services: [],
    networks: [network],
    secrets: [secret('web_db-old0000000', 's1', 'db'), secret('web_db-new0000000', 's2', 'db'), secret('web_manual', 's3')],
    configs: [config('web_conf-old0000000', 'c1')],
  };
  const plan = planStack(
    desired({
      networks: [{ Name: 'web_default' }],
      secrets: [{ Name: 'web_db-new0000000' }],
      configs: [{ Name: 'web_conf-new0000000' }],
    }),
    current,
    { prune: false },
  );
  assert.deepEqual(plan.prepare.map((s) => [s.action, s.name]), [['create-config', 'web_conf-new0000000']]);
  // The secret made by hand (no logical-name label) is never removed.
  assert.deepEqual(plan.cleanup.map((s) => [s.action, s.name]), [
    ['remove-secret', 'web_db-old0000000'],
    ['remove-config', 'web_conf-old0000000'],
  ]);
});

test('spec diffs ignore key order and engine defaults, and name each changed leaf', () => {
  const a: NamedServiceSpec = { Name: 'x', TaskTemplate: { ContainerSpec: { Image: 'i', Env: ['A=1'] }, RestartPolicy: { Condition: 'any', MaxAttempts: 0 } } };
  const b: NamedServiceSpec = { TaskTemplate: { RestartPolicy: { MaxAttempts: 0, Condition: 'any' }, ContainerSpec: { Env: ['A=1'], Image: 'i', Isolation: 'default' }, Runtime: 'container' }, Name: 'x', Labels: {} };
  assert.deepEqual(diffSpecs(a, b), []);
  const c: NamedServiceSpec = { ...a, TaskTemplate: { ...a.TaskTemplate, ContainerSpec: { Image: 'i', Env: ['A=2'] } } };
  assert.deepEqual(diffSpecs(a, c).map((x) => x.path), ['TaskTemplate.ContainerSpec.Env']);
});
