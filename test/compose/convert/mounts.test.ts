import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServiceVolume, VolumeConfig } from '../../../src/compose/model.js';
import type { Mount } from '../../../src/docker/types.js';
import { convertOne, service } from './fixtures.js';

const vol = (over: Partial<VolumeConfig> = {}): VolumeConfig => ({ driver_opts: {}, external: false, labels: {}, ...over });
const NS = { 'com.docker.stack.namespace': 'shop' };
const volumes: Record<string, VolumeConfig> = {
  data: vol({ labels: { backup: 'daily' } }),
  cache: vol({ driver: 'local', driver_opts: { type: 'tmpfs', device: 'tmpfs' } }),
  optsonly: vol({ driver_opts: { o: 'size=10m' } }),
  shared: vol({ name: 'corp_shared' }),
  legacy: vol({ external: true, name: 'legacy_data' }),
};

// Each service volume and the mount docker's convert/volume.go makes of it.
const cases: [string, ServiceVolume, Mount][] = [
  [
    'named volume: prefixed, stack label plus its labels',
    { type: 'volume', source: 'data', target: '/data', read_only: false },
    { Type: 'volume', Source: 'shop_data', Target: '/data', VolumeOptions: { Labels: { ...NS, backup: 'daily' } } },
  ],
  [
    'named volume with nocopy and read_only',
    { type: 'volume', source: 'data', target: '/data', read_only: true, volume: { nocopy: true } },
    { Type: 'volume', Source: 'shop_data', Target: '/data', ReadOnly: true, VolumeOptions: { NoCopy: true, Labels: { ...NS, backup: 'daily' } } },
  ],
  [
    'named volume with driver and options',
    { type: 'volume', source: 'cache', target: '/cache', read_only: false },
    { Type: 'volume', Source: 'shop_cache', Target: '/cache', VolumeOptions: { Labels: NS, DriverConfig: { Name: 'local', Options: { type: 'tmpfs', device: 'tmpfs' } } } },
  ],
  [
    'named volume with driver options only',
    { type: 'volume', source: 'optsonly', target: '/o', read_only: false },
    { Type: 'volume', Source: 'shop_optsonly', Target: '/o', VolumeOptions: { Labels: NS, DriverConfig: { Options: { o: 'size=10m' } } } },
  ],
  [
    'named volume with name:',
    { type: 'volume', source: 'shared', target: '/s', read_only: false },
    { Type: 'volume', Source: 'corp_shared', Target: '/s', VolumeOptions: { Labels: NS } },
  ],
  [
    'external volume: its name, no labels',
    { type: 'volume', source: 'legacy', target: '/l', read_only: false, volume: { nocopy: true } },
    { Type: 'volume', Source: 'legacy_data', Target: '/l', VolumeOptions: { NoCopy: true } },
  ],
  ['anonymous volume: no options', { type: 'volume', target: '/anon', read_only: false }, { Type: 'volume', Target: '/anon' }],
  [
    'bind with propagation and consistency',
    { type: 'bind', source: '/srv/logs', target: '/logs', read_only: true, consistency: 'cached', bind: { propagation: 'rshared' } },
    { Type: 'bind', Source: '/srv/logs', Target: '/logs', ReadOnly: true, Consistency: 'cached', BindOptions: { Propagation: 'rshared' } },
  ],
  ['bind without options', { type: 'bind', source: '/etc/timezone', target: '/etc/timezone', read_only: true }, { Type: 'bind', Source: '/etc/timezone', Target: '/etc/timezone', ReadOnly: true }],
  [
    'tmpfs with size and mode (mode is airlock carrying what docker drops)',
    { type: 'tmpfs', target: '/run/app', read_only: false, tmpfs: { size: 64 * 2 ** 20, mode: 0o1777 } },
    { Type: 'tmpfs', Target: '/run/app', TmpfsOptions: { SizeBytes: 64 * 2 ** 20, Mode: 0o1777 } },
  ],
  ['tmpfs without options', { type: 'tmpfs', target: '/tmp', read_only: false }, { Type: 'tmpfs', Target: '/tmp' }],
];

for (const [name, v, expected] of cases) {
  test(`mount: ${name}`, () => {
    const { spec, notices } = convertOne(service('web', { volumes: [v] }), { volumes });
    assert.deepEqual(spec.TaskTemplate?.ContainerSpec?.Mounts, [expected]);
    assert.deepEqual(notices, []);
  });
}

test('mounts keep the order written; no volumes, no Mounts', () => {
  const { spec } = convertOne(
    service('web', {
      volumes: [
        { type: 'tmpfs', target: '/b', read_only: false },
        { type: 'volume', target: '/a', read_only: false },
      ],
    }),
  );
  assert.deepEqual(spec.TaskTemplate?.ContainerSpec?.Mounts?.map((m) => m.Target), ['/b', '/a']);
  assert.equal(convertOne(service('web')).spec.TaskTemplate?.ContainerSpec?.Mounts, undefined);
});

const errors: [string, ServiceVolume, string][] = [
  ['undefined named volume', { type: 'volume', source: 'nope', target: '/x', read_only: false }, 'services.web.volumes[0].source'],
  ['bind without a source', { type: 'bind', target: '/x', read_only: false }, 'services.web.volumes[0].source'],
  ['tmpfs with a source', { type: 'tmpfs', source: 'x', target: '/x', read_only: false }, 'services.web.volumes[0].source'],
  ['volume with tmpfs options', { type: 'volume', source: 'data', target: '/x', read_only: false, tmpfs: { size: 1 } }, 'services.web.volumes[0].tmpfs'],
  ['bind with volume options', { type: 'bind', source: '/x', target: '/x', read_only: false, volume: { nocopy: true } }, 'services.web.volumes[0].volume'],
];
for (const [name, v, path] of errors) {
  test(`mount error: ${name}`, () => {
    const { notices } = convertOne(service('web', { volumes: [v] }), { volumes });
    assert.deepEqual(notices.map((n) => [n.level, n.path]), [['error', path]]);
  });
}
