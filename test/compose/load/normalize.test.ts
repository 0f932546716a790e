import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import YAML from 'yaml';
import type { ServicePort, ServiceVolume } from '../../../src/compose/model.js';
import { shlexSplit } from '../../../src/compose/load/shlex.js';
import { load, rejectsConfig, service, tempTree, web } from './helpers.js';

const tcp = (target: number, published?: number, mode: 'ingress' | 'host' = 'ingress'): ServicePort => ({
  target,
  ...(published === undefined ? {} : { published }),
  protocol: 'tcp',
  mode,
});

test('ports: short syntax', async () => {
  const cases: [string, ServicePort[]][] = [
    ['- 80', [tcp(80)]],
    ['- "80"', [tcp(80)]],
    ['- "8080:80"', [tcp(80, 8080)]],
    ['- "8080:80/udp"', [{ target: 80, published: 8080, protocol: 'udp', mode: 'ingress' }]],
    ['- "53:53/UDP"', [{ target: 53, published: 53, protocol: 'udp', mode: 'ingress' }]],
    ['- "9000/sctp"', [{ target: 9000, protocol: 'sctp', mode: 'ingress' }]],
    ['- "3000-3002:4000-4002"', [tcp(4000, 3000), tcp(4001, 3001), tcp(4002, 3002)]],
    ['- "3000-3002"', [tcp(3000), tcp(3001), tcp(3002)]],
    // One container port and a host range: every host port of the range is published to it.
    ['- "8000-8001:80"', [tcp(80, 8000), tcp(80, 8001)]],
    ['- "127.0.0.1:8080:80"', [tcp(80, 8080)]],
    ['- "[::1]:8080:80"', [tcp(80, 8080)]],
    ['- "0.0.0.0:8080:80"', [tcp(80, 8080)]],
  ];
  for (const [yaml, want] of cases) {
    const s = await service(web(`ports:\n  ${yaml}`));
    assert.deepEqual(s.ports, want, yaml);
  }
});

test('ports: a host IP is ignored with a warning, as swarm listens on every address', async () => {
  const { config, notices } = await load(web('ports:\n  - "127.0.0.1:8080:80"'));
  assert.deepEqual(config.services[0]?.ports, [tcp(80, 8080)]);
  assert.equal(notices.length, 1);
  assert.equal(notices[0]?.level, 'warning');
  assert.equal(notices[0]?.path, 'services.web.ports[0]');
  assert.match(notices[0]?.message ?? '', /127\.0\.0\.1/);
  assert.deepEqual(config.services[0]?.unsupported, ['services.web.ports[0]']);
});

test('ports: long syntax', async () => {
  const s = await service(
    web(`
ports:
  - target: 80
  - target: 443
    published: 8443
    protocol: udp
    mode: host
  - target: 81
    published: 8081
`),
  );
  assert.deepEqual(s.ports, [tcp(80), { target: 443, published: 8443, protocol: 'udp', mode: 'host' }, tcp(81, 8081)]);
});

test('ports: invalid specs name the entry', async () => {
  const cases: [string, string][] = [
    ['- "80/icmp"', 'invalid proto: icmp'],
    ['- "8080:http"', 'invalid containerPort: http'],
    ['- "x:80"', 'invalid hostPort: x'],
    ['- "3000-3001:4000-4002"', 'invalid ranges'],
    ['- "999.1.1.1:80:80"', 'invalid IP address'],
    ['- "70000"', 'invalid containerPort'],
    ['- mode: host', 'services.web.ports[0].target: is required'],
    ['- {target: 80, mode: routed}', 'must be ingress or host'],
  ];
  for (const [yaml, message] of cases) {
    await rejectsConfig(load(web(`ports:\n  ${yaml}`)), { subject: 'compose.yml', includes: ['services.web.ports[0]', message] });
  }
});

const vol = (v: ServiceVolume) => v;

