import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServiceConfig } from '../../../src/compose/model.js';
import { compareVersions } from '../../../src/compose/convert/index.js';
import { convert, compose, service } from './fixtures.js';

test('API versions compare numerically', () => {
  assert.ok(compareVersions('1.41', '1.44') < 0);
  assert.ok(compareVersions('1.100', '1.51') > 0);
  assert.equal(compareVersions('1.44', '1.44.0'), 0);
});

// Each gated key: the key path, its minimum version (Engine API version history /
// `docker service create` "API 1.xx+" marks), what the spec gets below and at it.
interface Gate {
  over: Partial<ServiceConfig>;
  path: string;
  min: string;
  below: string;
  level?: 'warning' | 'error';
  read: (s: ReturnType<typeof convert>['services'][number]) => unknown;
}
const gates: Gate[] = [
  { over: { oom_score_adj: 500 }, path: 'services.web.oom_score_adj', min: '1.46', below: '1.45', read: (s) => s.TaskTemplate?.ContainerSpec?.OomScoreAdj },
  {
    over: { healthcheck: { test: ['CMD', 'true'], start_interval: '1s' } },
    path: 'services.web.healthcheck.start_interval',
    min: '1.44',
    below: '1.43',
    read: (s) => s.TaskTemplate?.ContainerSpec?.Healthcheck?.StartInterval,
  },
  {
    over: { deploy: { labels: {}, resources: { limits: { pids: 100 } } } },
    path: 'services.web.deploy.resources.limits.pids',
    min: '1.41',
    below: '1.40',
    read: (s) => s.TaskTemplate?.Resources?.Limits?.Pids,
  },
  { over: { ulimits: { nofile: { soft: 1, hard: 2 } } }, path: 'services.web.ulimits', min: '1.41', below: '1.40', read: (s) => s.TaskTemplate?.ContainerSpec?.Ulimits },
  { over: { cap_add: ['NET_ADMIN'] }, path: 'services.web.cap_add', min: '1.41', below: '1.40', read: (s) => s.TaskTemplate?.ContainerSpec?.CapabilityAdd },
  { over: { cap_drop: ['CHOWN'] }, path: 'services.web.cap_drop', min: '1.41', below: '1.40', read: (s) => s.TaskTemplate?.ContainerSpec?.CapabilityDrop },
  { over: { sysctls: { 'net.ipv4.ip_forward': '1' } }, path: 'services.web.sysctls', min: '1.40', below: '1.39', read: (s) => s.TaskTemplate?.ContainerSpec?.Sysctls },
  {
    over: { deploy: { labels: {}, placement: { constraints: [], preferences: [], max_replicas_per_node: 1 } } },
    path: 'services.web.deploy.placement.max_replicas_per_node',
    min: '1.40',
    below: '1.39',
    read: (s) => s.TaskTemplate?.Placement?.MaxReplicas,
  },
  { over: { init: true }, path: 'services.web.init', min: '1.37', below: '1.36', read: (s) => s.TaskTemplate?.ContainerSpec?.Init },
  {
    over: { deploy: { labels: {}, mode: 'global-job' } },
    path: 'services.web.deploy.mode',
    min: '1.41',
    below: '1.40',
    level: 'error',
    read: () => undefined,
  },
];

for (const g of gates) {
  test(`${g.path} needs API ${g.min}: ${g.level ?? 'warning'} and left out below`, () => {
    const below = convert(compose({ services: [service('web', g.over)] }), g.below);
    assert.deepEqual(below.notices.map((n) => [n.level, n.path]), [[g.level ?? 'warning', g.path]]);
    assert.match(below.notices[0]!.message, new RegExp(`API ${g.min.replace('.', '\\.')} or later`));
    assert.equal(g.read(below.services[0]!), undefined);
    const at = convert(compose({ services: [service('web', g.over)] }), g.min);
    assert.deepEqual(at.notices, []);
    if (!g.level) assert.notEqual(g.read(at.services[0]!), undefined);
  });
}

test('networks: CheckDuplicate below API 1.44 (as docker client sets it), not from 1.44 on', () => {
  const cfg = compose({ services: [service('web')] });
  assert.equal(convert(cfg, '1.41').networks[0]!.CheckDuplicate, true);
  assert.equal(convert(cfg, '1.43').networks[0]!.CheckDuplicate, true);
  assert.equal('CheckDuplicate' in convert(cfg, '1.44').networks[0]!, false);
  assert.equal('CheckDuplicate' in convert(cfg, '1.51').networks[0]!, false);
});
