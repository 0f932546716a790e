import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DeployConfig, ServiceConfig } from '../../../src/compose/model.js';
import type { ServiceSpec, TaskSpec } from '../../../src/docker/types.js';
import { convertOne, service } from './fixtures.js';

const S = 1_000_000_000;

// deploy.mode and replicas → ServiceSpec.Mode (docker's convertDeployMode).
const modes: [string, Partial<DeployConfig>, ServiceSpec['Mode']][] = [
  ['no mode: replicated, replicas left to the engine', {}, { Replicated: {} }],
  ['replicated with replicas', { mode: 'replicated', replicas: 3 }, { Replicated: { Replicas: 3 } }],
  ['replicas 0 is kept', { replicas: 0 }, { Replicated: { Replicas: 0 } }],
  ['global', { mode: 'global' }, { Global: {} }],
  ['replicated-job: replicas is both MaxConcurrent and TotalCompletions', { mode: 'replicated-job', replicas: 4 }, { ReplicatedJob: { MaxConcurrent: 4, TotalCompletions: 4 } }],
  ['replicated-job without replicas', { mode: 'replicated-job' }, { ReplicatedJob: {} }],
  ['global-job', { mode: 'global-job' }, { GlobalJob: {} }],
];
for (const [name, deploy, expected] of modes) {
  test(`mode: ${name}`, () => {
    const { spec, notices } = convertOne(service('web', { deploy }));
    assert.deepEqual(spec.Mode, expected);
    assert.deepEqual(notices, []);
  });
}

test('mode: replicas with global is an error, as docker refuses it', () => {
  const { notices } = convertOne(service('web', { deploy: { mode: 'global', replicas: 2 } }));
  assert.deepEqual(notices.map((n) => [n.level, n.path]), [['error', 'services.web.deploy.replicas']]);
});

// deploy.resources → TaskTemplate.Resources (docker's convertResources; cpus via ParseCPUs, ×10⁹).
const resources: [string, DeployConfig['resources'], TaskSpec['Resources']][] = [
  ['none: an empty object, as docker always sends one', undefined, {}],
  [
    'limits and reservations',
    { limits: { cpus: '0.5', memory: 64 * 2 ** 20, pids: 100 }, reservations: { cpus: '0.25', memory: 32 * 2 ** 20 } },
    { Limits: { NanoCPUs: 0.5 * S, MemoryBytes: 64 * 2 ** 20, Pids: 100 }, Reservations: { NanoCPUs: 0.25 * S, MemoryBytes: 32 * 2 ** 20 } },
  ],
  ['whole cpus', { limits: { cpus: '2' } }, { Limits: { NanoCPUs: 2 * S } }],
  ['cpus with an exponent', { limits: { cpus: '1e-3' } }, { Limits: { NanoCPUs: 1_000_000 } }],
  ['cpus as a fraction', { limits: { cpus: '3/2' } }, { Limits: { NanoCPUs: 1.5 * S } }],
  ['empty limits stay an empty object', { limits: {} }, { Limits: {} }],
  [
    'generic resources',
    { reservations: { generic_resources: [{ discrete_resource_spec: { kind: 'gpu', value: 2 } }] } },
    { Reservations: { GenericResources: [{ DiscreteResourceSpec: { Kind: 'gpu', Value: 2 } }] } },
  ],
];
for (const [name, res, expected] of resources) {
  test(`resources: ${name}`, () => {
    const { spec, notices } = convertOne(service('web', { deploy: res ? { resources: res } : {} }));
    assert.deepEqual(spec.TaskTemplate?.Resources, expected);
    assert.deepEqual(notices, []);
  });
}

test('resources: cpus finer than a nanoCPU is an error ("value is too precise")', () => {
  const { notices } = convertOne(service('web', { deploy: { resources: { limits: { cpus: '0.0000000001' } } } }));
  assert.deepEqual(notices.map((n) => [n.level, n.path]), [['error', 'services.web.deploy.resources.limits.cpus']]);
});

// restart_policy, and restart: as the fallback (docker's convertRestartPolicy).
type Restart = Pick<ServiceConfig, 'restart'> & { deploy?: Partial<DeployConfig> };
const restarts: [string, Restart, TaskSpec['RestartPolicy']][] = [
  ['nothing', {}, undefined],
  [
    'restart_policy in full',
    { deploy: { restart_policy: { condition: 'on-failure', delay: '5s', max_attempts: 3, window: '1m30s' } } },
    { Condition: 'on-failure', Delay: 5 * S, MaxAttempts: 3, Window: 90 * S },
  ],
  ['restart_policy with zero delay keeps it', { deploy: { restart_policy: { condition: 'any', delay: '0s' } } }, { Condition: 'any', Delay: 0 }],
  ['restart: no', { restart: 'no' }, undefined],
  ['restart: always', { restart: 'always' }, { Condition: 'any' }],
  ['restart: unless-stopped', { restart: 'unless-stopped' }, { Condition: 'any' }],
  ['restart: always ignores a count', { restart: 'always:3' }, { Condition: 'any' }],
  ['restart: on-failure', { restart: 'on-failure' }, { Condition: 'on-failure', MaxAttempts: 0 }],
  ['restart: on-failure:4', { restart: 'on-failure:4' }, { Condition: 'on-failure', MaxAttempts: 4 }],
];
for (const [name, over, expected] of restarts) {
  test(`restart: ${name}`, () => {
    const { spec, notices } = convertOne(service('web', over));
    assert.deepEqual(spec.TaskTemplate?.RestartPolicy, expected);
    assert.deepEqual(notices, []);
  });
}

