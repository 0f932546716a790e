/**
 * Run inside a throwaway bare host (test/helpers/bare-root-ns.ts) by
 * test/engine/engine-run.test.ts: places two real engines from blob files,
 * starts, checks, stops and switches them with the direct supervisor, on the
 * host's real paths. Prints one JSON line per step; exits 1 at the first
 * assertion that fails.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import type { EngineRecord } from '../../../src/bundle/manifest-format.js';
import { Docker, unixSocketTransport } from '../../../src/docker/index.js';
import { daemonConfig, writeDaemonConfig } from '../../../src/engine/daemon-config.js';
import { ensureDockerGroup } from '../../../src/engine/docker-group.js';
import { waitEngineHealthy } from '../../../src/engine/health.js';
import { defaultEngineHostPaths } from '../../../src/engine/host-paths.js';
import { currentEngine } from '../../../src/engine/installed.js';
import { placeStaticEngine, switchCurrent } from '../../../src/engine/static-engine.js';
import { pickSupervisor } from '../../../src/engine/supervisor.js';
import { writeUnits } from '../../../src/engine/units.js';
import { isAirlockError } from '../../../src/errors/index.js';
import { runCommand } from '../../../src/engine/run-command.js';
import { engineProcesses } from './processes.js';

const dir = process.argv[2]!;
const { older, newer } = JSON.parse(readFileSync(join(dir, 'records.json'), 'utf8')) as { older: EngineRecord; newer: EngineRecord };
const blobPath = (digest: string) => join(dir, 'blobs', digest.slice('sha256:'.length));
const paths = defaultEngineHostPaths();
const say = (step: string, detail: Record<string, unknown> = {}) => console.log(JSON.stringify({ step, ...detail }));

async function main(): Promise<void> {
  const t0 = Date.now();
  // Lab-safe daemon settings: no bridge, no iptables rules, containers under a cgroup of the test's own.
  const cfg = daemonConfig({ dataRoot: '/var/lib/docker', daemon: { bridge: 'none', iptables: false, 'cgroup-parent': 'airlock-engine-test' } });
  assert.equal(await writeDaemonConfig(paths, cfg), true);
  assert.equal(await writeDaemonConfig(paths, cfg), false);
  assert.equal(await ensureDockerGroup(), true);
  assert.equal(await ensureDockerGroup(), false);
  assert.equal(await writeUnits('static', paths), true);
  assert.equal(await currentEngine(paths), undefined);

  for (const r of [older, newer]) assert.equal((await placeStaticEngine(r, blobPath, paths)).outcome, 'placed');
  assert.equal((await placeStaticEngine(older, blobPath, paths)).outcome, 'unchanged');
  say('placed', { ms: Date.now() - t0 });
  assert.deepEqual(await switchCurrent(paths, older.version), { previous: undefined, changed: true });

  const supervisor = pickSupervisor('static', paths);
  assert.equal(supervisor.kind, 'direct', 'no systemd here: the direct supervisor');
  assert.equal(await supervisor.isRunning(), false);
  let t = Date.now();
  await supervisor.enableAndStart();
  const first = await waitEngineHealthy(paths.socket, { version: older.version, timeoutMs: 60_000 });
  say('healthy', { version: first.version, startMs: Date.now() - t });
  assert.equal(first.version, older.version);
  assert.equal(await supervisor.isRunning(), true);
  await supervisor.start(); // running already: nothing new started
  assert.equal(engineProcesses().filter((c) => c === 'dockerd').length, 1);

  // The engine sees the daemon.json airlock wrote.
  const docker = new Docker({ transport: unixSocketTransport(paths.socket), endpoint: 'engine', retry: false });
  const info = await docker.system.info();
  assert.equal(info.DockerRootDir, '/var/lib/docker');
  await docker.close();
  // `docker` on the PATH is the current engine's CLI, through its links.
  const cli = await runCommand(paths.cliLink, ['version', '--format', '{{.Server.Version}}']);
  assert.equal(cli.stdout.trim(), older.version, cli.stderr);

  // Another version than the running one is refused by its name, at once (well before the timeout: waiting cannot change it).
  const asked = Date.now();
  await assert.rejects(waitEngineHealthy(paths.socket, { version: newer.version, timeoutMs: 30_000, pollMs: 300 }), (e: unknown) => {
    assert.ok(isAirlockError(e), String(e));
    assert.ok(Date.now() - asked < 10_000, 'refused at once');
    assert.equal(e.reason, 'engine-wrong-version');
    assert.equal(e.exitCode, 15);
    assert.equal(e.subject, 'version');
    assert.match(e.message, new RegExp(`reports version ${older.version.replace(/[+.]/g, '\\$&')}, not ${newer.version.replace(/[+.]/g, '\\$&')}`));
    say('wrong-version-refused', { message: e.message });
    return true;
  });

  t = Date.now();
  await supervisor.stop();
  say('stopped', { stopMs: Date.now() - t, left: engineProcesses() });
  assert.deepEqual(engineProcesses(), []);
  assert.equal(await supervisor.isRunning(), false);
  assert.deepEqual(readdirSync(paths.runDir), []);

  // The upgrade: switch to the newer engine, start it, it is healthy as itself; into a swarm on the way.
  assert.deepEqual(await switchCurrent(paths, newer.version), { previous: older.version, changed: true });
  await supervisor.start();
  const second = await waitEngineHealthy(paths.socket, { version: newer.version, timeoutMs: 60_000 });
  assert.equal(second.version, newer.version);
  assert.deepEqual(await currentEngine(paths), { form: 'static', version: newer.version, dir: join(paths.engineDir, newer.version) });
  const swarmClient = new Docker({ transport: unixSocketTransport(paths.socket), endpoint: 'engine', retry: false });
  await swarmClient.swarm.init({ ListenAddr: '127.0.0.1:2377', AdvertiseAddr: '127.0.0.1' });
  await swarmClient.close();
  const inSwarm = await waitEngineHealthy(paths.socket, { version: newer.version, swarm: true, timeoutMs: 60_000 });
  assert.ok(inSwarm.nodeId, 'the swarm check names the node');
  say('upgraded', { version: second.version, nodeId: inSwarm.nodeId });

  // And back, as a rollback does: the older engine takes the swarm node back, active and ready.
  await supervisor.stop();
  assert.deepEqual(engineProcesses(), []);
  assert.equal((await switchCurrent(paths, older.version)).previous, newer.version);
  await supervisor.start();
  const back = await waitEngineHealthy(paths.socket, { version: older.version, swarm: true, timeoutMs: 90_000 });
  assert.equal(back.nodeId, inSwarm.nodeId);
  say('rolled-back', { version: back.version, nodeId: back.nodeId });
  // An engine killed hard (its pid files and sockets stay behind) is started again, fresh.
  const pidOf = (d: string) => (JSON.parse(readFileSync(join(paths.runDir, `${d}.pid`), 'utf8')) as { pid: number }).pid;
  for (const d of ['dockerd', 'containerd']) process.kill(pidOf(d), 'SIGKILL');
  while (engineProcesses().some((c) => c === 'dockerd' || c === 'containerd')) await sleep(50);
  assert.equal(existsSync(paths.socket), true, 'the killed engine left its socket');
  assert.equal(await supervisor.isRunning(), false);
  await supervisor.start();
  assert.equal((await waitEngineHealthy(paths.socket, { version: older.version, timeoutMs: 60_000 })).version, older.version);
  await supervisor.stop();
  assert.deepEqual(engineProcesses(), []);
  say('restarted-after-kill');

  // A pid file whose pid belongs to another process now (reused): that process is never signalled.
  const other = spawn('sleep', ['60'], { stdio: 'ignore' });
  writeFileSync(join(paths.runDir, 'dockerd.pid'), JSON.stringify({ pid: other.pid, startTime: '1' }));
  assert.equal(await supervisor.isRunning(), false);
  await supervisor.stop();
  await sleep(300); // a signal, had one been sent, would have ended it by now
  assert.equal(other.exitCode, null);
  assert.equal(other.signalCode, null);
  assert.equal(existsSync(join(paths.runDir, 'dockerd.pid')), false);
  other.kill();
  say('reused-pid-spared');
  say('done', { ms: Date.now() - t0 });
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.log(JSON.stringify({ step: 'failed', error: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
    process.exit(1);
  },
);