test('volumes: short syntax', async () => {
  const cases: [string, ServiceVolume][] = [
    ['/anon', vol({ type: 'volume', target: '/anon', read_only: false })],
    ['data:/var/lib/data', vol({ type: 'volume', source: 'data', target: '/var/lib/data', read_only: false })],
    ['data:/var/lib/data:ro', vol({ type: 'volume', source: 'data', target: '/var/lib/data', read_only: true })],
    ['data:/d:rw,nocopy', vol({ type: 'volume', source: 'data', target: '/d', read_only: false, volume: { nocopy: true } })],
    ['./rel:/rel', vol({ type: 'bind', source: '/srv/app/rel', target: '/rel', read_only: false })],
    ['../up/dir:/up', vol({ type: 'bind', source: '/srv/up/dir', target: '/up', read_only: false })],
    ['.:/code', vol({ type: 'bind', source: '/srv/app', target: '/code', read_only: false })],
    ['/abs/path:/abs:ro', vol({ type: 'bind', source: '/abs/path', target: '/abs', read_only: true })],
    ['/etc/x:/x:ro,rshared', vol({ type: 'bind', source: '/etc/x', target: '/x', read_only: true, bind: { propagation: 'rshared' } })],
    ['~/cache:/cache', vol({ type: 'bind', source: '/home/op/cache', target: '/cache', read_only: false })],
  ];
  for (const [spec, want] of cases) {
    const s = await service(web(`volumes:\n  - "${spec}"`) + 'volumes:\n  data: {}\n', { env: { HOME: '/home/op' } });
    assert.deepEqual(s.volumes, [want], spec);
  }
});

test('volumes: long syntax; relative bind sources resolved against the working folder', async () => {
  const s = await service(
    web(`
volumes:
  - type: bind
    source: ./conf
    target: /etc/app
    read_only: true
  - type: volume
    source: data
    target: /data
    volume:
      nocopy: true
  - type: tmpfs
    target: /tmp
    tmpfs:
      size: 64m
`) + 'volumes:\n  data: {}\n',
  );
  assert.deepEqual(s.volumes, [
    { type: 'bind', source: '/srv/app/conf', target: '/etc/app', read_only: true },
    { type: 'volume', source: 'data', target: '/data', read_only: false, volume: { nocopy: true } },
    { type: 'tmpfs', target: '/tmp', read_only: false, tmpfs: { size: 64 * 1024 * 1024 } },
  ]);
});

/**
 * Bind sources as docker's loader resolves them (the results are what
 * `docker stack config`, CLI 28.2.2, printed for a file in /srv/app with
 * HOME=/home/op): a relative source is joined onto the working folder and
 * cleaned like Go's filepath.Join; an absolute one (also after `~`) is kept
 * as written.
 */
const BIND_SOURCES: [source: string, docker: string, long?: 'long'][] = [
  ['./x/', '/srv/app/x'],
  ['./x//', '/srv/app/x'],
  ['../x/', '/srv/x'],
  ['.', '/srv/app'],
  ['./', '/srv/app'],
  ['./a/../b/', '/srv/app/b'],
  ['./a/./b//c/.', '/srv/app/a/b/c'],
  ['../../../../..', '/'],
  ['x/', '/srv/app/x', 'long'], // a bind in the long syntax needs no ./
  ['/abs/x/', '/abs/x/'],
  ['/abs//x/./', '/abs//x/./'],
  ['~/x/', '/home/op/x/'],
];

function bindFile(): string {
  const volumes = BIND_SOURCES.map(([source, , long], i) =>
    long ? { type: 'bind', source, target: `/t${i}` } : `${source}:/t${i}`,
  );
  return YAML.stringify({ services: { web: { image: 'nginx', volumes } } });
}

test('volumes: bind sources are joined and cleaned as docker does; absolute ones kept as written', async () => {
  const s = await service(bindFile(), { env: { HOME: '/home/op' } });
  assert.deepEqual(
    s.volumes.map((v) => v.source),
    BIND_SOURCES.map(([, docker]) => docker),
  );
});

const dockerCli = spawnSync('docker', ['--version']).status === 0;

