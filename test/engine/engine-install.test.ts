/**
 * `airlock engine install|rollback|status` and `recover`, for real: bare lab
 * hosts (their own Debian 13 root, no engine) get Debian's engines from
 * signed engine bundles: 26.1.5 and 28.5.2 in Docker's static layout (two
 * real versions that run on the same root), and 26.1.5 as its .deb set
 * installed with apt offline. Each refusal leaves the host as it was.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import type { Docker } from '../../src/docker/index.js';
import { engineFixtures, writeStaticArchive, SMALL_ELF, type ArchiveEntry } from '../helpers/engine-bundle-fixtures.js';
import { airlockCommand, airlockIn, buildEngineBundle, journalRows, writeHostEngineConfig } from '../helpers/engine-hosts.js';
import { makeSigner, runCli, type Signer } from '../helpers/fixtures.js';
import { type BareLabHost, type Lab, startBareLab } from '../helpers/lab.js';
import { STATIC_ENGINE_FILES } from '../../src/bundle/manifest-format.js';

interface ChangeRow {
  id: number;
  kind: string;
  version: string;
  status: string;
  step: string;
  reason: string | null;
}

const changesOf = (h: BareLabHost) => journalRows<ChangeRow>(h, 'SELECT id, kind, version, status, step, reason FROM engine_changes ORDER BY id');

/** A static archive of small real ELF files, each edited by `edit`: the platform and libc refusals need binaries this host cannot run. */
async function fakeStaticArchive(path: string, edit: (name: string, elf: Buffer) => Buffer): Promise<string> {
  const elf = readFileSync(SMALL_ELF);
  const entries: ArchiveEntry[] = [{ name: 'docker/', type: 'directory' }, ...STATIC_ENGINE_FILES.map((n) => ({ name: `docker/${n}`, type: 'file' as const, data: edit(n, Buffer.from(elf)) }))];
  return writeStaticArchive(path, entries.filter((e) => e.type === 'file'));
}

