/**
 * Run inside a throwaway bare host by test/engine/engine-run.test.ts: the
 * package form with the host's real apt and dpkg. A set without containerd is
 * refused by name before anything is installed; the full set installs in one
 * transaction without starting the engine; the direct supervisor starts it.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitEngineHealthy } from '../../../src/engine/health.js';
import { defaultEngineHostPaths } from '../../../src/engine/host-paths.js';
import { currentEngine, installedEnginePackage } from '../../../src/engine/installed.js';
import { checkPackages, installPackages, type PackageFile } from '../../../src/engine/packages.js';
import { daemonConfig, writeDaemonConfig } from '../../../src/engine/daemon-config.js';
import { pickSupervisor } from '../../../src/engine/supervisor.js';
import { writeUnits } from '../../../src/engine/units.js';
import { isAirlockError } from '../../../src/errors/index.js';
import { runCommand } from '../../../src/engine/run-command.js';
import { engineProcesses } from './processes.js';

const dir = process.argv[2]!;
const { version, full } = JSON.parse(readFileSync(join(dir, 'deb.json'), 'utf8')) as { version: string; full: PackageFile[] };
const debs = (name: string) => readdirSync(join(dir, name)).map((f) => join(dir, name, f));
const paths = defaultEngineHostPaths();
const say = (step: string, detail: Record<string, unknown> = {}) => console.log(JSON.stringify({ step, ...detail }));
const running = (name: string) => engineProcesses().includes(name);

async function main(): Promise<void> {
  const dpkgStatus = readFileSync(join(paths.dpkgAdminDir, 'status'), 'utf8');
  await assert.rejects(checkPackages(debs('deb-26-missing')), (e: unknown) => {
    assert.ok(isAirlockError(e), String(e));
    assert.equal(e.reason, 'engine-missing-dependency');
    assert.equal(e.exitCode, 19);
    assert.match(e.message, /missing containerd \(>= [^)]+\) \(needed by docker\.io: /);
    assert.equal(e.subject, 'containerd');
    say('missing-refused', { message: e.message });
    return true;
  });
  assert.equal(readFileSync(join(paths.dpkgAdminDir, 'status'), 'utf8'), dpkgStatus, 'the simulation changed nothing');
  assert.equal(installedEnginePackage(paths), undefined);

  // Blobs named by digest: apt is given them under their package file names (the record's, or read from the package).
  const plan = await checkPackages(full);
  assert.ok(plan.installs.some((p) => p.startsWith('docker.io ')), JSON.stringify(plan));
  assert.deepEqual(plan.removes, []);

  const t0 = Date.now();
  await installPackages(full.map((f) => (typeof f === 'string' ? f : f.path)), { paths });
  const installMs = Date.now() - t0;
  assert.equal(existsSync(paths.policyRcD), false, 'policy-rc.d is gone after the install');
  assert.equal(running('dockerd') || running('containerd'), false, 'the packages did not start the engine');
  const installed = await currentEngine(paths);
  assert.equal(installed?.form, 'deb');
  assert.equal(installed?.package, 'docker.io');
  assert.ok(installed?.version.startsWith(version), `${installed?.version} is ${version}`);
  assert.equal((await runCommand('dpkg', ['--audit'])).stdout, '');
  say('installed', { installMs, package: installed?.version, plan: plan.installs });

  // A second install of the same set, with the host's own policy-rc.d in place: it stays.
  writeFileSync(paths.policyRcD, '#!/bin/sh\nexit 101\n# the host\'s own\n', { mode: 0o755 });
  await installPackages(full, { paths });
  assert.equal(readFileSync(paths.policyRcD, 'utf8'), "#!/bin/sh\nexit 101\n# the host's own\n");

  assert.equal(await writeUnits('deb', paths), true);
  await writeDaemonConfig(paths, daemonConfig({ daemon: { bridge: 'none', iptables: false, 'cgroup-parent': 'airlock-engine-test' } }));
  const supervisor = pickSupervisor('deb', paths);
  assert.equal(supervisor.kind, 'direct');
  await supervisor.enableAndStart();
  const healthy = await waitEngineHealthy(paths.socket, { version, timeoutMs: 60_000 });
  say('healthy', { version: healthy.version });
  await supervisor.stop();
  assert.equal(running('dockerd') || running('containerd'), false, 'nothing left after stop');
  say('done');
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.log(JSON.stringify({ step: 'failed', error: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
    process.exit(1);
  },
);
