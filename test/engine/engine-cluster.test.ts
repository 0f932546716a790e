/**
 * Bare hosts to a swarm without a hand on them: `cluster up --engine` from
 * the jump box installs the engine where none runs (a host that fails its
 * preflight is named and the others go on), and the agent's first boot
 * installs an engine bundle from its inbox before it makes the swarm.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import { Journal } from '../../src/journal/journal.js';
import { Operations } from '../../src/journal/operations.js';
import { AgentProcess } from '../helpers/agent.js';
import { engineFixtures } from '../helpers/engine-bundle-fixtures.js';
import { airlockCommand, airlockIn, buildEngineBundle, journalRows } from '../helpers/engine-hosts.js';
import { makeProject, makeSigner, runCli, type Signer } from '../helpers/fixtures.js';
import { type BareLabHost, type Lab, startBareLab } from '../helpers/lab.js';

describe('engines on bare hosts from the jump box and from the agent', { timeout: 600_000 }, () => {
  let base: string;
  let lab: Lab<BareLabHost>;
  let airlock: string;
  let signer: Signer;
  let bundle: string;
  let bundle28: string;
  let version: string;
  let version28: string;
  let threeHosts: string;

  before(async () => {
    const f = engineFixtures();
    if (typeof f === 'string') throw new Error(f);
    version = f['static-26'].version;
    version28 = f['static-28'].version;
    base = await mkdtemp('/tmp/airlock-engine-cluster-');
    await chmod(base, 0o755);
    signer = await makeSigner(base);
    airlock = await airlockCommand(base);
    bundle = await buildEngineBundle(base, signer, { version: '26.1.5', engine: { version, static: f['static-26'].path } });
    bundle28 = await buildEngineBundle(base, signer, { version: '28.5.2', engine: { version: version28, static: f['static-28'].path } });
    lab = await startBareLab(join(base, 'lab'), 4);
    for (const h of lab.hosts) {
      await mkdir(join(h.etcDir, 'trusted.d'), { recursive: true });
      await copyFile(signer.pubPath, join(h.etcDir, 'trusted.d', 'vendor.pub'));
    }
  });

  after(async () => {
    await lab?.stop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  /** Writes the host's agent.yaml: its engine settings for the lab, and what else the test gives. */
  const hostConfig = (h: BareLabHost, extra: Record<string, unknown> = {}) =>
    writeFile(join(h.etcDir, 'agent.yaml'), YAML.stringify({ ...extra, engine: { daemon: h.engineDaemon } }));

  /** A process of the test's own inside the host, holding a port as a foreign service would. */
  const holdPort = (h: BareLabHost, port: number): ChildProcess =>
    spawn(h.enter[0]!, [...h.enter.slice(1), process.execPath, '-e', `require('net').createServer().listen(${port}, '0.0.0.0'); setInterval(() => {}, 1e6)`], { stdio: 'ignore' });

  const clusterUp = (inventory: string) => runCli(['cluster', 'up', '--inventory', inventory, '--engine', bundle, '--remote-airlock', airlock, '--timeout', '60s', '--json']);

  test('cluster up --engine installs where no engine runs, names a host that fails its preflight, and forms the swarm of the others', async () => {
    const [h1, h2, h3] = lab.hosts as [BareLabHost, BareLabHost, BareLabHost];
    for (const h of [h1, h2, h3]) await hostConfig(h);
    const inventory = join(base, 'three.yml');
    threeHosts = inventory;
    const full = YAML.parse(await readFile(lab.inventoryFile, 'utf8')) as { hosts: Record<string, unknown> };
    delete full.hosts.h4;
    await writeFile(inventory, YAML.stringify(full));
    const holder = holdPort(h3, 7946);
    try {
      await new Promise((r) => setTimeout(r, 500));
      const r = await clusterUp(inventory);
      assert.notEqual(r.code, 0, 'a host failed');
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
        ok: boolean;
        engines: { host: string; engine?: { action: string; version: string }; error?: { step: string; reason: string; message: string } }[];
        hosts: { host: string; action: string; nodeId: string | null }[];
      };
      assert.equal(out.ok, false);
      const engines = new Map(out.engines.map((e) => [e.host, e]));
      assert.equal(engines.get('h1')?.engine?.action, 'installed');
      assert.equal(engines.get('h2')?.engine?.action, 'installed');
      assert.equal(engines.get('h3')?.error?.reason, 'preflight-failed');
      assert.match(engines.get('h3')!.error!.message, /7946\/tcp/);
      assert.match(engines.get('h3')!.error!.message, new RegExp(`pid ${holder.pid}`));
      // The others formed the swarm; h3 is left out, with no engine installed.
      assert.deepEqual(out.hosts.map((h) => [h.host, h.action]), [['h1', 'initialised'], ['h2', 'joined']]);
      const nodes = await lab.docker(h1).nodes.list();
      assert.equal(nodes.length, 2);
      assert.deepEqual(journalRows(h3, 'SELECT id FROM engine_changes'), []);
    } finally {
      holder.kill();
    }
    // The port freed, a second run installs on h3 alone and joins it; the others are left as they are.
    await new Promise((r) => setTimeout(r, 300));
    const again = await clusterUp(inventory);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    const out = JSON.parse(again.stdout.trim().split('\n').at(-1)!) as { engines: { host: string; engine?: { action: string } }[]; hosts: { host: string; action: string }[] };
    assert.deepEqual(out.engines.map((e) => [e.host, e.engine?.action]), [['h1', 'has-engine'], ['h2', 'has-engine'], ['h3', 'installed']]);
    assert.deepEqual(out.hosts.map((h) => [h.host, h.action]), [['h1', 'unchanged'], ['h2', 'unchanged'], ['h3', 'joined']]);
    assert.equal((await lab.docker(h1).nodes.list()).length, 3);
  });

  test("an upgrade of a manager's engine drains it first and waits until its tasks run on the other nodes", async () => {
    const [h1] = lab.hosts as [BareLabHost];
    // The stacks of a release on the three nodes; the worker service, one task per node, has one on h1.
    const project = join(base, 'release');
    await mkdir(project, { recursive: true });
    const built = await runCli(['bundle', 'build', '-f', await makeProject(project, { repo: 'drainapp' }), '--key', signer.keyPath, '-o', join(project, 'out'), '--json']);
    assert.equal(built.code, 0, built.stderr);
    const applied = await runCli(['bundle', 'apply', join(project, 'out', 'demo-1.0.0.airlock'), '--inventory', threeHosts, '--remote-airlock', airlock, '--timeout', '90s']);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    const d = lab.docker(h1);
    const worker = (await d.services.list()).find((s) => s.Spec.Name === 'web_worker')!;
    await d.services.update(worker.ID, worker.Version.Index, { ...worker.Spec, Mode: { Replicated: { Replicas: 3 } } });
    const nodeId = (await d.system.info()).Swarm.NodeID;
    const running = async (service: string) => (await d.tasks.list({ filters: { service: [service], 'desired-state': ['running'] } })).filter((t) => t.Status.State === 'running');
    for (let i = 0; i < 120 && (await running('web_worker')).length < 3; i++) await new Promise((r) => setTimeout(r, 500));
    assert.ok((await running('web_worker')).some((t) => t.NodeID === nodeId), 'a worker task runs on h1');

    const r = await airlockIn(lab, 'h1', airlock, ['engine', 'install', bundle28, '--timeout', '60s', '--drain-timeout', '120s']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`draining node ${nodeId}\n`), 'drained, with capacity elsewhere');
    assert.match(r.stderr, /web_worker: 3\/3 elsewhere, 0 still here/, 'it waited until the task ran elsewhere');
    assert.equal((await d.system.version()).Version, version28);
    assert.equal((await d.nodes.inspect(nodeId)).Spec.Availability, 'active');
    const tasks = await running('web_worker');
    assert.equal(tasks.length, 3);
    assert.ok(tasks.every((t) => t.NodeID !== nodeId), 'the tasks stay where the drain put them');
  });

  test('cluster maintain --engine upgrades the other hosts one at a time, each drained by the jump box first, services at their counts after', async () => {
    const [h1, h2, h3] = lab.hosts as [BareLabHost, BareLabHost, BareLabHost];
    const d = lab.docker(h1);
    const state = join(base, 'jump-state');
    const r = await runCli(['cluster', 'maintain', '--inventory', threeHosts, '--hosts', 'h2,h3', '--engine', bundle28, '--remote-airlock', airlock, '--state', state, '--timeout', '120s', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ok: boolean; hosts: { host: string; outcome: string; steps: { step: string }[] }[] };
    assert.equal(out.ok, true);
    assert.deepEqual(out.hosts.map((h) => [h.host, h.outcome]), [['h2', 'done'], ['h3', 'done']]);
    assert.deepEqual(out.hosts[0]!.steps.map((s) => s.step), ['drain', 'run', 'ready', 'activate', 'settle']);
    for (const h of [h2, h3]) {
      assert.equal((await lab.docker(h).system.version()).Version, version28, `${h.name} runs the new engine`);
      const [change] = journalRows<{ kind: string; status: string; version: string }>(h, `SELECT kind, status, version FROM engine_changes ORDER BY id DESC LIMIT 1`);
      assert.deepEqual(change, { kind: 'upgrade', status: 'committed', version: version28 });
    }
    const nodes = await d.nodes.list();
    assert.ok(nodes.every((n) => n.Spec.Availability === 'active' && n.Status.State === 'ready'), JSON.stringify(nodes.map((n) => [n.Description?.Hostname, n.Spec.Availability, n.Status.State])));
    // Each drain is an operation of the jump box's journal, finished.
    const journal = Journal.open(state, { readonly: true });
    const ops = new Operations(journal).list().reverse().map((o) => ({ kind: o.kind, status: o.status }));
    journal.close();
    assert.deepEqual(ops, [
      { kind: 'drain', status: 'done' },
      { kind: 'activate', status: 'done' },
      { kind: 'drain', status: 'done' },
      { kind: 'activate', status: 'done' },
    ]);
    const running = (await d.tasks.list({ filters: { service: ['web_worker'], 'desired-state': ['running'] } })).filter((t) => t.Status.State === 'running');
    assert.equal(running.length, 3);
  });

  test("first boot: the agent installs the engine bundle from its inbox, then makes the swarm", async () => {
    const h4 = lab.host('h4');
    await hostConfig(h4, {
      stateDir: '/var/lib/airlock',
      trustDir: '/etc/airlock/trusted.d',
      inbox: { poll: '*/1 * * * * *', complete: { mode: 'stable', stableFor: '1s' } },
      retention: { schedule: null },
      drift: { schedule: null },
      swarm: { mode: 'init', advertiseAddr: h4.address },
    });
    await mkdir(join(h4.stateDir, 'inbox'), { recursive: true });
    await copyFile(bundle, join(h4.stateDir, 'inbox', 'engine.airlock'));
    const agent = new AgentProcess('/etc/airlock/agent.yaml', {}, h4.enter);
    try {
      await agent.waitFor(/msg="initialised a new swarm as its first manager"/, 120_000);
    } finally {
      assert.equal((await agent.stop()).code, 0, agent.log);
    }
    const d = lab.docker(h4);
    assert.equal((await d.system.version()).Version, version);
    assert.equal((await d.system.info()).Swarm.LocalNodeState, 'active');
    // In that order: the engine, then the swarm.
    const events = journalRows<{ kind: string; outcome: string }>(h4, `SELECT kind, outcome FROM events WHERE kind IN ('engine.install', 'swarm.init') ORDER BY id`);
    assert.deepEqual(events, [
      { kind: 'engine.install', outcome: 'ok' },
      { kind: 'swarm.init', outcome: 'ok' },
    ]);
  });
});