describe('engine install on bare hosts', { timeout: 900_000 }, () => {
  let base: string;
  let lab: Lab<BareLabHost>;
  let h1: BareLabHost;
  let h2: BareLabHost;
  let airlock: string;
  let signer: Signer;
  const bundles: Record<string, string> = {};
  let versions: { v26: string; v28: string };
  const machineGroups = readFileSync('/etc/group', 'utf8');

  const run = (host: string, args: string[], opts: { env?: Record<string, string>; user?: number } = {}) => airlockIn(lab, host, airlock, [...args, '--json'], opts);
  const install = (host: string, bundle: string, ...extra: string[]) => run(host, ['engine', 'install', bundle, '--trust', signer.trustDir, '--timeout', '60s', ...extra]);
  const engineVersion = async (h: BareLabHost): Promise<string> => {
    const d: Docker = lab.docker(h);
    return (await d.system.version()).Version;
  };

  before(async () => {
    const f = engineFixtures();
    if (typeof f === 'string') throw new Error(f);
    versions = { v26: f['static-26'].version, v28: f['static-28'].version };
    base = await mkdtemp('/tmp/airlock-engine-test-');
    // The not-root case runs the CLI as nobody: it must be able to reach it.
    await chmod(base, 0o755);
    signer = await makeSigner(base);
    airlock = await airlockCommand(base);
    bundles.e26 = await buildEngineBundle(base, signer, { version: '26.1.5', engine: { version: versions.v26, static: f['static-26'].path } });
    bundles.e28 = await buildEngineBundle(base, signer, { version: '28.5.2', engine: { version: versions.v28, static: f['static-28'].path } });
    // 26's binaries under a version they do not report: the check after start fails.
    bundles.lying = await buildEngineBundle(base, signer, { version: '29.0.0', engine: { version: '29.0.0', static: f['static-26'].path } });
    bundles.deb26 = await buildEngineBundle(base, signer, { name: 'docker-engine-deb', version: '26.1.5', engine: { version: f['deb-26'].version, packages: f['deb-26'].path } });
    bundles.debMissing = await buildEngineBundle(base, signer, { name: 'docker-engine-deb-missing', version: '26.1.5', engine: { version: f['deb-26-missing'].version, packages: f['deb-26-missing'].path } });
    // e_machine 183 (AArch64) in every binary: an engine for another platform.
    const arm = await fakeStaticArchive(join(base, 'arm64.tgz'), (_, elf) => (elf.writeUInt16LE(183, 18), elf));
    bundles.arm64 = await buildEngineBundle(base, signer, { name: 'docker-engine-arm64', version: '1.0.0', engine: { version: '28.5.2', static: arm } });
    // One binary that references a glibc newer than any host has.
    const newer = await fakeStaticArchive(join(base, 'glibc.tgz'), (n, elf) => (n === 'runc' ? Buffer.concat([elf, Buffer.from('\0GLIBC_2.99\0')]) : elf));
    bundles.newGlibc = await buildEngineBundle(base, signer, { name: 'docker-engine-newglibc', version: '1.0.0', engine: { version: '28.5.2', static: newer } });
    // A bundle with no engine at all.
    await writeFile(join(base, 'note.txt'), 'not an engine\n');
    await writeFile(join(base, 'files.yaml'), YAML.stringify({ name: 'just-files', version: '1.0.0', files: [{ src: join(base, 'note.txt'), dest: 'note.txt' }] }));
    const built = await runCli(['bundle', 'build', '-f', join(base, 'files.yaml'), '--key', signer.keyPath, '-o', join(base, 'files'), '--json']);
    assert.equal(built.code, 0, built.stderr);
    bundles.files = join(base, 'files', 'just-files-1.0.0.airlock');
    lab = await startBareLab(join(base, 'lab'), 2);
    [h1, h2] = [lab.host('h1'), lab.host('h2')];
    for (const h of [h1, h2]) await writeHostEngineConfig(h);
  });

  after(async () => {
    await lab?.stop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  /** What an install that was refused must leave: no engine, nothing installed, no bundle stored, the refusal journaled. */
  const assertUntouched = (h: BareLabHost, bundleName: string) => {
    assert.equal(existsSync(join(h.upperDir, 'opt/airlock')), false, 'nothing placed in /opt/airlock');
    assert.equal(existsSync(join(h.upperDir, 'etc/docker/daemon.json')), false, 'no daemon.json');
    assert.equal(existsSync(h.dockerSocket), false, 'no engine socket');
    if (existsSync(join(h.stateDir, 'journal.db'))) {
      assert.deepEqual(journalRows(h, 'SELECT id FROM bundles WHERE name = ?', bundleName), [], 'no bundle stored');
      assert.deepEqual(journalRows(h, 'SELECT id FROM engine_changes'), [], 'no engine change');
    }
  };

  test('refusals come before anything is stored or installed, each with its reason and exit code', async () => {
    const notRoot = await run('h2', ['engine', 'install', bundles.e26!, '--trust', signer.trustDir], { user: 65534 });
    assert.equal(notRoot.code, 13, notRoot.stdout + notRoot.stderr);
    assert.equal(notRoot.json?.reason, 'not-root');
    assert.match(String(notRoot.json?.message), /must run as root/);

    const arm = await install('h2', bundles.arm64!);
    assert.equal(arm.code, 13, arm.stdout + arm.stderr);
    assert.equal(arm.json?.reason, 'engine-wrong-platform');
    assert.match(String(arm.json?.message), /arm64/);
    assertUntouched(h2, 'docker-engine-arm64');

    const glibc = await install('h2', bundles.newGlibc!);
    assert.equal(glibc.code, 13, glibc.stdout + glibc.stderr);
    assert.equal(glibc.json?.reason, 'engine-wrong-libc');
    assert.match(String(glibc.json?.message), /2\.99/);
    assertUntouched(h2, 'docker-engine-newglibc');

    const missing = await install('h2', bundles.debMissing!);
    assert.equal(missing.code, 19, missing.stdout + missing.stderr);
    assert.equal(missing.json?.reason, 'engine-missing-dependency');
    assert.match(String(missing.json?.message), /containerd/);
    assertUntouched(h2, 'docker-engine-deb-missing');
    const dpkg = await lab.exec('h2', ['dpkg-query', '-W', '-f', '${Status}', 'docker.io'], { allowFail: true });
    assert.doesNotMatch(dpkg.stdout, /install ok installed/, 'docker.io is not installed');

    const files = await install('h2', bundles.files!);
    assert.equal(files.code, 2, files.stdout + files.stderr);
    assert.equal(files.json?.reason, 'not-an-engine-bundle');
    assertUntouched(h2, 'just-files');

    // Each is on record in the host's journal: the bundle's faults as refused; a dependency the host lacks (the host's to
    // fix) and a bundle given to the wrong command (the operator's) as failed.
    const outcomes = new Map(journalRows<{ reason: string; outcome: string }>(h2, `SELECT reason, outcome FROM events WHERE kind = 'bundle.import' ORDER BY id`).map((e) => [e.reason, e.outcome]));
    for (const r of ['engine-wrong-platform', 'engine-wrong-libc']) assert.equal(outcomes.get(r), 'refused', r);
    for (const r of ['engine-missing-dependency', 'not-an-engine-bundle']) assert.equal(outcomes.get(r), 'failed', r);
  });

  test('the static form installs, configures and starts the engine; a second run changes nothing', async () => {
    const r = await install('h1', bundles.e26!);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json?.outcome, 'installed');
    assert.equal(await engineVersion(h1), versions.v26);
    // In the host's own root, never the machine's.
    assert.equal(readFileSync(join(h1.upperDir, 'opt/airlock/engine', versions.v26, 'engine.json'), 'utf8').includes(versions.v26), true);
    const daemon = JSON.parse(await readFile(join(h1.upperDir, 'etc/docker/daemon.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(daemon['live-restore'], false);
    assert.deepEqual(daemon['log-opts'], { 'max-file': '3', 'max-size': '10m' });
    assert.equal(daemon['cgroup-parent'], h1.engineDaemon['cgroup-parent'], "the host config's own keys are merged");
    for (const unit of ['containerd.service', 'docker.service', 'docker.socket']) assert.ok(existsSync(join(h1.upperDir, 'etc/systemd/system', unit)), unit);
    assert.match(readFileSync(join(h1.upperDir, 'etc/systemd/system/docker.service'), 'utf8'), /DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1/);
    assert.match(readFileSync(join(h1.upperDir, 'etc/group'), 'utf8'), /^docker:/m);
    assert.equal(readFileSync('/etc/group', 'utf8'), machineGroups, "the machine's groups are untouched");
    assert.deepEqual(changesOf(h1).map((c) => [c.kind, c.version, c.status]), [['install', versions.v26, 'committed']]);

    const again = await install('h1', bundles.e26!);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(again.json?.outcome, 'unchanged');
    assert.equal(changesOf(h1).length, 1, 'no new change row');

    const status = await run('h1', ['engine', 'status']);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.equal((status.json?.reported as { version: string }).version, versions.v26);
    assert.equal((status.json?.installed as { form: string }).form, 'static');
  });

  test('an upgrade of the only node of a swarm is refused unless down time is accepted; then it drains, switches, checks and activates', async () => {
    const d = lab.docker(h1);
    await d.swarm.init({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: h1.address });
    const refused = await install('h1', bundles.e28!);
    assert.equal(refused.code, 13, refused.stdout + refused.stderr);
    assert.equal(refused.json?.reason, 'drain-no-capacity');
    assert.equal(await engineVersion(h1), versions.v26, 'the engine that ran still runs');
    assert.equal(changesOf(h1).length, 1, 'a refusal starts no change');
    assert.equal(existsSync(join(h1.upperDir, 'opt/airlock/engine', versions.v28)), false, 'nothing placed');

    const r = await install('h1', bundles.e28!, '--allow-downtime');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json?.outcome, 'upgraded');
    assert.equal(await engineVersion(h1), versions.v28);
    const info = await d.system.info();
    assert.equal(info.Swarm.LocalNodeState, 'active');
    const node = await d.nodes.inspect(info.Swarm.NodeID);
    assert.equal(node.Spec.Availability, 'active', 'the node is active again');
    assert.equal(node.Status.State, 'ready');
    const { kind, version, status, step } = changesOf(h1).at(-1)!;
    assert.deepEqual({ kind, version, status, step }, { kind: 'upgrade', version: versions.v28, status: 'committed', step: 'done' });
  });

  test('a new engine that fails its check is replaced by the one before, automatically, and journaled', async () => {
    const r = await install('h1', bundles.lying!, '--allow-downtime');
    assert.equal(r.code, 15, r.stdout + r.stderr);
    assert.equal(r.json?.reason, 'engine-upgrade-rolled-back');
    assert.match(String(r.json?.message), new RegExp(`${versions.v28.replaceAll('+', '\\+')} was restored`));
    assert.equal(await engineVersion(h1), versions.v28);
    const d = lab.docker(h1);
    assert.equal((await d.system.info()).Swarm.LocalNodeState, 'active');
    const last = changesOf(h1).at(-1)!;
    assert.equal(last.status, 'rolled-back');
    assert.equal(last.reason, 'engine-wrong-version');
    const events = journalRows<{ kind: string; outcome: string }>(h1, `SELECT kind, outcome FROM events WHERE kind LIKE 'engine.%' ORDER BY id`);
    assert.deepEqual(events.at(-2), { kind: 'engine.rollback', outcome: 'ok' });
    assert.deepEqual(events.at(-1), { kind: 'engine.upgrade', outcome: 'failed' });
  });

  test('engine rollback goes back to the engine the last change replaced', async () => {
    const r = await run('h1', ['engine', 'rollback', '--allow-downtime', '--timeout', '60s']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json?.outcome, 'rolled-back');
    assert.equal(await engineVersion(h1), versions.v26);
    assert.equal((await lab.docker(h1).system.info()).Swarm.LocalNodeState, 'active');
    assert.deepEqual(
      (({ kind, version, status }) => ({ kind, version, status }))(changesOf(h1).at(-1)!),
      { kind: 'rollback', version: versions.v26, status: 'committed' },
    );
  });

  // Killed (SIGKILL) just after each step was journaled, before its side effect; recover ends with one working engine.
  const kills: { point: string; runs: 'previous' | 'new'; status: string }[] = [
    { point: 'engine-stop', runs: 'previous', status: 'failed' },
    { point: 'engine-switch', runs: 'previous', status: 'failed' },
    { point: 'engine-start', runs: 'new', status: 'committed' },
    { point: 'engine-check', runs: 'new', status: 'committed' },
  ];
  for (const k of kills) {
    test(`killed at ${k.point}: recover ends with one working engine (the ${k.runs} one)`, async () => {
      // Every case starts from 26.
      if ((await engineVersion(h1).catch(() => '')) !== versions.v26) {
        const back = await install('h1', bundles.e26!, '--allow-downtime');
        assert.equal(back.code, 0, back.stdout + back.stderr);
      }
      const killed = await airlockIn(lab, 'h1', airlock, ['engine', 'install', bundles.e28!, '--trust', signer.trustDir, '--allow-downtime', '--json'], { env: { AIRLOCK_CRASH_AT: k.point } });
      assert.notEqual(killed.code, 0, 'killed by its crash point');
      assert.equal(changesOf(h1).at(-1)!.status, 'running', 'the change was left running');
      const r = await run('h1', ['recover', '--timeout', '60s']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal((r.json?.engine as { outcome: string }).outcome, k.status);
      assert.equal(await engineVersion(h1), k.runs === 'new' ? versions.v28 : versions.v26);
      const d = lab.docker(h1);
      const info = await d.system.info();
      assert.equal(info.Swarm.LocalNodeState, 'active');
      assert.equal((await d.nodes.inspect(info.Swarm.NodeID)).Spec.Availability, 'active', 'the drained node is active again');
      assert.equal(changesOf(h1).at(-1)!.status, k.status);
      assert.deepEqual(journalRows(h1, `SELECT id FROM engine_changes WHERE status = 'running'`), []);
    });
  }

  test('the package form installs the .deb set with apt in one offline transaction, and starts it itself', async () => {
    const r = await install('h2', bundles.deb26!);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json?.outcome, 'installed');
    const dpkg = await lab.exec('h2', ['dpkg-query', '-W', '-f', '${Status} ${Version}', 'docker.io']);
    assert.match(dpkg.stdout, /^install ok installed 26\.1\.5/);
    assert.equal(await engineVersion(h2), versions.v26);
    assert.equal(existsSync(join(h2.upperDir, 'usr/sbin/policy-rc.d')), false, 'the start guard is gone after the install');
    assert.ok(existsSync(join(h2.upperDir, 'etc/systemd/system/docker.service.d/airlock.conf')), 'the drop-in for the package unit');
    const again = await install('h2', bundles.deb26!);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(again.json?.outcome, 'unchanged');
    // The machine itself got nothing: its dockerd is its own package's, untouched.
    assert.equal(existsSync('/opt/airlock/engine'), false);
  });
});
