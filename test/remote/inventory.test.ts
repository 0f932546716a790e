/**
 * hosts.yml: the lab's output parses as is; defaults, groups and hosts merge
 * in that order; every refusal names the file, the line, the host and the key.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AirlockError } from '../../src/errors/index.js';
import { hostPort, loadInventory, managersOf, parseInventory, swarmRole } from '../../src/remote/inventory.js';
import { runCli } from '../helpers/fixtures.js';

const LAB = `# airlock lab: 3 hosts (scripts/lab up)
defaults:
  user: root
  port: 22
  key: /tmp/airlock-lab/id_ed25519
  knownHosts: /tmp/airlock-lab/known_hosts
hosts:
  h1:
    address: 10.99.0.11
    roles: [manager]
  h2:
    address: 10.99.0.12
    roles: [worker]
    labels: { zone: b }
  h3:
    address: 10.99.0.13
    roles: [worker]
    labels: { zone: c }
`;

function refusal(text: string, file = 'hosts.yml'): AirlockError {
  try {
    parseInventory(file, text);
  } catch (e) {
    assert.ok(e instanceof AirlockError, String(e));
    assert.equal(e.kind, 'config');
    assert.equal(e.exitCode, 3);
    return e;
  }
  assert.fail(`accepted:\n${text}`);
}

test("scripts/lab's inventory parses as is", () => {
  const inv = parseInventory('/tmp/airlock-lab/hosts.yml', LAB);
  assert.equal(inv.file, '/tmp/airlock-lab/hosts.yml');
  assert.deepEqual(
    inv.hosts.map((h) => [h.name, h.address, h.port, h.user, h.keyFile, h.knownHostsFile, h.roles, h.labels, h.timeoutMs]),
    [
      ['h1', '10.99.0.11', 22, 'root', '/tmp/airlock-lab/id_ed25519', '/tmp/airlock-lab/known_hosts', ['manager'], {}, 10_000],
      ['h2', '10.99.0.12', 22, 'root', '/tmp/airlock-lab/id_ed25519', '/tmp/airlock-lab/known_hosts', ['worker'], { zone: 'b' }, 10_000],
      ['h3', '10.99.0.13', 22, 'root', '/tmp/airlock-lab/id_ed25519', '/tmp/airlock-lab/known_hosts', ['worker'], { zone: 'c' }, 10_000],
    ],
  );
  assert.deepEqual(managersOf(inv).map((h) => h.name), ['h1']);
  assert.equal(hostPort(inv.hosts[0]!), '10.99.0.11');
});

test('defaults, then groups, then the host; relative paths from the inventory folder', () => {
  const inv = parseInventory(
    '/srv/site/hosts.yml',
    `
defaults: { user: ops, key: keys/id_ed25519, knownHosts: ./known_hosts, timeout: 20s, labels: { site: north } }
groups:
  core: { hosts: [m1, m2], roles: [manager], labels: { tier: core } }
  db: { hosts: [w1], roles: [worker], port: 2222, user: dbops, labels: { tier: db, disk: ssd } }
hosts:
  m1: { address: 10.0.0.1 }
  m2: { address: 10.0.0.2, roles: [manager, worker], labels: { zone: a } }
  w1: { address: db1.example, key: /etc/airlock/db_key, timeout: 3, labels: { disk: nvme, rack: 7 } }
  w2: { address: 10.0.0.4, roles: [worker], knownHosts: ~/kh }
`,
  );
  const [m1, m2, w1, w2] = inv.hosts;
  assert.deepEqual(m1, {
    name: 'm1',
    address: '10.0.0.1',
    port: 22,
    user: 'ops',
    keyFile: '/srv/site/keys/id_ed25519',
    knownHostsFile: '/srv/site/known_hosts',
    roles: ['manager'],
    labels: { site: 'north', tier: 'core' },
    timeoutMs: 20_000,
    groups: ['core'],
  });
  assert.deepEqual(m2?.roles, ['manager', 'worker']);
  assert.equal(swarmRole(m2!), 'manager');
  assert.deepEqual(m2?.labels, { site: 'north', tier: 'core', zone: 'a' });
  assert.equal(w1?.port, 2222);
  assert.equal(w1?.user, 'dbops');
  assert.equal(w1?.keyFile, '/etc/airlock/db_key');
  assert.equal(w1?.timeoutMs, 3_000);
  assert.deepEqual(w1?.labels, { site: 'north', tier: 'db', disk: 'nvme', rack: '7' }, 'the host wins; numbers become strings');
  assert.equal(hostPort(w1!), '[db1.example]:2222');
  assert.equal(w2?.knownHostsFile, join(homedir(), 'kh'));
  assert.equal(swarmRole(w2!), 'worker');
});

test('known_hosts defaults to ~/.ssh/known_hosts, port to 22, timeout to 10 s', () => {
  const [h] = parseInventory('hosts.yml', 'hosts: { a: { address: 10.1.1.1, user: root, key: k, roles: [manager] } }').hosts;
  assert.equal(h?.knownHostsFile, join(homedir(), '.ssh/known_hosts'));
  assert.equal(h?.port, 22);
  assert.equal(h?.timeoutMs, 10_000);
  assert.equal(h?.keyFile, join(process.cwd(), 'k'));
});

test('a bad role names the line, the host and the key', () => {
  const e = refusal(LAB.replace('roles: [worker]\n    labels: { zone: b }', 'roles: [boss]\n    labels: { zone: b }'));
  assert.equal(e.message, 'hosts.yml:13: hosts.h2.roles[0]: must be one of manager, worker');
  assert.equal(e.reason, 'bad-inventory');
  assert.equal(e.subject, 'hosts.yml');
});

test('refusals name file:line and the key', () => {
  const cases: [string, RegExp][] = [
    [LAB.replace('    address: 10.99.0.12\n', ''), /^hosts\.yml:12: hosts\.h2\.address: is required$/],
    [LAB.replace('  port: 22', '  port: 99999'), /^hosts\.yml:4: defaults\.port: must be <= 65535$/],
    [LAB.replace('  port: 22', '  port: ssh'), /^hosts\.yml:4: defaults\.port: must be integer$/],
    [LAB.replace('  user: root', '  usr: root'), /^hosts\.yml:3: defaults\.usr: unknown key$/],
    [LAB.replace('    roles: [worker]\n    labels: { zone: c }', '    role: worker'), /^hosts\.yml:17: hosts\.h3\.role: unknown key$/],
    [LAB.replace('labels: { zone: c }', 'labels: { zone: [c] }'), /^hosts\.yml:\d+: hosts\.h3\.labels\.zone: a label value must be a string, number or boolean$/],
    [LAB.replace('    roles: [manager]', '    roles: []'), /^hosts\.yml:10: hosts\.h1\.roles: must NOT have fewer than 1 items$/],
    [LAB.replace('    roles: [manager]', '    roles: [worker]'), /^hosts\.yml:8: hosts: no host has the role manager/],
    [LAB.replace('    roles: [manager]', '    roles: [manager, manager]'), /^hosts\.yml:10: hosts\.h1\.roles: lists a role twice$/],
    [LAB.replace('address: 10.99.0.13', 'address: 10.99.0.12'), /^hosts\.yml:16: hosts\.h3\.address: 10\.99\.0\.12 port 22 is also the address of host h2$/],
    [LAB.replace('  h3:', '  "h 3":'), /^hosts\.yml:\d+: hosts\.h 3: a host name may contain only/],
    [LAB.replace('  port: 22', '  timeout: soon'), /^hosts\.yml:4: defaults\.timeout: "soon" is not a duration/],
    [LAB.replace('  port: 22', '  timeout: 0s'), /^hosts\.yml:4: defaults\.timeout: must be more than 0$/],
    [LAB.replace('  user: root\n', ''), /^hosts\.yml:\d+: hosts\.h1\.user: is required: set user on the host, in one of its groups, or under defaults$/],
    [LAB.replace('    roles: [worker]\n    labels: { zone: b }', '    labels: { zone: b }'), /^hosts\.yml:\d+: hosts\.h2\.roles: is required/],
    [`${LAB}groups:\n  g: { hosts: [h2, h9] }\n`, /^hosts\.yml:20: groups\.g\.hosts\[1\]: no host "h9" under hosts: \(h1, h2, h3\)$/],
    [`${LAB}groups:\n  a: { hosts: [h2], user: x }\n  b: { hosts: [h2], user: y }\n`, /^hosts\.yml:21: groups\.b\.user: host h2 is in groups a and b, which set user to "x" and "y": set it on hosts\.h2$/],
    ['defaults: { user: root }\n', /^hosts\.yml:1: hosts: is required$/],
    ['hosts: {}\n', /^hosts\.yml:1: hosts: lists no host$/],
    ['- h1\n', /^hosts\.yml:1: \(top level\): must be a mapping/],
    ['hosts: [oops\n', /^hosts\.yml: /],
  ];
  for (const [text, want] of cases) {
    const e = refusal(text);
    assert.match(e.message, want, text);
  }
});

const dir = await mkdtemp(join(tmpdir(), 'airlock-inv-'));
after(() => rm(dir, { recursive: true, force: true }));

test('loadInventory: a missing file is not-found (exit 4) with the fix', async () => {
  await assert.rejects(loadInventory(join(dir, 'nope.yml')), (e: AirlockError) => e.exitCode === 4 && /inventory not found/.test(e.message) && /--inventory/.test(e.hint ?? ''));
  await writeFile(join(dir, 'hosts.yml'), LAB);
  const inv = await loadInventory(join(dir, 'hosts.yml'));
  assert.equal(inv.hosts.length, 3);
});

test('the CLI reports an inventory error with exit 3 before connecting to anything', async () => {
  const file = join(dir, 'bad.yml');
  await writeFile(file, LAB.replace('roles: [worker]\n    labels: { zone: c }', 'roles: [wrker]\n    labels: { zone: c }'));
  const r = await runCli(['cluster', 'up', '--inventory', file]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:17: hosts\\.h3\\.roles\\[0\\]: must be one of manager, worker`));
  const j = await runCli(['cluster', 'status', '--inventory', file, '--json']);
  assert.equal(j.code, 3);
  assert.equal(JSON.parse(j.stdout).reason, 'bad-inventory');
  const u = await runCli(['cluster', 'up']);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /--inventory FILE is required/);
  const p = await runCli(['cluster', 'up', '--inventory', file, '--parallel', '0']);
  assert.equal(p.code, 2);
});
