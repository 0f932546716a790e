// The agent's own unit under a real, booted systemd (systemd 257 of Debian 13, PID 1 of a
// systemd-nspawn container; test/helpers/nspawn.ts). The units are installed the way
// docs/systemd.md installs them by hand, unchanged; /usr/bin/airlock is a two-line launcher
// running the checkout's build on the packaged runtime (what the package's launcher does with
// its bundled copy). The unit must verify inside the booted root, start, hand the agent its
// site identity as a credential that the agent's own code opens as its own user, and stop
// cleanly: inactive, exit status 0, nothing left of its processes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { bootSystemd, CHECKOUT_IN_BOX, nspawnMissing, packagedRuntime, type BootedSystemd, type UnitState } from '../helpers/nspawn.js';
import { REPO, runCli, tempDir } from '../helpers/fixtures.js';

const UNIT = 'airlock-agent.service';
const CREDENTIALS = `/run/credentials/${UNIT}`;

/** docs/systemd.md, "Installing by hand", run inside the container (the checkout is bound at its own path). */
async function installLikeTheDocs(box: BootedSystemd): Promise<void> {
  const sys = join(REPO, 'systemd');
  await box.run(['install', '-m', '0644', join(sys, 'airlock-agent.service'), '/usr/lib/systemd/system/']);
  await box.run(['install', '-m', '0644', join(sys, 'airlock.sysusers'), '/usr/lib/sysusers.d/airlock.conf']);
  await box.run(['install', '-m', '0644', join(sys, 'airlock.tmpfiles'), '/usr/lib/tmpfiles.d/airlock.conf']);
  await box.run(['systemd-sysusers', 'airlock.conf']);
  await box.run(['systemd-tmpfiles', '--create', 'airlock.conf']);
  // The package ships systemd/agent.yaml as /etc/airlock/agent.yaml (scripts/package).
  await box.run(['install', '-m', '0644', join(sys, 'agent.yaml'), '/etc/airlock/agent.yaml']);
}