test('restart: next to restart_policy it is ignored, with a warning', () => {
  const { spec, notices } = convertOne(service('web', { restart: 'always', deploy: { restart_policy: { condition: 'none' } } }));
  assert.deepEqual(spec.TaskTemplate?.RestartPolicy, { Condition: 'none' });
  assert.deepEqual(notices.map((n) => [n.level, n.path]), [['warning', 'services.web.restart']]);
});

for (const bad of ['sometimes', 'on-failure:x', 'on-failure:-1']) {
  test(`restart: "${bad}" is an error`, () => {
    const { notices } = convertOne(service('web', { restart: bad }));
    assert.deepEqual(notices.map((n) => [n.level, n.path]), [['error', 'services.web.restart']]);
  });
}

// update_config / rollback_config (docker's convertUpdateConfig: Parallelism defaults to 1).
test('update_config in full, rollback_config with defaults', () => {
  const { spec } = convertOne(
    service('web', {
      deploy: {
        update_config: { parallelism: 2, delay: '10s', failure_action: 'rollback', monitor: '30s', max_failure_ratio: 0.5, order: 'start-first' },
        rollback_config: {},
      },
    }),
  );
  assert.deepEqual(spec.UpdateConfig, { Parallelism: 2, Delay: 10 * S, FailureAction: 'rollback', Monitor: 30 * S, MaxFailureRatio: 0.5, Order: 'start-first' });
  assert.deepEqual(spec.RollbackConfig, { Parallelism: 1, MaxFailureRatio: 0, Order: '' });
});

test('update_config: parallelism 0 (all at once) is kept', () => {
  assert.equal(convertOne(service('web', { deploy: { update_config: { parallelism: 0 } } })).spec.UpdateConfig?.Parallelism, 0);
});

test('no update_config: no UpdateConfig, the engine uses its defaults', () => {
  const { spec } = convertOne(service('web'));
  assert.equal(spec.UpdateConfig, undefined);
  assert.equal(spec.RollbackConfig, undefined);
});

// placement (always an object, as docker sends it).
const placements: [string, DeployConfig['placement'], TaskSpec['Placement']][] = [
  ['none', undefined, {}],
  [
    'constraints, spread preferences and max replicas',
    { constraints: ['node.role == manager', 'node.labels.zone == a'], preferences: [{ spread: 'node.labels.rack' }], max_replicas_per_node: 2 },
    { Constraints: ['node.role == manager', 'node.labels.zone == a'], Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.rack' } }], MaxReplicas: 2 },
  ],
  ['empty lists', { constraints: [], preferences: [] }, {}],
];
for (const [name, placement, expected] of placements) {
  test(`placement: ${name}`, () => {
    assert.deepEqual(convertOne(service('web', { deploy: placement ? { placement } : {} })).spec.TaskTemplate?.Placement, expected);
  });
}

// ports and endpoint_mode → EndpointSpec (always an object; ports sorted by published port).
test('endpoint: ports sorted by published port, stable, unpublished first', () => {
  const { spec } = convertOne(
    service('web', {
      ports: [
        { target: 80, published: 8080, protocol: 'tcp', mode: 'ingress' },
        { target: 53, published: 5353, protocol: 'udp', mode: 'host' },
        { target: 9000, protocol: 'tcp', mode: 'ingress' },
        { target: 53, published: 5353, protocol: 'tcp', mode: 'host' },
      ],
      deploy: { endpoint_mode: 'vip' },
    }),
  );
  assert.deepEqual(spec.EndpointSpec, {
    Mode: 'vip',
    Ports: [
      { Protocol: 'tcp', TargetPort: 9000, PublishMode: 'ingress' },
      { Protocol: 'udp', TargetPort: 53, PublishedPort: 5353, PublishMode: 'host' },
      { Protocol: 'tcp', TargetPort: 53, PublishedPort: 5353, PublishMode: 'host' },
      { Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress' },
    ],
  });
});

test('endpoint: nothing set is an empty EndpointSpec; dnsrr is kept', () => {
  assert.deepEqual(convertOne(service('web')).spec.EndpointSpec, {});
  assert.deepEqual(convertOne(service('web', { deploy: { endpoint_mode: 'dnsrr' } })).spec.EndpointSpec, { Mode: 'dnsrr' });
});
