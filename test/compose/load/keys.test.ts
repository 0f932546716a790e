import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyServiceKey } from '../../../src/compose/load/keys.js';
import { loadComposeSchema } from '../../../src/compose/load/validate.js';
import { load, rejectsConfig, web } from './helpers.js';

test('options docker stack deploy ignores become warnings with their key path', async () => {
  // docker/cli types.UnsupportedProperties (restart aside) and DeprecatedProperties.
  const ignored: [string, RegExp][] = [
    ['build: .', /unsupported|not support/],
    ['cgroup_parent: x', /not support/],
    ['devices: ["/dev/fuse"]', /not support/],
    ['domainname: example.test', /not support/],
    ['external_links: [x]', /not support/],
    ['ipc: host', /not support/],
    ['links: [db]', /not support/],
    ['mac_address: "02:42:ac:11:00:02"', /not support/],
    ['network_mode: host', /not support/],
    ['pid: host', /not support/],
    ['privileged: true', /not support/],
    ['security_opt: ["no-new-privileges"]', /not support/],
    ['shm_size: 64m', /not support/],
    ['userns_mode: host', /not support/],
    ['container_name: web1', /deprecated.*container name/],
    ['expose: ["80"]', /deprecated.*Exposing ports is unnecessary/],
    ['depends_on: [db]', /no particular order/],
    ['tmpfs: /run', /type: tmpfs/],
  ];
  for (const [line, message] of ignored) {
    const key = line.split(':')[0] ?? '';
    const { config, notices } = await load(web(line));
    const path = `services.web.${key}`;
    assert.deepEqual(
      notices.map((n) => [n.level, n.path, n.file]),
      [['warning', path, 'compose.yml']],
      line,
    );
    assert.match(notices[0]?.message ?? '', message, line);
    assert.deepEqual(config.services[0]?.unsupported, [path], line);
  }
});

test('restart warns as docker does, and is kept as the restart policy fallback', async () => {
  const { config, notices } = await load(web('restart: on-failure:3'));
  assert.equal(config.services[0]?.restart, 'on-failure:3');
  assert.deepEqual(notices.map((n) => n.path), ['services.web.restart']);
  assert.deepEqual(config.services[0]?.unsupported, []);
});

test('nested keys the model does not carry are reported too', async () => {
  const { config, notices } = await load(
    web(`
ports:
  - {target: 80, published: 8080, host_ip: 127.0.0.1}
volumes:
  - type: bind
    source: /srv
    target: /srv
    bind: {create_host_path: true}
networks:
  front:
    link_local_ips: [169.254.1.1]
deploy:
  resources:
    memory_swap: 1
`) + 'networks:\n  front:\n    enable_ipv6: true\n',
  );
  assert.deepEqual(notices.map((n) => n.path), [
    'services.web.deploy.resources.memory_swap',
    'services.web.ports[0].host_ip',
    'services.web.networks.front.link_local_ips',
    'services.web.volumes[0].bind.create_host_path',
    'networks.front.enable_ipv6',
  ]);
  assert.ok(notices.every((n) => n.level === 'warning'));
  assert.deepEqual(config.services[0]?.unsupported, notices.slice(0, 4).map((n) => n.path));
});

test('forbidden options are errors naming the key path and what to use instead', async () => {
  const cases: [string, string][] = [
    ['extends: {service: base}', 'Support for `extends` is not implemented yet'],
    ['volume_driver: nfs', 'define a volume using the top-level `volumes` option'],
    ['volumes_from: [other]', 'To share a volume between services'],
    ['cpu_quota: 50000', 'Set resource limits using deploy.resources'],
    ['cpu_shares: 512', 'Set resource limits using deploy.resources'],
    ['cpuset: "0,1"', 'Set resource limits using deploy.resources'],
    ['mem_limit: 1g', 'Set resource limits using deploy.resources'],
    ['memswap_limit: 2g', 'Set resource limits using deploy.resources'],
  ];
  for (const [line, advice] of cases) {
    const key = line.split(':')[0] ?? '';
    const err = await rejectsConfig(load(web(line), { name: 'shop.yml' }), {
      subject: 'shop.yml',
      reason: 'compose-forbidden',
      includes: ['shop.yml', `services.web.${key}`, advice],
    });
    assert.ok(err.hint?.includes(advice.slice(0, 20)), err.hint);
  }
});

test('forbidden options are refused before interpolation, as docker does', async () => {
  // The unset required variable would fail interpolation; the forbidden key is reported first.
  await rejectsConfig(load(web('mem_limit: ${LIMIT:?set it}')), { reason: 'compose-forbidden', includes: ['services.web.mem_limit'] });
});

test('every forbidden option in a file is listed', async () => {
  await rejectsConfig(load(web('mem_limit: 1g\ncpu_shares: 2')), {
    reason: 'compose-forbidden',
    includes: ['services.web.mem_limit', 'services.web.cpu_shares'],
  });
});

test('Compose Specification keys docker refuses are errors with advice', async () => {
  const cases: [string, string][] = [
    ['cpus: 0.5', 'deploy.resources.limits.cpus'],
    ['mem_reservation: 1g', 'deploy.resources.reservations.memory'],
    ['pids_limit: 10', 'deploy.resources.limits.pids'],
    ['scale: 3', 'deploy.replicas'],
    ['profiles: [debug]', 'every service'],
  ];
  for (const [line, advice] of cases) {
    const key = line.split(':')[0] ?? '';
    const err = await rejectsConfig(load(web(line)), { reason: 'compose-invalid', includes: [`services.web.${key}`] });
    assert.ok(err.hint?.includes(advice), `${line}: ${err.hint}`);
  }
  await rejectsConfig(load(web('deploy:\n  resources:\n    reservations:\n      devices: [{capabilities: [gpu]}]')), {
    includes: ['services.web.deploy.resources.reservations.devices'],
  });
});

test('every service key the schema accepts has a verdict', () => {
  const schema = loadComposeSchema() as { definitions: { service: { properties: Record<string, unknown> } } };
  for (const key of Object.keys(schema.definitions.service.properties)) {
    const verdict = classifyServiceKey(key);
    if (verdict.kind === 'warning') assert.doesNotMatch(verdict.notice.message, /does not know/, key);
  }
});