test('airlock-agent.service under a booted systemd: verifies, starts, reads its site identity credential, stops cleanly', { skip: nspawnMissing(), timeout: 120_000 }, async (t) => {
  const { dir, cleanup } = await tempDir('airlock-nspawn-');
  let booted: BootedSystemd | undefined;
  // One hook, in this order: the folder holds the container's root until it is stopped and unmounted.
  t.after(async () => {
    await booted?.stop();
    await cleanup();
  });
  const keys = join(dir, 'keys');
  const signing = await runCli(['key', 'generate', '--out', join(keys, 'vendor'), '--json']);
  assert.equal(signing.code, 0, signing.stderr);
  const site = await runCli(['key', 'generate', '--kind', 'site', '--out', join(keys, 'site'), '--json']);
  assert.equal(site.code, 0, site.stderr);
  const siteKeyId = (JSON.parse(site.stdout) as { keyId: string }).keyId;

  const started = Date.now();
  const box = await bootSystemd({ dir: join(dir, 'box') });
  booted = box;
  t.diagnostic(`booted in ${Date.now() - started} ms`);

  await installLikeTheDocs(box);
  const { node } = packagedRuntime();
  await box.writeFile('/usr/bin/airlock', `#!/bin/sh\nexec ${node} ${join(CHECKOUT_IN_BOX, 'bin/airlock')} "$@"\n`, 0o755);
  await box.copyIn(join(keys, 'vendor.pub'), '/etc/airlock/trusted.d/vendor.pub');
  await box.copyIn(join(keys, 'site.identity'), '/etc/airlock/site-keys/site.identity', 0o600);

  // Inside the booted root every Exec*= path and dependency resolves: no output at all is clean.
  const verify = await box.exec(['systemd-analyze', 'verify', `/usr/lib/systemd/system/${UNIT}`]);
  assert.equal(verify.code, 0, verify.stderr);
  assert.equal(`${verify.stdout}${verify.stderr}`, '', 'systemd-analyze verify printed something');

  await box.systemctl('daemon-reload');
  await box.systemctl('enable', '--now', UNIT);
  const running = await waitForLog(box, 'agent started');
  const up = await box.unitState(UNIT);
  assert.equal(up.ActiveState, 'active', JSON.stringify(up));
  assert.equal(up.SubState, 'running');
  assert.ok(up.MainPID > 0);
  assert.doesNotMatch(running, /level=error/, running);

  // The credential: systemd copied the root-only identity into the unit's credentials folder,
  // and the agent's environment points there.
  const environ = (await box.run(['cat', `/proc/${up.MainPID}/environ`])).split('\0');
  assert.ok(environ.includes(`CREDENTIALS_DIRECTORY=${CREDENTIALS}`), environ.join(' '));
  const listed = (await box.run(['ls', '-A', CREDENTIALS])).trim().split('\n');
  assert.deepEqual(listed.sort(), ['site-identity', 'site-identity_site.identity', 'swarm-join-token']);
  t.diagnostic(`credentials as systemd made them: ${(await box.run(['stat', '-c', '%n %a %U:%G', CREDENTIALS, `${CREDENTIALS}/site-identity_site.identity`])).trim().replace(/\n/g, '; ')}`);
  t.diagnostic((await box.run(['findmnt', '-n', '-o', 'FSTYPE,OPTIONS', '-T', CREDENTIALS], { enter: { pid: box.hostPid(up.MainPID), flags: ['-m', '-p'] } })).trim());
  const copied = await box.run(['cat', `${CREDENTIALS}/site-identity_site.identity`]);
  assert.equal(copied, await readFile(join(keys, 'site.identity'), 'utf8'));

  // The agent's own code (agentSealing, then the keys it holds), as the agent's user in the
  // agent's mount namespace, with the environment the unit gave it: /etc/airlock/site-keys is
  // not readable there, the credential is, and it opens as the site key generated above.
  const hostPid = box.hostPid(up.MainPID);
  const probe = `
    const { agentSealing } = await import(${JSON.stringify(join(CHECKOUT_IN_BOX, 'dist/src/agent/sealing.js'))});
    const { hostKeysOf } = await import(${JSON.stringify(join(CHECKOUT_IN_BOX, 'dist/src/seal/sealing-options.js'))});
    const { readdir, readFile } = await import('node:fs/promises');
    const sealing = agentSealing({ secrets: { identities: [], requireSealed: true } }, process.env);
    const held = await hostKeysOf('/var/lib/airlock', sealing).identities().then((ids) => ({ keyIds: ids.map((i) => i.keyId) }), (e) => ({ refused: e.message }));
    const siteKeysReadable = await readdir('/etc/airlock/site-keys').then(() => true, () => false);
    const credentialReadable = await readFile(sealing.identities[0]).then(() => true, () => false);
    console.log(JSON.stringify({ uid: process.getuid(), paths: sealing.identities, ...held, siteKeysReadable, credentialReadable }));
  `;
  const ids = await box.run(['id', '-u', 'airlock']);
  const gid = await box.run(['id', '-g', 'airlock']);
  const seen = JSON.parse(
    await box.run([node, '--input-type=module', '-e', probe], {
      env: { CREDENTIALS_DIRECTORY: CREDENTIALS },
      enter: { pid: hostPid, flags: ['-m', '-p', `--setuid=${ids.trim()}`, `--setgid=${gid.trim()}`] },
    }),
  ) as { uid: number; paths: string[]; keyIds?: string[]; refused?: string; siteKeysReadable: boolean; credentialReadable: boolean };
  assert.equal(seen.uid, Number(ids.trim()));
  assert.deepEqual(seen.paths, [`${CREDENTIALS}/site-identity_site.identity`]);
  assert.equal(seen.siteKeysReadable, false, 'the agent must not need /etc/airlock/site-keys');
  assert.equal(seen.credentialReadable, true, 'systemd grants the service user read access to its credential');

  // SIGHUP through ExecReload= (/bin/kill, run as the agent's user under its filter): the same
  // process reads its config again.
  await box.systemctl('reload', UNIT);
  await waitForLog(box, 'config reloaded');
  assert.equal((await box.unitState(UNIT)).MainPID, up.MainPID);

  // What "nothing left" is judged by, while the agent runs: its user's processes and its cgroup.
  const leftover = () => box.exec(['pgrep', '-u', 'airlock']);
  const inCgroup = () => box.exec(['sh', '-c', `cat /sys/fs/cgroup/unified${up.ControlGroup}/cgroup.procs /sys/fs/cgroup/systemd${up.ControlGroup}/cgroup.procs 2>/dev/null`]);
  assert.deepEqual((await leftover()).stdout.trim().split('\n'), [String(up.MainPID)]);
  assert.ok((await inCgroup()).stdout.split('\n').includes(String(up.MainPID)), `MainPID not in ${up.ControlGroup}`);

  // Stops cleanly: SIGTERM, the agent exits 0, nothing of it is left.
  const stopStarted = Date.now();
  await box.systemctl('stop', UNIT);
  t.diagnostic(`systemctl stop took ${Date.now() - stopStarted} ms`);
  const down = await box.unitState(UNIT);
  assert.equal(down.ActiveState, 'inactive', JSON.stringify(down));
  assert.equal(down.SubState, 'dead');
  assert.equal(down.Result, 'success');
  assert.equal(down.ExecMainCode, 1, 'CLD_EXITED: the agent exited by itself, it was not killed');
  assert.equal(down.ExecMainStatus, 0);
  assert.equal(down.MainPID, 0);
  assert.match(await journal(box), /agent stopped/);
  const left = await leftover();
  assert.equal(left.code, 1, `processes of user airlock left: ${left.stdout}`);
  assert.equal((await inCgroup()).stdout, '', `processes left in ${up.ControlGroup}`);
  assert.deepEqual((await box.exec(['ls', CREDENTIALS])).code !== 0, true, 'the credentials folder is removed at stop');

  // A config a restart cannot fix: exit 3, and RestartPreventExitStatus= keeps the unit failed
  // instead of scheduling a restart every 10 s.
  await box.writeFile('/etc/airlock/agent.yaml', 'inbox: [not, a, map]\n');
  await box.exec(['systemctl', 'start', UNIT]);
  const bad = await waitForState(box, (s) => s.ActiveState === 'failed');
  assert.equal(bad.ExecMainStatus, 3, JSON.stringify(bad));
  assert.equal(bad.Result, 'exit-code');
  assert.equal(bad.SubState, 'failed', 'not auto-restart: no restart is scheduled');
  assert.equal(bad.NRestarts, 0);

  // Asserted last so that the lifecycle above is judged even while this fails.
  assert.deepEqual(seen, { uid: seen.uid, paths: seen.paths, keyIds: [siteKeyId], siteKeysReadable: false, credentialReadable: true }, 'the agent opens the credential as the site key generated above');
});

