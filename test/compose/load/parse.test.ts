import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCompose } from '../../../src/compose/load/index.js';
import { parseComposeYaml } from '../../../src/compose/load/parse.js';
import { FIXTURES, load, rejectsConfig } from './helpers.js';

test('anchors, aliases, merge keys and x-* fields (fixture file)', async () => {
  const content = await readFile(join(FIXTURES, 'anchors.yml'), 'utf8');
  const { config, notices } = await loadCompose({ files: [{ name: 'anchors.yml', content }], workingDir: '/srv/app', env: {} });
  const [api, worker] = config.services;
  assert.equal(api?.name, 'api');
  assert.equal(worker?.name, 'worker');
  // `<<: *defaults` brings image, logging and deploy; explicit keys win over merged ones.
  assert.equal(api?.image, 'registry.local/shop:1.0');
  assert.equal(worker?.image, 'registry.local/worker:1.0');
  assert.deepEqual(api?.logging, { driver: 'json-file', options: { 'max-size': '10m' } });
  assert.deepEqual(worker?.logging, api?.logging);
  assert.equal(api?.deploy.replicas, 2);
  assert.equal(worker?.deploy.replicas, 1);
  // An alias reuses a whole node.
  assert.deepEqual(worker?.environment, api?.environment);
  assert.deepEqual(api?.environment, { LOG_LEVEL: 'info', TZ: 'UTC' });
  // x-* fields: top level kept in extensions, service level in the service's extensions.
  assert.deepEqual(Object.keys(config.extensions).sort(), ['x-defaults', 'x-env', 'x-owner']);
  assert.deepEqual(config.extensions['x-owner'], { team: 'shop', contact: 'ops@example.test' });
  assert.deepEqual(api?.extensions, { 'x-tier': 'frontend' });
  assert.deepEqual(notices, []);
});

test('YAML 1.1 scalars as docker (yaml.v2) reads them', () => {
  const dict = parseComposeYaml(
    't.yml',
    [
      'on_: on', 'yes_: yes', 'n_: N', 'octal: 0755', 'int: 1_000', 'float: 1.5', 'ports: 22:22',
      'date: 2001-12-14', 'dot: .', 'quoted: "yes"', 'nul: ~', 'hex: 0x1F',
    ].join('\n'),
  );
  assert.deepEqual(dict, {
    on_: true, yes_: true, n_: false, octal: 493, int: 1000, float: 1.5,
    ports: '22:22', // no base-60 numbers in yaml.v2
    date: '2001-12-14', // timestamps stay strings
    dot: '.', quoted: 'yes', nul: null, hex: 31,
  });
});

test('a YAML syntax error names the file, line and column', async () => {
  const cases: [string, string][] = [
    ['services:\n  web:\n    image: [nginx\n    ports: []\n', 'line 4'],
    ['services:\n  web:\n    image: nginx\n   ports: []\n', 'line 4, column'],
    ['services:\n  web:\n    image: nginx\n    image: httpd\n', 'line 4, column 5'],
  ];
  for (const [yaml, where] of cases) {
    await rejectsConfig(load(yaml, { name: 'stacks/shop.yml' }), {
      subject: 'stacks/shop.yml',
      reason: 'compose-yaml',
      includes: ['stacks/shop.yml', 'invalid YAML', where],
    });
  }
});

test('the shape of a file: one document, a mapping, string keys', async () => {
  await rejectsConfig(load('- a\n- b\n'), { reason: 'compose-yaml', includes: ['top level must be a mapping'] });
  await rejectsConfig(load(''), { reason: 'compose-yaml', includes: ['top level must be a mapping'] });
  await rejectsConfig(load('services: {}\n---\nservices: {}\n'), { reason: 'compose-yaml', includes: ['2 YAML documents'] });
  await rejectsConfig(load('services:\n  web:\n    image: nginx\n    labels:\n      80: http\n'), {
    reason: 'compose-yaml',
    includes: ['non-string key in services.web.labels: 80'],
  });
  await rejectsConfig(load('services:\n  web:\n    image: *nothing\n'), { reason: 'compose-yaml', includes: ['invalid YAML'] });
});
