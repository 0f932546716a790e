import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAgentConfig, TOKEN_CREDENTIAL } from '../../src/agent/config.js';
import { AirlockError } from '../../src/errors/index.js';
import { MaintenanceWindow } from '../../src/agent/window.js';
import { REPO, runCli, tempDir } from '../helpers/fixtures.js';

const parse = (yaml: string, env: NodeJS.ProcessEnv = {}) => parseAgentConfig('agent.yaml', yaml, env);

function refusal(yaml: string): AirlockError {
  try {
    parse(yaml);
  } catch (e) {
    assert.ok(e instanceof AirlockError);
    assert.equal(e.kind, 'config');
    assert.equal(e.exitCode, 3);
    return e;
  }
  assert.fail(`accepted:\n${yaml}`);
}

test('an empty config gets the documented defaults', () => {
  const c = parse('');
  assert.equal(c.stateDir, '/var/lib/airlock');
  assert.equal(c.trustDir, '/etc/airlock/trusted.d');
  assert.equal(c.inbox.dir, '/var/lib/airlock/inbox');
  assert.deepEqual(c.inbox.sources, [{ type: 'folder', name: 'inbox', path: '/var/lib/airlock/inbox', complete: { mode: 'stable', stableForMs: 10_000 } }]);
  assert.equal(c.apply.mode, 'on-arrival');
  assert.equal(c.apply.window, null);
  assert.deepEqual(c.swarm, { mode: 'none' });
  assert.equal(c.retention.keep, 3);
  assert.equal(c.drift.reapply, false);
});

test('sources, window, swarm and schedules are read with their units', () => {
  const c = parse(`
stateDir: /srv/airlock
inbox:
  complete: { mode: marker, markerSuffix: .done }
  sources:
    - { type: folder, path: /srv/ftp/upload }
    - { type: ftp, name: drop, url: "ftps://ftp.example/out/", user: airlock, passwordFile: /etc/airlock/ftp-pw, timeout: 45s, recheck: 20m, poll: "*/5 * * * *" }
apply: { window: { cron: "0 2 * * 1-5", duration: 1h30m }, timeout: 2m }
swarm: { mode: join, role: manager, managers: ["10.0.0.1:2377"], tokenFile: /root/token }
retention: { schedule: null, keep: 5 }
`);
  assert.equal(c.inbox.dir, '/srv/airlock/inbox');
  const [, folder, ftp] = c.inbox.sources;
  assert.deepEqual(folder, { type: 'folder', name: '/srv/ftp/upload', path: '/srv/ftp/upload', complete: { mode: 'marker', suffix: '.done' } });
  assert.equal(ftp?.type, 'ftp');
  assert.equal(ftp?.type === 'ftp' && ftp.timeoutMs, 45_000);
  assert.equal(ftp?.type === 'ftp' && ftp.deleteAfter, false);
  assert.equal(ftp?.type === 'ftp' && ftp.recheckMs, 20 * 60_000);
  assert.deepEqual(c.apply.window, { cron: '0 2 * * 1-5', durationMs: 5_400_000 });
  assert.equal(c.apply.timeoutMs, 120_000);
  assert.deepEqual(c.swarm, { mode: 'join', role: 'manager', listenAddr: '0.0.0.0:2377', managers: ['10.0.0.1:2377'], tokenFile: '/root/token' });
  assert.equal(c.retention.schedule, null);
  assert.equal(c.retention.keep, 5);
});

test('under systemd the join token comes from the credentials directory', () => {
  const c = parse('swarm: { mode: join, managers: ["10.0.0.1:2377"] }', { CREDENTIALS_DIRECTORY: '/run/credentials/airlock-agent.service' });
  assert.equal(c.swarm.mode === 'join' && c.swarm.tokenFile, join('/run/credentials/airlock-agent.service', TOKEN_CREDENTIAL));
});