test('volumes: the bind sources match what the docker CLI resolves', { skip: !dockerCli && 'no docker CLI' }, async () => {
  const tree = await tempTree({ 'compose.yml': bindFile() });
  try {
    const r = spawnSync('docker', ['stack', 'config', '-c', 'compose.yml'], { cwd: tree.dir, env: { PATH: process.env['PATH'], HOME: '/home/op' }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const printed = YAML.parse(r.stdout) as { services: { web: { volumes: { source: string; target: string }[] } } };
    const s = await service(bindFile(), { env: { HOME: '/home/op' }, workingDir: tree.dir });
    assert.deepEqual(
      s.volumes.map((v) => [v.target, v.source]),
      printed.services.web.volumes.map((v) => [v.target, v.source]),
    );
  } finally {
    await tree.cleanup();
  }
});

test('volumes: unknown short-syntax options are reported, bad specs refused', async () => {
  const { notices } = await load(web('volumes:\n  - "./src:/src:ro,z"'));
  assert.equal(notices[0]?.path, 'services.web.volumes[0]');
  assert.match(notices[0]?.message ?? '', /"z"/);
  await rejectsConfig(load(web('volumes:\n  - "data::/b"')), { includes: ['services.web.volumes[0]', 'empty section between colons'] });
  await rejectsConfig(load(web('volumes:\n  - "/a:/b:ro:extra"')), { includes: ['services.web.volumes[0]', 'too many colons'] });
  await rejectsConfig(load(web('volumes:\n  - type: bind\n    target: /x')), { includes: ['services.web.volumes[0]', 'Source must not be empty'] });
});

test('secrets and configs: a name becomes {source}, the long form is kept', async () => {
  const s = await service(
    web(`
secrets:
  - db_password
  - source: tls_key
    target: /run/secrets/key.pem
    uid: "101"
    gid: "101"
    mode: 0400
configs:
  - nginx_conf
  - {source: app_conf, target: /etc/app.conf}
`) + `
secrets:
  db_password: {file: ./secrets/db.txt}
  tls_key: {external: true}
configs:
  nginx_conf: {file: /etc/airlock/nginx.conf}
  app_conf: {file: app.conf}
`,
  );
  assert.deepEqual(s.secrets, [
    { source: 'db_password' },
    { source: 'tls_key', target: '/run/secrets/key.pem', uid: '101', gid: '101', mode: 0o400 },
  ]);
  assert.deepEqual(s.configs, [{ source: 'nginx_conf' }, { source: 'app_conf', target: '/etc/app.conf' }]);
});

test('top-level secrets and configs: file paths resolved, external named after their key', async () => {
  const { config } = await load(`
services: {}
secrets:
  db: {file: ./secrets/db.txt}
  ext: {external: true}
  renamed: {external: true, name: site_tls}
  old_style:
    external:
      name: legacy_name
configs:
  conf: {file: /abs/app.conf, template_driver: golang}
`);
  assert.deepEqual(config.secrets, {
    db: { external: false, labels: {}, file: '/srv/app/secrets/db.txt' },
    ext: { external: true, labels: {}, name: 'ext' },
    renamed: { external: true, labels: {}, name: 'site_tls' },
    old_style: { external: true, labels: {}, name: 'legacy_name' },
  });
  assert.deepEqual(config.configs, { conf: { external: false, labels: {}, file: '/abs/app.conf', template_driver: 'golang' } });
});

test('networks: list → map, attachment options, the implicit default network', async () => {
  const { config } = await load(`
services:
  a:
    image: x
    networks: [front, back]
  b:
    image: x
    networks:
      front:
        aliases: [api]
        ipv4_address: 10.0.0.5
      back:
  c:
    image: x
networks:
  front: {}
  back: {driver: overlay, attachable: true}
`);
  const nets = Object.fromEntries(config.services.map((s) => [s.name, s.networks]));
  assert.deepEqual(nets['a'], { front: null, back: null });
  assert.deepEqual(nets['b'], { front: { aliases: ['api'], ipv4_address: '10.0.0.5' }, back: null });
  assert.deepEqual(nets['c'], { default: null });
  assert.deepEqual(config.networks['back'], { driver: 'overlay', attachable: true, driver_opts: {}, external: false, labels: {} });
});

test('command and entrypoint: a string is split like shlex, a list is kept', async () => {
  const cases: [string, string[]][] = [
    ['command: nginx -g "daemon off;"', ['nginx', '-g', 'daemon off;']],
    ["command: sh -c 'echo $$HOME && exit 1'", ['sh', '-c', 'echo $HOME && exit 1']],
    ['command: ["sh", "-c", "a b"]', ['sh', '-c', 'a b']],
    ['command: echo a\\ b', ['echo', 'a b']],
    ['command: ""', []],
  ];
  for (const [yaml, want] of cases) assert.deepEqual((await service(web(yaml))).command, want, yaml);
  assert.deepEqual((await service(web('entrypoint: /bin/tini -- run'))).entrypoint, ['/bin/tini', '--', 'run']);
  await rejectsConfig(load(web('command: echo "unterminated')), { includes: ['services.web.command', 'closing quote'] });
});

test('shlex rules', () => {
  const cases: [string, string[]][] = [
    ['a b  c', ['a', 'b', 'c']],
    ['a"b c"d', ['ab cd']],
    ['"" x', ['', 'x']],
    ["'a \\n b'", ['a \\n b']], // single quotes: everything literal
    ['"a \\" b"', ['a " b']],
    ['"x\\y"', ['xy']], // the backslash in double quotes always escapes the next character
    ['echo # comment\nnext', ['echo', 'next']],
    ['a#b', ['a#b']], // `#` inside a word is a character
    ['$HOME', ['$HOME']],
    ['\t a\r\n', ['a']],
  ];
  for (const [input, want] of cases) assert.deepEqual(shlexSplit(input), want, JSON.stringify(input));
  assert.throws(() => shlexSplit('a\\'), /EOF found after escape character/);
  assert.throws(() => shlexSplit("'open"), /EOF found when expecting closing quote/);
});

test('healthcheck: string test, list test, disable', async () => {
  assert.deepEqual((await service(web('healthcheck:\n  test: curl -f http://localhost/ || exit 1\n  interval: 30s\n  retries: 3'))).healthcheck, {
    test: ['CMD-SHELL', 'curl -f http://localhost/ || exit 1'],
    interval: '30s',
    retries: 3,
  });
  assert.deepEqual((await service(web('healthcheck:\n  test: ["CMD", "pg_isready"]\n  start_period: 1m30s'))).healthcheck, {
    test: ['CMD', 'pg_isready'],
    start_period: '1m30s',
  });
  assert.deepEqual((await service(web('healthcheck:\n  disable: true'))).healthcheck, { test: ['NONE'] });
  await rejectsConfig(load(web('healthcheck:\n  disable: true\n  test: ["CMD", "true"]')), {
    includes: ['services.web.healthcheck.disable', "test and disable can't be set at the same time"],
  });
});

test('deploy.resources memory strings → bytes with binary units', async () => {
  const cases: [string, number][] = [
    ['512M', 512 * 1024 ** 2],
    ['512m', 512 * 1024 ** 2],
    ['1g', 1024 ** 3],
    ['1GB', 1024 ** 3],
    ['1.5GiB', 1.5 * 1024 ** 3],
    ['100k', 100 * 1024],
    ['2048', 2048],
    ['64 mb', 64 * 1024 ** 2],
  ];
  for (const [text, bytes] of cases) {
    const s = await service(web(`deploy:\n  resources:\n    limits:\n      memory: "${text}"\n    reservations:\n      memory: "${text}"`));
    assert.equal(s.deploy.resources?.limits?.memory, bytes, text);
    assert.equal(s.deploy.resources?.reservations?.memory, bytes, text);
  }
  await rejectsConfig(load(web('deploy:\n  resources:\n    limits:\n      memory: lots')), {
    includes: ['services.web.deploy.resources.limits.memory', "invalid size: 'lots'"],
  });
});

test('deploy: the rest of the section', async () => {
  const s = await service(
    web(`
deploy:
  mode: replicated
  replicas: 0
  endpoint_mode: dnsrr
  labels: [com.example.tier=web]
  resources:
    limits: {cpus: "0.5", pids: 100}
    reservations:
      cpus: 0.25
      generic_resources:
        - discrete_resource_spec: {kind: gpu, value: 2}
  restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 2m}
  placement:
    constraints: [node.role == worker]
    preferences: [{spread: node.labels.zone}]
    max_replicas_per_node: 2
  update_config: {parallelism: 2, delay: 10s, order: start-first, failure_action: rollback}
  rollback_config: {parallelism: 1, monitor: 30s}
`),
  );
  assert.deepEqual(s.deploy, {
    labels: { 'com.example.tier': 'web' },
    mode: 'replicated',
    replicas: 0,
    endpoint_mode: 'dnsrr',
    resources: {
      limits: { cpus: '0.5', pids: 100 },
      reservations: { cpus: '0.25', generic_resources: [{ discrete_resource_spec: { kind: 'gpu', value: 2 } }] },
    },
    restart_policy: { condition: 'on-failure', delay: '5s', max_attempts: 3, window: '2m' },
    placement: { constraints: ['node.role == worker'], preferences: [{ spread: 'node.labels.zone' }], max_replicas_per_node: 2 },
    update_config: { parallelism: 2, delay: '10s', order: 'start-first', failure_action: 'rollback' },
    rollback_config: { parallelism: 1, monitor: '30s' },
  });
  await rejectsConfig(load(web('deploy:\n  mode: daemonset')), { includes: ['services.web.deploy.mode', 'replicated, global'] });
  await rejectsConfig(load(web('deploy:\n  restart_policy:\n    condition: always')), {
    includes: ['services.web.deploy.restart_policy.condition', 'none, on-failure, any'],
  });
});

test('ulimits, sysctls, labels, extra_hosts, dns', async () => {
  const s = await service(
    web(`
ulimits:
  nproc: 65535
  nofile: {soft: 20000, hard: 40000}
sysctls:
  - net.core.somaxconn=1024
  - net.ipv4.tcp_syncookies=0
labels:
  - com.example.flag
  - com.example.k=v=w
extra_hosts:
  - "db:10.0.0.2"
  - "cache=10.0.0.3"
  - "v6host:[::1]"
dns: 10.0.0.1
dns_search: [example.test]
`),
  );
  assert.deepEqual(s.ulimits, { nproc: { soft: 65535, hard: 65535 }, nofile: { soft: 20000, hard: 40000 } });
  assert.deepEqual(s.sysctls, { 'net.core.somaxconn': '1024', 'net.ipv4.tcp_syncookies': '0' });
  assert.deepEqual(s.labels, { 'com.example.flag': '', 'com.example.k': 'v=w' });
  assert.deepEqual(s.extra_hosts, ['db:10.0.0.2', 'cache:10.0.0.3', 'v6host:::1']);
  assert.deepEqual(s.dns, ['10.0.0.1']);
  assert.deepEqual(s.dns_search, ['example.test']);

  const m = await service(
    web(`
sysctls: {net.core.somaxconn: 1024}
labels: {a: 1, b: true, c: null}
extra_hosts: {zeta: 10.0.0.9, alpha: 10.0.0.1}
`),
  );
  assert.deepEqual(m.sysctls, { 'net.core.somaxconn': '1024' });
  assert.deepEqual(m.labels, { a: '1', b: 'true', c: '' });
  // The mapping form is sorted, as docker sorts it.
  assert.deepEqual(m.extra_hosts, ['alpha:10.0.0.1', 'zeta:10.0.0.9']);
});

test('plain service settings are carried', async () => {
  const s = await service(
    web(`
user: "1000:1000"
working_dir: /app
hostname: web1
stop_grace_period: 1m
stop_signal: SIGQUIT
init: true
read_only: true
tty: false
stdin_open: true
cap_add: [NET_ADMIN]
cap_drop: [ALL]
dns_opt: [use-vc]
logging:
  driver: syslog
  options: {syslog-address: "udp://10.0.0.1:514", tag: 7}
`),
  );
  assert.equal(s.user, '1000:1000');
  assert.equal(s.working_dir, '/app');
  assert.equal(s.hostname, 'web1');
  assert.equal(s.stop_grace_period, '1m');
  assert.equal(s.stop_signal, 'SIGQUIT');
  assert.equal(s.init, true);
  assert.equal(s.read_only, true);
  assert.equal(s.tty, false);
  assert.equal(s.stdin_open, true);
  assert.deepEqual(s.cap_add, ['NET_ADMIN']);
  assert.deepEqual(s.cap_drop, ['ALL']);
  assert.deepEqual(s.dns_opt, ['use-vc']);
  assert.deepEqual(s.logging, { driver: 'syslog', options: { 'syslog-address': 'udp://10.0.0.1:514', tag: '7' } });
});

test('references to undeclared networks, volumes, secrets and configs are refused', async () => {
  const cases: [string, string][] = [
    ['networks: [nowhere]', 'undefined network "nowhere"'],
    ['volumes: ["nothing:/data"]', 'undefined volume "nothing"'],
    ['secrets: [missing]', 'undefined secret "missing"'],
    ['configs: [missing]', 'undefined config "missing"'],
  ];
  for (const [yaml, message] of cases) {
    await rejectsConfig(load(web(yaml)), { reason: 'compose-undefined-reference', includes: ['services.web', message] });
  }
});

test('top-level volumes and networks with external', async () => {
  const { config, notices } = await load(`
services: {}
volumes:
  data:
  ext: {external: true}
  named: {name: shop_data, driver: local, driver_opts: {type: nfs}, labels: [a=b]}
networks:
  outside: {external: {name: host_net}}
  ipam_net:
    ipam:
      config: [{subnet: 10.5.0.0/16}]
`);
  assert.deepEqual(config.volumes, {
    data: { driver_opts: {}, external: false, labels: {} },
    ext: { driver_opts: {}, external: true, labels: {}, name: 'ext' },
    named: { name: 'shop_data', driver: 'local', driver_opts: { type: 'nfs' }, external: false, labels: { a: 'b' } },
  });
  assert.deepEqual(config.networks['outside'], { name: 'host_net', driver_opts: {}, external: true, labels: {} });
  assert.deepEqual(config.networks['ipam_net']?.ipam, { config: [{ subnet: '10.5.0.0/16' }] });
  // external.name is the deprecated spelling of name.
  assert.equal(notices[0]?.path, 'networks.outside.external.name');
  await rejectsConfig(load('services: {}\nvolumes:\n  v: {external: true, driver: local}\n'), {
    includes: ['volumes.v.driver', 'conflicting parameters "external" and "driver"'],
  });
  await rejectsConfig(load('services: {}\nnetworks:\n  net: {name: a, external: {name: b}}\n'), {
    includes: ['network.external.name and network.name conflict'],
  });
});
