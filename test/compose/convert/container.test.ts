import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServiceConfig } from '../../../src/compose/model.js';
import type { ContainerSpec } from '../../../src/docker/types.js';
import { convertOne, service } from './fixtures.js';

const S = 1_000_000_000;

function container(over: Partial<ServiceConfig>, apiVersion = '1.41') {
  const { spec, notices } = convertOne(service('web', over), {}, apiVersion);
  return { c: spec.TaskTemplate!.ContainerSpec!, notices };
}

// environment → Env: KEY=VALUE sorted (Go string order); a null value is sent as the bare key, as docker does.
const envs: [string, ServiceConfig['environment'], string[] | undefined][] = [
  ['empty: no Env', {}, undefined],
  ['sorted by key', { B: '2', A: '1', a: '0' }, ['A=1', 'B=2', 'a=0']],
  ['empty string kept with its =', { EMPTY: '' }, ['EMPTY=']],
  ['null: bare key', { UNSET: null, SET: 'x' }, ['SET=x', 'UNSET']],
  ['values with = and spaces untouched', { DSN: 'a=b c' }, ['DSN=a=b c']],
  ['byte order, not UTF-16 order', { 'Z\u{1F600}': '1', 'Z\uFFFD': '2' }, ['Z\uFFFD=2', 'Z\u{1F600}=1']],
];
for (const [name, environment, expected] of envs) {
  test(`environment: ${name}`, () => assert.deepEqual(container({ environment }).c.Env, expected));
}

// healthcheck → Healthcheck (durations in ns; NONE alone).
const checks: [string, ServiceConfig['healthcheck'], ContainerSpec['Healthcheck']][] = [
  [
    'in full',
    { test: ['CMD-SHELL', 'wget -q -O- localhost || exit 1'], interval: '30s', timeout: '5s', start_period: '1m', retries: 3 },
    { Test: ['CMD-SHELL', 'wget -q -O- localhost || exit 1'], Interval: 30 * S, Timeout: 5 * S, StartPeriod: 60 * S, Retries: 3 },
  ],
  ['disabled', { test: ['NONE'] }, { Test: ['NONE'] }],
  ['only timing (keeps the image test)', { interval: '10s' }, { Interval: 10 * S }],
  ['zero durations are left out (Go omitempty)', { test: ['CMD', 'true'], interval: '0s', retries: 0 }, { Test: ['CMD', 'true'] }],
];
for (const [name, healthcheck, expected] of checks) {
  test(`healthcheck: ${name}`, () => assert.deepEqual(container({ ...(healthcheck && { healthcheck }) }).c.Healthcheck, expected));
}

test('healthcheck: start_interval needs API 1.44; below, it is left out with a warning', () => {
  const hc = { test: ['CMD', 'true'], start_interval: '2s' };
  const old = container({ healthcheck: hc }, '1.41');
  assert.deepEqual(old.c.Healthcheck, { Test: ['CMD', 'true'] });
  assert.deepEqual(old.notices.map((n) => [n.level, n.path]), [['warning', 'services.web.healthcheck.start_interval']]);
  assert.match(old.notices[0]!.message, /1\.44/);
  const recent = container({ healthcheck: hc }, '1.44');
  assert.deepEqual(recent.c.Healthcheck, { Test: ['CMD', 'true'], StartInterval: 2 * S });
  assert.deepEqual(recent.notices, []);
});

test('healthcheck: a bad duration is an error at its key', () => {
  const { notices } = container({ healthcheck: { test: ['CMD', 'true'], timeout: '5' } });
  assert.deepEqual(notices.map((n) => [n.level, n.path]), [['error', 'services.web.healthcheck.timeout']]);
});

// extra_hosts → Hosts in SwarmKit's "IP host" order, split at the first colon.
test('extra_hosts: "host:ip" becomes "ip host", order kept, IPv6 whole', () => {
  const { c } = container({ extra_hosts: ['db:10.0.0.5', 'alpha:10.0.0.1', 'v6:2001:db8::1'] });
  assert.deepEqual(c.Hosts, ['10.0.0.5 db', '10.0.0.1 alpha', '2001:db8::1 v6']);
});

test('extra_hosts: an entry without a colon is dropped with a warning, as docker drops it', () => {
  const { c, notices } = container({ extra_hosts: ['nocolon'] });
  assert.equal(c.Hosts, undefined);
  assert.deepEqual(notices.map((n) => [n.level, n.path]), [['warning', 'services.web.extra_hosts[0]']]);
});