test('the booted container: only loopback, writes land in its own upper folder, and stop leaves no mount and no process', { skip: nspawnMissing(), timeout: 90_000 }, async (t) => {
  const { dir, cleanup } = await tempDir('airlock-nspawn-');
  let booted: BootedSystemd | undefined;
  t.after(async () => {
    await booted?.stop();
    await cleanup();
  });
  const shared = join(dir, 'shared');
  await mkdir(shared);
  const box = await bootSystemd({ dir: join(dir, 'box'), bind: [shared] });
  booted = box;
  assert.equal((await box.run(['cat', '/proc/1/comm'])).trim(), 'systemd');
  assert.deepEqual((await box.run(['ls', '/sys/class/net'])).trim().split(/\s+/), ['lo']);

  const probe = `/etc/airlock-nspawn-probe-${process.pid}`;
  await box.run(['sh', '-c', `echo inside > ${probe} && echo bound > ${shared}/from-inside`]);
  assert.equal(await readFile(join(dir, 'box/upper', probe), 'utf8'), 'inside\n');
  assert.equal(await readFile(join(shared, 'from-inside'), 'utf8'), 'bound\n');
  const lower = (await runCommand(join(REPO, 'scripts/engines'), ['bare-root'])).trim();
  assert.equal(existsSync(join(lower, probe)), false, 'the shared bare root was written');

  const nspawn = box.nspawnPid;
  const leader = box.leader;
  await box.stop();
  for (const pid of [nspawn, leader]) assert.equal(existsSync(`/proc/${pid}`), false, `pid ${pid} still runs`);
  assert.ok(!(await readFile('/proc/self/mountinfo', 'utf8')).includes(join(dir, 'box')), 'the overlay is still mounted');
  assert.deepEqual(await readdir(join(dir, 'box')), ['console.log']);
});

const runCommand = async (cmd: string, args: string[]) => (await promisify(execFile)(cmd, args, { encoding: 'utf8' })).stdout;

async function journal(box: BootedSystemd): Promise<string> {
  return box.run(['journalctl', '--no-pager', '-o', 'cat', '-u', UNIT]);
}

/** The unit's state once it satisfies the predicate. */
async function waitForState(box: BootedSystemd, ok: (s: UnitState) => boolean, timeoutMs = 20_000): Promise<UnitState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await box.unitState(UNIT);
    if (ok(s)) return s;
    if (Date.now() > deadline) throw new Error(`${UNIT} did not reach the expected state in time: ${JSON.stringify(s)}\n${await journal(box)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The unit's journal once it holds LINE (the agent logs to stdout, which systemd sends there). */
async function waitForLog(box: BootedSystemd, line: string, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await journal(box);
    if (text.includes(line)) return text;
    if (Date.now() > deadline) throw new Error(`"${line}" not in the journal of ${UNIT} in time:\n${text}\n${await box.systemctl('status', UNIT).catch((e: Error) => e.message)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