test('every error names the file, the line and the key', () => {
  const cases: [string, RegExp][] = [
    ['logLevel: loud', /^agent\.yaml:1: logLevel: must be equal to one of the allowed values: one of "debug", "info", "warn", "error"$/],
    ['inbox:\n  poll: hourly', /^agent\.yaml:2: inbox\.poll: "hourly" is not a cron expression/],
    ['inbox:\n  sources:\n    - type: ftp\n      url: http://x/', /^agent\.yaml:4: inbox\.sources\[0\]\.url: must match pattern/],
    ['inbox:\n  sources:\n    - type: ftp\n      url: ftp://x/\n      recheck: soon', /^agent\.yaml:5: inbox\.sources\[0\]\.recheck: "soon" is not a duration/],
    ['inbox:\n  sources:\n    - type: folder\n      path: /a\n      url: ftp://x/', /^agent\.yaml:5: inbox\.sources\[0\]\.url: unknown key$/],
    ['inbox:\n  sources:\n    - type: folder', /^agent\.yaml:3: inbox\.sources\[0\]\.path: is required$/],
    ['inbox:\n  sources:\n    - { type: folder, path: /a, name: x }\n    - { type: folder, path: /b, name: x }', /^agent\.yaml:4: inbox\.sources\[1\]\.name: two sources are named "x"/],
    ['apply:\n  window: { cron: "0 2 * * *" }', /^agent\.yaml:2: apply\.window\.duration: is required$/],
    ['apply:\n  window: { cron: "0 2 * * *", duration: soon }', /^agent\.yaml:2: apply\.window\.duration: "soon" is not a duration/],
    ['apply:\n  timeout: 10ms', /^agent\.yaml:2: apply\.timeout: "10ms" is too short/],
    ['swarm:\n  mode: init', /^agent\.yaml:2: swarm\.advertiseAddr: is required with mode: init/],
    ['swarm:\n  mode: join', /^agent\.yaml:2: swarm\.managers: is required with mode: join/],
    ['retention:\n  keep: 0', /^agent\.yaml:2: retention\.keep: /],
    ['inbox: [1, 2]', /^agent\.yaml:1: inbox: must be object$/],
    ['stateDir: [', /^agent\.yaml: /],
  ];
  for (const [yaml, message] of cases) assert.match(refusal(yaml).message, message, yaml);
});

test('the config shipped in systemd/ passes --check-config once its trust dir exists', async (t) => {
  const { dir, cleanup } = await tempDir('airlock-shipped-config-');
  t.after(cleanup);
  // The shipped file as it is, but for the trust dir the package would have made.
  const shipped = await readFile(join(REPO, 'systemd/agent.yaml'), 'utf8');
  assert.match(shipped, /^trustDir: \/etc\/airlock\/trusted\.d /m);
  await mkdir(join(dir, 'trusted.d'));
  await writeFile(join(dir, 'agent.yaml'), shipped.replace(/^trustDir: \/etc\/airlock\/trusted\.d /m, `trustDir: ${join(dir, 'trusted.d')} `));
  const r = await runCli(['agent', '--check-config', '--config', join(dir, 'agent.yaml')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /agent\.yaml: ok/);
  const missing = await runCli(['agent', '--check-config', '--config', '/nonexistent/agent.yaml']);
  assert.equal(missing.code, 4);
  assert.match(missing.stderr, /agent config not found: \/nonexistent\/agent\.yaml/);
});

test('the maintenance window is open from each cron match for its duration', () => {
  const w = new MaintenanceWindow('0 2 * * *', 2 * 3600_000);
  const at = (hhmm: string) => new Date(`2026-11-22T${hhmm}`);
  assert.equal(w.isOpen(at('01:59:59')), false);
  assert.equal(w.isOpen(at('02:00:00')), true);
  assert.equal(w.isOpen(at('03:59:59')), true);
  assert.equal(w.isOpen(at('04:00:00')), false);
  assert.deepEqual(w.closesAt(at('03:00:00')), at('04:00:00'));
  assert.equal(w.closesAt(at('05:00:00')), undefined);
  w.dispose();
  const s = new MaintenanceWindow('*/20 * * * * *', 5000);
  assert.equal(s.isOpen(new Date('2026-11-22T10:00:24.999')), true);
  assert.equal(s.isOpen(new Date('2026-11-22T10:00:25.000')), false);
  assert.equal(s.isOpen(new Date('2026-11-22T10:00:40.000')), true);
  s.dispose();
  // A window across midnight.
  const n = new MaintenanceWindow('30 23 * * *', 3600_000);
  assert.equal(n.isOpen(new Date('2026-11-23T00:15:00')), true);
  assert.equal(n.isOpen(new Date('2026-11-23T00:31:00')), false);
  n.dispose();
});

test('certificates: checked daily at 09:00 and warned 30 days ahead unless told; a bad margin names its key', () => {
  assert.deepEqual(parse('').certificates, { schedule: '0 9 * * *', warnMs: 720 * 3600_000 });
  assert.deepEqual(parse('certificates:\n  schedule: "0 6 * * 1"\n  warn: 1000h\n').certificates, { schedule: '0 6 * * 1', warnMs: 1000 * 3600_000 });
  assert.equal(parse('certificates:\n  schedule: null\n').certificates.schedule, null);
  assert.match(refusal('certificates:\n  warn: 30 days\n').message, /certificates\.warn.*"30 days" is not a duration/);
});