// dns, dns_search, dns_opt → DNSConfig.
const dns: [string, Partial<ServiceConfig>, ContainerSpec['DNSConfig']][] = [
  ['none', {}, undefined],
  ['nameservers and search', { dns: ['10.0.0.2', '10.0.0.3'], dns_search: ['corp.example'] }, { Nameservers: ['10.0.0.2', '10.0.0.3'], Search: ['corp.example'] }],
  ['options alone (airlock carries dns_opt)', { dns_opt: ['ndots:2', 'timeout:1'] }, { Options: ['ndots:2', 'timeout:1'] }],
];
for (const [name, over, expected] of dns) {
  test(`dns: ${name}`, () => assert.deepEqual(container(over).c.DNSConfig, expected));
}

test('ulimits: sorted by name, soft and hard', () => {
  const { c } = container({ ulimits: { nproc: { soft: 500, hard: 500 }, nofile: { soft: 1024, hard: 4096 } } });
  assert.deepEqual(c.Ulimits, [
    { Name: 'nofile', Soft: 1024, Hard: 4096 },
    { Name: 'nproc', Soft: 500, Hard: 500 },
  ]);
});

// cap_add/cap_drop → docker's EffectiveCapAddCapDrop.
const caps: [string, string[], string[], string[] | undefined, string[] | undefined][] = [
  ['normalised and sorted', ['sys_time', 'NET_ADMIN'], ['chown'], ['CAP_NET_ADMIN', 'CAP_SYS_TIME'], ['CAP_CHOWN']],
  ['already prefixed, padded, duplicated', [' cap_net_admin ', 'NET_ADMIN'], [], ['CAP_NET_ADMIN'], undefined],
  ['added wins over dropped', ['NET_RAW'], ['net_raw', 'MKNOD'], ['CAP_NET_RAW'], ['CAP_MKNOD']],
  ['ALL replaces the rest of its side', ['all', 'NET_ADMIN'], ['NET_RAW'], ['ALL'], ['CAP_NET_RAW']],
  ['drop ALL', [], ['ALL', 'chown'], undefined, ['ALL']],
  ['RESET is ignored', ['RESET'], ['reset'], undefined, undefined],
];
for (const [name, add, drop, expAdd, expDrop] of caps) {
  test(`capabilities: ${name}`, () => {
    const { c } = container({ cap_add: add, cap_drop: drop });
    assert.deepEqual([c.CapabilityAdd, c.CapabilityDrop], [expAdd, expDrop]);
  });
}

test('logging → LogDriver; options left out when empty', () => {
  const { spec } = convertOne(service('web', { logging: { driver: 'json-file', options: { 'max-size': '10m', 'max-file': '3' } } }));
  assert.deepEqual(spec.TaskTemplate?.LogDriver, { Name: 'json-file', Options: { 'max-size': '10m', 'max-file': '3' } });
  assert.deepEqual(convertOne(service('web', { logging: { driver: 'none', options: {} } })).spec.TaskTemplate?.LogDriver, { Name: 'none' });
  assert.equal(convertOne(service('web')).spec.TaskTemplate?.LogDriver, undefined);
});

// The plain fields, each to its ContainerSpec name.
test('plain fields: user, working_dir, hostname, stop_grace_period, stop_signal, init, read_only, tty, stdin_open, sysctls', () => {
  const { c } = container({
    user: '1000:1000',
    working_dir: '/app',
    hostname: 'web-host',
    stop_grace_period: '1m30s',
    stop_signal: 'SIGQUIT',
    init: true,
    read_only: true,
    tty: true,
    stdin_open: true,
    sysctls: { 'net.core.somaxconn': '1024' },
  });
  const { User, Dir, Hostname, StopGracePeriod, StopSignal, Init, ReadOnly, TTY, OpenStdin, Sysctls } = c;
  assert.deepEqual(
    { User, Dir, Hostname, StopGracePeriod, StopSignal, Init, ReadOnly, TTY, OpenStdin, Sysctls },
    {
      User: '1000:1000',
      Dir: '/app',
      Hostname: 'web-host',
      StopGracePeriod: 90 * S,
      StopSignal: 'SIGQUIT',
      Init: true,
      ReadOnly: true,
      TTY: true,
      OpenStdin: true,
      Sysctls: { 'net.core.somaxconn': '1024' },
    },
  );
});

test('plain fields: false booleans are left out, except init, which docker sends as written', () => {
  const { c } = container({ init: false, read_only: false, tty: false, stdin_open: false, stop_grace_period: '0s' });
  assert.equal(c.Init, false);
  assert.equal('ReadOnly' in c || 'TTY' in c || 'OpenStdin' in c, false);
  assert.equal(c.StopGracePeriod, 0);
});

test('command → Args, entrypoint → Command', () => {
  const { c } = container({ command: ['sleep', '3600'], entrypoint: ['/bin/sh', '-c'] });
  assert.deepEqual([c.Command, c.Args], [['/bin/sh', '-c'], ['sleep', '3600']]);
});
