import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isGoDuration } from '../../../src/compose/load/units.js';
import { load, rejectsConfig, web } from './helpers.js';

test('schema errors name the file, the key path and the problem', async () => {
  const cases: [string, string[]][] = [
    [web('deploy:\n  replicas: many'), ['services.web.deploy.replicas', 'must be an integer']],
    [web('bogus: 1'), ['services.web.bogus', 'not allowed']],
    [web('deploy:\n  resources:\n    limits:\n      memory: 1\n      gpus: 2'), ['services.web.deploy.resources.limits.gpus', 'not allowed']],
    [web('command: 5'), ['services.web.command', 'must be a string or a list']],
    [web('ports:\n  - target: eighty'), ['services.web.ports[0].target', 'must be an integer']],
    [web('stop_grace_period: 10 seconds'), ['services.web.stop_grace_period', 'not a valid duration']],
    [web('healthcheck:\n  interval: 10'), ['services.web.healthcheck.interval', 'must be a string']],
    [web('deploy:\n  update_config:\n    order: random'), ['services.web.deploy.update_config.order', 'start-first']],
    [web('cap_add: [A, A]'), ['services.web.cap_add', 'must not repeat an item']],
    ['services:\n  "bad name!":\n    image: x\n', ['services.bad name!', 'not allowed']],
    ['services: {}\nnetworks:\n  net:\n    ipam:\n      config: [{subnet: 10.0.0.0}]\n', ['networks.net.ipam.config[0].subnet', 'not a valid subnet']],
    ['version: 3.8\nservices: {}\n', ['version', 'must be a string']],
    ['services: {}\nunknown_top: 1\n', ['unknown_top', 'not allowed']],
  ];
  for (const [yaml, fragments] of cases) {
    await rejectsConfig(load(yaml, { name: 'stacks/app.yml' }), {
      subject: 'stacks/app.yml',
      reason: 'compose-schema',
      includes: ['stacks/app.yml', ...fragments],
    });
  }
});

test('a few problems are reported together, not ajv output', async () => {
  const err = await rejectsConfig(load(web('deploy:\n  replicas: x\nbogus: 1\nports:\n  - target: y')), {
    reason: 'compose-schema',
    includes: ['services.web.deploy.replicas', 'services.web.bogus', 'services.web.ports[0].target'],
  });
  assert.doesNotMatch(err.message, /instancePath|schemaPath|#\/definitions/);
});

test('keys docker accepts beyond this schema release validate', async () => {
  const { config } = await load(
    web(`
deploy:
  resources:
    limits: {pids: 64}
healthcheck:
  test: ["CMD", "true"]
  start_interval: 2s
networks:
  front:
    driver_opts: {com.docker.network.bridge.name: br1}
`) + 'networks:\n  front: {}\n',
  );
  const s = config.services[0];
  assert.equal(s?.deploy.resources?.limits?.pids, 64);
  assert.equal(s?.healthcheck?.start_interval, '2s');
  assert.deepEqual(s?.networks['front'], { aliases: [], driver_opts: { 'com.docker.network.bridge.name': 'br1' } });
});

test('durations follow Go time.ParseDuration', () => {
  for (const ok of ['0', '10s', '1m30s', '1.5h', '300ms', '10us', '10µs', '2h45m', '-1s', '.5s', '1.s']) assert.ok(isGoDuration(ok), ok);
  for (const bad of ['', '10', 's', '1d', '10 s', '1m30', '.s', 'ten seconds']) assert.ok(!isGoDuration(bad), bad);
});
