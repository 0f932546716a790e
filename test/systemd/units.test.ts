// The systemd integration of `airlock agent` (systemd/): the unit must verify cleanly, stay at
// or under exposure 2.0, and carry what the agent needs; sysusers.d and tmpfiles.d must make
// the user, the docker membership and the directories. Everything runs the real systemd tools
// (systemd-analyze, systemd-sysusers, systemd-tmpfiles); none needs a running systemd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chown, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, REPO, tempDir } from '../helpers/fixtures.js';

const UNIT = join(REPO, 'systemd/airlock-agent.service');
const SYSUSERS = join(REPO, 'systemd/airlock.sysusers');
const TMPFILES = join(REPO, 'systemd/airlock.tmpfiles');
const CHECK = join(REPO, 'scripts/check-systemd');

function run(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function check(unitFile?: string) {
  const r = run(CHECK, unitFile ? [unitFile] : []);
  const m = /^exposure: (\d+\.\d+)$/m.exec(r.out);
  return { ...r, exposure: m ? Number(m[1]) : NaN };
}

/** The unit's settings, section -> key -> every value in order (systemd's own line rules, minus continuations). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let cur: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      cur = new Map();
      sections.set(sec[1]!, cur);
      continue;
    }
    assert.ok(!line.endsWith('\\'), `line continuation not expected: ${line}`);
    const eq = line.indexOf('=');
    assert.ok(cur && eq > 0, `unparsable line: ${line}`);
    const key = line.slice(0, eq).trim();
    cur.set(key, [...(cur.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

async function withUnitCopy(t: { after: (fn: () => Promise<void>) => void }, edit: (text: string) => string) {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const text = await readFile(UNIT, 'utf8');
  const edited = edit(text);
  assert.notEqual(edited, text, 'the edit changed nothing');
  const file = join(dir, 'airlock-agent.service');
  await writeFile(file, edited);
  return file;
}

test('check-systemd: the shipped unit verifies with no output and its exposure is at most 2.0', () => {
  const r = check();
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^sysusers: ok$/m);
  assert.match(r.out, /^tmpfiles: ok$/m);
  assert.match(r.out, /^verify: clean$/m);
  assert.ok(r.exposure <= 2.0, `exposure ${r.exposure}`);
  // The same threshold, judged by systemd-analyze itself (--threshold is in tenths).
  const s = run('systemd-analyze', ['security', '--offline=true', '--threshold=20', '--no-pager', UNIT]);
  assert.equal(s.code, 0, s.out);
  assert.match(s.out, new RegExp(`Overall exposure level for airlock-agent\\.service: ${r.exposure.toFixed(1)} `));
});

test('check-systemd fails on a misspelled directive, which systemd-analyze verify reports but exits 0 on', async (t) => {
  const file = await withUnitCopy(t, (s) => s.replace(/^ProtectHome=yes$/m, 'ProtectHome=yes\nProtectHomee=yes'));
  const direct = run('systemd-analyze', ['verify', '--man=no', '--generators=no', file]);
  assert.match(direct.out, /Unknown key 'ProtectHomee'/);
  const r = check(file);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /^verify: FAIL$/m);
  assert.match(r.out, /:\d+: Unknown key 'ProtectHomee' in section \[Service\]/);
  assert.doesNotMatch(r.out, /verify: clean/);
});

test('check-systemd fails on a misspelled executable path and on a bad value', async (t) => {
  const exe = await withUnitCopy(t, (s) => s.replace('ExecReload=/bin/kill ', 'ExecReload=/bin/kil '));
  const r1 = check(exe);
  assert.equal(r1.code, 1, r1.out);
  assert.match(r1.out, /Command \/bin\/kil is not executable/);
  const val = await withUnitCopy(t, (s) => s.replace(/^ProtectSystem=strict$/m, 'ProtectSystem=stricter'));
  const r2 = check(val);
  assert.equal(r2.code, 1, r2.out);
  assert.match(r2.out, /Failed to parse protect system value, ignoring: stricter/);
});

test('check-systemd fails when the hardening is stripped and prints the higher exposure', async (t) => {
  const hardening = /^(Protect|Private|Restrict|SystemCall|CapabilityBoundingSet|NoNewPrivileges|LockPersonality|ProcSubset|RemoveIPC)[A-Za-z]*=.*\n/gm;
  const file = await withUnitCopy(t, (s) => s.replace(hardening, ''));
  const r = check(file);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /^security: FAIL$/m);
  assert.ok(r.exposure > 2.0, `exposure ${r.exposure}`);
  assert.match(r.out, /^verify: clean$/m);
});

test('the unit runs the agent the way the product needs', async () => {
  const unit = parseUnit(await readFile(UNIT, 'utf8'));
  const svc = unit.get('Service')!;
  const one = (k: string) => {
    const v = svc.get(k);
    assert.ok(v, `${k}= is missing`);
    return v[v.length - 1]!;
  };
  const words = (k: string) => (svc.get(k) ?? []).join(' ').split(/\s+/).filter(Boolean);

  assert.ok(['exec', 'simple'].includes(one('Type')));
  assert.equal(one('ExecStart'), '/usr/bin/airlock agent --config /etc/airlock/agent.yaml');
  assert.match(one('ExecReload'), /^\/bin\/kill -HUP \$MAINPID$/);
  assert.equal(one('KillSignal'), 'SIGTERM');
  assert.equal(one('KillMode'), 'mixed'); // SIGTERM to the agent only; children are not cut mid-step
  assert.equal(one('TimeoutStopSec'), '5min');
  assert.equal(one('Restart'), 'on-failure');
  assert.ok(svc.has('RestartSec'));
  assert.deepEqual(words('RestartPreventExitStatus'), ['2', '3']); // usage and config errors: a restart cannot fix them

  // Unprivileged, with the Docker socket through the docker group only.
  assert.equal(one('User'), 'airlock');
  assert.equal(one('Group'), 'airlock');
  assert.deepEqual(words('SupplementaryGroups'), ['docker']);
  assert.ok(!svc.has('PrivateUsers'), 'PrivateUsers= stays off until it has been tried under a real systemd (docs/systemd.md)');
  assert.ok(!svc.has('DynamicUser'));
  assert.equal(one('NoNewPrivileges'), 'yes');
  assert.equal(one('CapabilityBoundingSet'), '');
  assert.equal(one('AmbientCapabilities'), '');

  // Writes only to its state dir; reads /etc/airlock.
  assert.equal(one('ProtectSystem'), 'strict');
  assert.equal(one('StateDirectory'), 'airlock');
  assert.equal(one('StateDirectoryMode'), '0750');
  assert.ok(words('ReadWritePaths').includes('/var/lib/airlock'));
  assert.equal(one('UMask'), '0027');
  assert.equal(one('ProtectHome'), 'yes');
  assert.equal(one('PrivateTmp'), 'yes');

  // Node's JIT needs W+X memory; V8 probes memory-protection keys at start-up (pkey_alloc is not
  // in @system-service), so those are allowed and anything else outside the list fails with
  // EPERM rather than killing node with SIGSYS.
  assert.equal(one('MemoryDenyWriteExecute'), 'no');
  const filters = svc.get('SystemCallFilter') ?? [];
  assert.ok(filters.some((f) => f.split(/\s+/).includes('@system-service') && f.includes('pkey_alloc')));
  assert.ok(filters.some((f) => f.startsWith('~') && f.includes('@privileged')));
  assert.equal(one('SystemCallErrorNumber'), 'EPERM');
  assert.equal(one('SystemCallArchitectures'), 'native');

  // Docker socket (AF_UNIX) and FTP polling (AF_INET/6), nothing else.
  assert.deepEqual(words('RestrictAddressFamilies').sort(), ['AF_INET', 'AF_INET6', 'AF_UNIX']);

  // The swarm join token: root-only file passed in as a credential, optional through the
  // SetCredential= fallback for the same id.
  assert.deepEqual(svc.get('LoadCredential'), ['swarm-join-token:/etc/airlock/swarm-join-token', 'site-identity:/etc/airlock/site-keys']);
  assert.ok((svc.get('SetCredential') ?? []).some((v) => v.startsWith('swarm-join-token:')));
  // The site identities (sealed secrets): the root-only folder, each file a credential; optional likewise.
  assert.ok((svc.get('SetCredential') ?? []).some((v) => v.startsWith('site-identity:')));

  const u = unit.get('Unit')!;
  assert.ok(u.get('After')!.join(' ').split(/\s+/).includes('docker.service'));
  assert.ok(!(u.get('Requires') ?? []).join(' ').includes('docker'), 'a dockerd restart must not stop the agent');
  assert.deepEqual(unit.get('Install')!.get('WantedBy'), ['multi-user.target']);
});

test('sysusers makes the airlock system user in group docker, reusing an existing docker group', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const fresh = join(dir, 'fresh');
  const withDocker = join(dir, 'with-docker');
  for (const root of [fresh, withDocker]) await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(withDocker, 'etc/group'), 'root:x:0:\ndocker:x:106:\n');
  await writeFile(join(withDocker, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');

  for (const root of [fresh, withDocker]) {
    const r = run('systemd-sysusers', [`--root=${root}`, SYSUSERS]);
    assert.equal(r.code, 0, r.out);
    const passwd = await readFile(join(root, 'etc/passwd'), 'utf8');
    const group = await readFile(join(root, 'etc/group'), 'utf8');
    const user = /^airlock:x:(\d+):(\d+):[^:]*:([^:]*):(.*)$/m.exec(passwd);
    assert.ok(user, passwd);
    assert.ok(Number(user[1]) > 0 && Number(user[1]) < 1000, `system uid, got ${user[1]}`);
    assert.equal(user[3], '/var/lib/airlock');
    assert.equal(user[4], '/usr/sbin/nologin');
    assert.match(group, new RegExp(`^airlock:x:${user[2]}:`, 'm'));
    assert.match(group, /^docker:x:\d+:airlock$/m);
  }
  assert.match(await readFile(join(withDocker, 'etc/group'), 'utf8'), /^docker:x:106:airlock$/m);
});

test('tmpfiles makes the state, inbox, trust and site key directories with their owners and modes', async (t) => {
  const { dir: root, cleanup } = await tempDir();
  t.after(cleanup);
  await mkdir(join(root, 'etc'));
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\nairlock:x:990:991::/var/lib/airlock:/usr/sbin/nologin\n');
  await writeFile(join(root, 'etc/group'), 'root:x:0:\nairlock:x:991:\n');
  for (let i = 0; i < 2; i++) {
    const r = run('systemd-tmpfiles', [`--root=${root}`, '--create', TMPFILES]);
    assert.equal(r.code, 0, r.out);
  }
  const want: [string, number, number, number][] = [
    ['etc/airlock', 0o755, 0, 0],
    ['etc/airlock/trusted.d', 0o755, 0, 0],
    ['etc/airlock/site-keys', 0o700, 0, 0],
    ['var/lib/airlock', 0o750, 990, 991],
    ['var/lib/airlock/inbox', 0o750, 990, 991],
  ];
  for (const [p, mode, uid, gid] of want) {
    const s = await stat(join(root, p));
    assert.ok(s.isDirectory(), p);
    assert.equal(s.mode & 0o7777, mode, `${p} mode ${(s.mode & 0o7777).toString(8)}`);
    assert.deepEqual([s.uid, s.gid], [uid, gid], p);
  }
  // No age field anywhere: `systemd-tmpfiles --clean` must never delete bundles or state.
  for (const line of (await readFile(TMPFILES, 'utf8')).split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    assert.equal(line.trim().split(/\s+/)[5], '-', line);
  }
});

test('node runs the CLI under the unit sandbox essentials: ProcSubset=pid, read-only /, an unprivileged user in group docker', async (t) => {
  // An approximation of the unit's namespace made with util-linux: a private mount namespace,
  // /proc remounted with subset=pid,hidepid=invisible (ProcSubset=pid, ProtectProc=invisible),
  // / remounted read-only (ProtectSystem=strict), then uid/gid nobody plus the docker group.
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const state = join(dir, 'state');
  await mkdir(state);
  await chown(state, 65534, 65534);
  const docker = /^docker:[^:]*:(\d+):/m.exec(await readFile('/etc/group', 'utf8'));
  assert.ok(docker, 'group docker exists on a test host (docker.io makes it)');
  const script = [
    'set -e',
    'mount -t proc -o subset=pid,hidepid=invisible proc /proc',
    'mount -o remount,bind,ro /',
    'test ! -e /proc/cpuinfo',
    'if touch /run/airlock-ro-probe 2>/dev/null; then echo "/ is writable"; exit 99; fi',
    `exec setpriv --reuid=65534 --regid=65534 --groups=${docker[1]} "$@"`,
  ].join('\n');
  const r = spawnSync(
    'unshare',
    ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', process.execPath, CLI, 'doctor', '--json', '--state', state, '--trust', join(dir, 'none')],
    { encoding: 'utf8' },
  );
  assert.equal(r.error, undefined);
  assert.equal(r.status, 3, `${r.stdout}${r.stderr}`); // only the missing trust store fails
  const checks = Object.fromEntries(
    (JSON.parse(r.stdout) as { checks: { name: string; status: string; detail: string }[] }).checks.map((c) => [c.name, c]),
  );
  assert.equal(checks.engine!.status, 'pass', checks.engine!.detail);
  assert.equal(checks['trust store']!.status, 'fail');
  // os.availableParallelism() (sched_getaffinity) still works where os.cpus() is empty.
  const p = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
    'mount -t proc -o subset=pid proc /proc && exec "$@"', 'sh', process.execPath, '-p',
    'JSON.stringify([require("os").cpus().length, require("os").availableParallelism()])'], { encoding: 'utf8' });
  const [cpus, par] = JSON.parse(p.stdout) as [number, number];
  assert.equal(cpus, 0);
  assert.ok(par >= 1);
});
