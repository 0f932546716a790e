import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCompose } from '../../../src/compose/load/index.js';
import type { ServiceConfig } from '../../../src/compose/model.js';
import { FIXTURES } from './helpers.js';

async function loadFiles(names: string[], contents?: string[]) {
  const files = await Promise.all(
    names.map(async (name, i) => ({ name, content: contents?.[i] ?? (await readFile(join(FIXTURES, name), 'utf8')) })),
  );
  return loadCompose({ files, workingDir: '/srv/shop', env: {} });
}

test('two files from disk merge the way docker stack deploy merges them', async () => {
  const { config } = await loadFiles(['base.yml', 'override.yml']);
  assert.deepEqual(config.files, ['base.yml', 'override.yml']);
  // Services merged by name, sorted by name; a service only in the override is added.
  assert.deepEqual(config.services.map((s) => s.name), ['cache', 'db', 'web']);
  const web = config.services.find((s) => s.name === 'web') as ServiceConfig;

  // Scalars: the later file wins…
  assert.equal(web.image, 'registry.local/web:2.0');
  // …unless it writes Go's zero value, which mergo treats as unset.
  assert.equal(web.read_only, true);
  // A command set in the later file replaces the earlier one.
  assert.deepEqual(web.command, ['nginx', '-g', 'daemon off;', '-c', '/etc/nginx/alt.conf']);

  // Mappings merge key by key.
  assert.deepEqual(web.labels, { tier: 'edge', owner: 'shop' });
  assert.deepEqual(web.environment, { LOG_LEVEL: 'debug', KEEP: 'base', EMPTIED: 'base', ADDED: 'true' });
  assert.deepEqual(web.deploy.labels, { a: '1', b: '2' });

  // Ports: the union, identical entries once, by published port.
  assert.deepEqual(web.ports, [
    { target: 80, published: 8080, protocol: 'tcp', mode: 'ingress' },
    { target: 443, published: 8443, protocol: 'tcp', mode: 'ingress' },
    { target: 90, published: 9090, protocol: 'tcp', mode: 'ingress' },
  ]);
  // Volumes by target (the later file wins), sorted by target.
  assert.deepEqual(web.volumes, [
    { type: 'volume', source: 'cache', target: '/cache', read_only: false },
    { type: 'bind', source: '/srv/shop/override-conf', target: '/etc/nginx/conf.d', read_only: false },
    { type: 'volume', source: 'data', target: '/var/lib/web', read_only: false },
  ]);
  // Secrets by source, sorted by source.
  assert.deepEqual(web.secrets, [{ source: 'tls_cert', target: 'override.pem' }, { source: 'tls_key' }]);

  // Other lists are appended.
  assert.deepEqual(web.cap_add, ['NET_ADMIN', 'SYS_PTRACE']);
  assert.deepEqual(web.dns, ['10.0.0.1', '10.0.0.2']);
  assert.deepEqual(web.deploy.placement?.constraints, ['node.role == worker', 'node.labels.zone == a']);

  // Counts docker keeps as pointers override even with 0; nested structs merge field by field.
  assert.equal(web.deploy.replicas, 0);
  assert.deepEqual(web.deploy.resources?.limits, { cpus: '1', memory: 512 * 1024 ** 2 });

  // Logging without a driver in the later file keeps the driver and merges options.
  assert.deepEqual(web.logging, { driver: 'json-file', options: { 'max-size': '20m', 'max-file': '3' } });
  // Service networks per name: later aliases replace, an address not written is kept.
  assert.deepEqual(web.networks, { front: { aliases: ['web'], ipv4_address: '10.1.0.10' }, back: null });
  // Ulimits per name.
  assert.deepEqual(web.ulimits, { nofile: { soft: 1024, hard: 2048 }, nproc: { soft: 200, hard: 200 } });

  // Top-level entries of the same name are replaced whole.
  assert.deepEqual(config.volumes['data'], { driver_opts: {}, external: true, labels: {}, name: 'data' });
  assert.deepEqual(Object.keys(config.volumes).sort(), ['cache', 'data']);
  assert.deepEqual(Object.keys(config.networks).sort(), ['back', 'front']);
  assert.equal(config.networks['front']?.driver, 'overlay');
});

test('logging with a different driver replaces the earlier logging whole', async () => {
  const { config } = await loadFiles(
    ['a.yml', 'b.yml'],
    [
      'services:\n  s:\n    image: x\n    logging:\n      driver: json-file\n      options: {max-size: 10m}\n',
      'services:\n  s:\n    logging:\n      driver: syslog\n',
    ],
  );
  assert.deepEqual(config.services[0]?.logging, { driver: 'syslog', options: {} });
});

test('lists on one side only are taken as written', async () => {
  const { config } = await loadFiles(
    ['a.yml', 'b.yml'],
    [
      'services:\n  s:\n    image: x\n',
      'services:\n  s:\n    volumes: ["/z", "/a"]\n    ports: ["9000:90", "8000:80"]\n',
    ],
  );
  const s = config.services[0];
  assert.deepEqual(s?.volumes.map((v) => v.target), ['/z', '/a']);
  assert.deepEqual(s?.ports.map((p) => p.published), [9000, 8000]);
  assert.equal(s?.image, 'x');
});

test('a healthcheck test in a later file replaces the earlier one', async () => {
  const { config } = await loadFiles(
    ['a.yml', 'b.yml'],
    [
      'services:\n  s:\n    image: x\n    healthcheck: {test: "true", interval: 5s, retries: 3}\n',
      'services:\n  s:\n    healthcheck: {test: ["CMD", "check"], retries: 0}\n',
    ],
  );
  assert.deepEqual(config.services[0]?.healthcheck, { test: ['CMD', 'check'], interval: '5s', retries: 0 });
});

test('notices and unsupported keys from every file are kept', async () => {
  const { config, notices } = await loadFiles(
    ['a.yml', 'b.yml'],
    ['services:\n  s:\n    image: x\n    privileged: true\n', 'services:\n  s:\n    container_name: s1\n'],
  );
  assert.deepEqual(
    notices.map((n) => [n.file, n.path]),
    [
      ['a.yml', 'services.s.privileged'],
      ['b.yml', 'services.s.container_name'],
    ],
  );
  assert.deepEqual(config.services[0]?.unsupported, ['services.s.privileged', 'services.s.container_name']);
});
