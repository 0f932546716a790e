/**
 * The agent under load and faults (issue 17), as a real process against a
 * real dockerd (a private single-node swarm): an engine that says "swarm
 * inactive" for a while (a proxy on its socket), a batch of versions
 * dropped together, retention after many versions, kills during deploys,
 * and what start-up recovery says.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AgentProcess, dropBundle as drop, dropTogether, writeAgentConfig } from '../helpers/agent.js';
import { buildRelease, deployments, startBench, type Bench } from '../helpers/apply.js';
import { readJournal } from '../helpers/journal-read.js';
import { runCli } from '../helpers/fixtures.js';
import { EngineProxy } from '../helpers/engine-proxy.js';

let bench: Bench;
before(async () => {
  bench = await startBench('airlock-agent-faults-');
});
after(async () => {
  await bench?.close();
});

const envFor = (host = bench.daemon.dockerHost) => ({ DOCKER_HOST: host });

type QueueRow = { version: string; state: string; attempts: number; reason: string | null };
const queueRows = (state: string) =>
  readJournal(state, (j) => j.queue().map(({ version, state, attempts, reason }): QueueRow => ({ version, state, attempts, reason })));
const deployedVersions = (state: string) =>
  readJournal(state, (j) => j.deployments().flatMap((d) => (d.bundle_id === null ? [] : [{ version: d.bundle_version, status: d.status }])));

/** An agent on the bench's engine through a proxy that plays the engine's faults, started; `stop` ends both and wants a clean exit. */
async function agentBehindProxy(name: string) {
  const proxy = new EngineProxy(join(bench.dir, `proxy-${name}.sock`), bench.daemon.socket);
  await proxy.start();
  const layout = await writeAgentConfig(join(bench.dir, `a-${name}`), bench.signer.trustDir);
  const agent = new AgentProcess(layout.config, envFor(proxy.dockerHost));
  const stop = async () => {
    const end = await agent.stop();
    await proxy.close();
    assert.equal(end.code, 0, agent.log);
  };
  await agent.waitFor(/msg="agent started"/).catch(async (e: unknown) => {
    await agent.stop().catch(() => undefined);
    await proxy.close();
    throw e;
  });
  return { proxy, layout, agent, stop };
}

test('a bundle imported while the engine says "swarm inactive" is deployed once the engine is a manager again', async () => {
  const bundle = await buildRelease(bench, { version: '1.0.0', stack: 'agentproxy', repo: 'agentproxy' });
  const { proxy, layout, agent, stop } = await agentBehindProxy('proxy');
  try {
    proxy.sayInactiveFor(15_000);
    await drop(bundle, layout.inbox, 'release.airlock');
    const imported = await agent.waitFor(/msg="bundle imported"/, 60_000);
    assert.ok(proxy.sayingInactive, 'the import must end while the engine says inactive for this test to mean anything');
    assert.match(imported, /queued=true/);
    await agent.waitFor(/msg="this node is not a swarm manager now/, 10_000);
    assert.deepEqual(deployments(layout.state), [], 'nothing is deployed while the node says it is not a manager');
    assert.deepEqual(queueRows(layout.state).map((r) => r.state), ['waiting']);
    const status = await runCli(['status', '--state', layout.state], envFor(proxy.dockerHost));
    assert.ok(proxy.sayingInactive, 'status must run while the engine says inactive for this check to mean anything');
    assert.match(status.stdout, /^agent: waiting for this node to be a swarm manager: demo 1\.0\.0$/m, status.stdout + status.stderr);
    await agent.waitFor(/msg="stack deployed" .*stack=agentproxy/, 120_000);
    assert.equal(proxy.sayingInactive, false);
    assert.ok(proxy.faked >= 2, `the proxy changed ${proxy.faked} answers`);
    assert.match(agent.log, /msg="this node is a swarm manager again: deploying what waits"/);
    assert.deepEqual(deployedVersions(layout.state), [{ version: '1.0.0', status: 'committed' }]);
    assert.deepEqual(queueRows(layout.state).map((r) => r.state), ['applied']);
  } finally {
    await stop();
  }
});

test('30 versions dropped together are imported in version order: none is refused as a downgrade, the newest is deployed', async () => {
  const versions = Array.from({ length: 30 }, (_, i) => `1.0.${91 + i}`);
  const bundles = new Map<string, string>();
  for (const v of versions) bundles.set(v, await buildRelease(bench, { version: v, stack: 'agentbatch', repo: 'agentbatch' }));
  const layout = await writeAgentConfig(join(bench.dir, 'a-batch'), bench.signer.trustDir);
  // Dropped before the agent starts: its first scan sees all 30 at once, in name order 1.0.100 … 1.0.120, 1.0.91 … 1.0.99.
  await mkdir(layout.inbox, { recursive: true });
  for (const [v, path] of bundles) await drop(path, layout.inbox, `demo-${v}.airlock`);
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="stack deployed" .*stack=agentbatch/, 300_000);
    const imported = agent.lines(/msg="bundle imported"/).map((l) => /version=(\S+)/.exec(l)![1]);
    assert.deepEqual(imported, versions, 'imported oldest first');
    assert.deepEqual(await readdir(join(layout.inbox, 'quarantine')).catch(() => []), [], 'nothing quarantined');
    assert.doesNotMatch(agent.log, /downgrade/);
    assert.deepEqual(deployedVersions(layout.state), [{ version: '1.0.120', status: 'committed' }]);
    const rows = queueRows(layout.state);
    assert.deepEqual(rows.filter((r) => r.state !== 'superseded').map((r) => [r.version, r.state]), [['1.0.120', 'applied']]);
    const superseded = rows.filter((r) => r.state === 'superseded');
    assert.equal(superseded.length, 29);
    for (const r of superseded) {
      // No maintenance window is set: the reason must not speak of one.
      assert.doesNotMatch(r.reason ?? '', /window/, r.reason ?? '');
      assert.match(r.reason ?? '', /demo 1\.0\.120/);
    }
  } finally {
    const end = await agent.stop();
    assert.equal(end.code, 0, agent.log);
  }
});

test('an import the host cannot do now holds back the newer versions behind it: none goes in first and makes it a downgrade', async () => {
  const [older, newer] = [await buildRelease(bench, { version: '5.0.1', stack: 'agentblock', repo: 'agentblock' }), await buildRelease(bench, { version: '5.0.2', stack: 'agentblock', repo: 'agentblock' })];
  const { proxy, layout, agent, stop } = await agentBehindProxy('block');
  try {
    // The first import's question to the engine fails, once: the host, not the bundle (as while dockerd restarts).
    proxy.failNext(1, /^(\/v[\d.]+)?\/(version|info)$/, 'injected: the engine is not there for a moment');
    // Both land at once, so that one pass of the inbox takes both.
    await dropTogether([[older, 'demo-5.0.1.airlock'], [newer, 'demo-5.0.2.airlock']], layout.inbox);
    await agent.waitFor(/msg="bundle could not be imported now; it stays in the inbox" .*file=demo-5\.0\.1\.airlock/, 60_000);
    await agent.waitFor(/msg="stack deployed" .*stack=agentblock/, 120_000);
    const imported = agent.lines(/msg="bundle imported"/).map((l) => /version=(\S+)/.exec(l)![1]);
    assert.deepEqual(imported, ['5.0.1', '5.0.2'], 'imported oldest first, the older one at the next pass');
    assert.deepEqual(await readdir(join(layout.inbox, 'quarantine')).catch(() => []), [], 'nothing quarantined');
    assert.doesNotMatch(agent.log, /downgrade/);
    assert.deepEqual(deployedVersions(layout.state).at(-1), { version: '5.0.2', status: 'committed' });
  } finally {
    await stop();
  }
});

test('superseded bundles are pruned on schedule; status lists only a bundle that may really be applied next', async () => {
  // Versions no other test here builds: the same version makes the same image id, which prune leaves while another state dir's tag names it.
  const versions = ['4.0.0', '4.0.1', '4.0.2', '4.0.3'];
  const bundles = new Map<string, string>();
  for (const v of [...versions, '4.0.4']) bundles.set(v, await buildRelease(bench, { version: v, stack: 'agentkeep', repo: 'agentkeep' }));
  const layout = await writeAgentConfig(join(bench.dir, 'a-keep'), bench.signer.trustDir, { retention: { schedule: '*/2 * * * * *', keep: 1 } });
  await mkdir(layout.inbox, { recursive: true });
  for (const v of versions) await drop(bundles.get(v)!, layout.inbox, `demo-${v}.airlock`);
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="stack deployed" .*stack=agentkeep/, 120_000);
    // 4.0.0 to 4.0.2 were never attempted, and are older than what runs: superseded, and pruned.
    const pruned = await agent.waitFor(/msg=pruned bundles=[1-9]/, 30_000);
    assert.match(pruned, /bundles=3 /);
  } finally {
    const end = await agent.stop();
    assert.equal(end.code, 0, agent.log);
  }
  const linked = () =>
    readJournal(layout.state, (j) => {
      const linked = new Set(j.bundleBlobs().map((l) => l.bundle_id));
      return j.bundles().filter((b) => linked.has(b.id)).map((b) => ({ version: b.version }));
    });
  assert.deepEqual(linked().map((r) => r.version), ['4.0.3'], 'only the running release keeps its blobs');
  const prunes = readJournal(layout.state, (j) => j.events({ kind: 'prune' }));
  const why = `deployed: ${JSON.stringify(deployedVersions(layout.state))}; prunes: ${prunes.map((p) => p.details ?? '').filter((d) => !d.includes('"bundles":[]')).join('\n')}`;
  for (const v of ['4.0.0', '4.0.1', '4.0.2']) assert.equal(await bench.docker.images.find(`agentkeep/web:${v}`), undefined, `image of ${v} removed; ${why}`);
  assert.ok((await bench.docker.images.find('agentkeep/web:4.0.3')) !== undefined);

  // A newer bundle imported by hand is what is really pending; the superseded ones are not.
  const imported = await runCli(['bundle', 'import', bundles.get('4.0.4')!, '--state', layout.state, '--trust', bench.signer.trustDir], envFor());
  assert.equal(imported.code, 0, imported.stderr);
  const status = await runCli(['status', '--state', layout.state, '--json'], envFor());
  assert.equal(status.code, 0, status.stderr);
  assert.deepEqual((JSON.parse(status.stdout) as { pendingBundles: string[] }).pendingBundles, ['demo 4.0.4']);
  const text = await runCli(['status', '--state', layout.state], envFor());
  assert.match(text.stdout, /^pending bundles \(imported, not applied\): demo 4\.0\.4$/m);
  const prune = await runCli(['prune', '--state', layout.state, '--keep', '1'], envFor());
  assert.equal(prune.code, 0, prune.stderr);
  assert.match(prune.stdout, /pending bundles: demo 4\.0\.4/);
  assert.deepEqual(linked().map((r) => r.version), ['4.0.3', '4.0.4']);
});

const agentGone = (state: string) =>
  readJournal(state, (j) => j.events({ kind: 'agent.deploy', reason: 'agent-gone' })).map((r) => (JSON.parse(r.details ?? '') as { step: string }).step);
const crashLoops = (state: string) =>
  readJournal(state, (j) => j.events({ kind: 'agent.deploy', reason: 'crash-loop' }).map(({ subject, message }) => ({ subject, message })));

test('a deploy that kills the agent at the same step three times is given up; a newer version is deployed all the same', async () => {
  const first = await buildRelease(bench, { version: '1.0.0', stack: 'agentloop', repo: 'agentloop' });
  const second = await buildRelease(bench, { version: '1.0.1', stack: 'agentloop', repo: 'agentloop' });
  const layout = await writeAgentConfig(join(bench.dir, 'a-loop'), bench.signer.trustDir);
  await mkdir(layout.inbox, { recursive: true });
  await drop(first, layout.inbox, 'demo-1.0.0.airlock');
  // The deploy kills the agent's own process as it begins updating services, every time.
  for (let i = 0; i < 3; i++) {
    const dying = new AgentProcess(layout.config, { ...envFor(), AIRLOCK_CRASH_AT: 'services' });
    const end = await dying.exited;
    assert.equal(end.signal, 'SIGKILL', dying.log);
    assert.match(dying.log, /msg="apply step" .*step=services/);
  }
  assert.deepEqual(agentGone(layout.state), ['services', 'services'], 'each try journals how the one before it ended');
  const agent = new AgentProcess(layout.config, envFor());
  try {
    const gaveUp = await agent.waitFor(/msg="giving up on the bundle/, 60_000);
    assert.match(gaveUp, /step=services/);
    assert.deepEqual(agentGone(layout.state), ['services', 'services', 'services']);
    assert.deepEqual(crashLoops(layout.state), [{ subject: 'demo 1.0.0', message: 'gave up after 3 tries that each ended with the agent gone at step services' }]);
    assert.deepEqual(queueRows(layout.state).map((r) => [r.version, r.state, r.reason]), [['1.0.0', 'failed', 'gave up: 3 tries in a row ended with the agent gone at step services']]);
    // The older version given up blocks nothing.
    await drop(second, layout.inbox, 'demo-1.0.1.airlock');
    await agent.waitFor(/msg="stack deployed" .*stack=agentloop/, 120_000);
    assert.deepEqual(queueRows(layout.state).map((r) => [r.version, r.state]), [['1.0.0', 'failed'], ['1.0.1', 'applied']]);
    assert.deepEqual(deployedVersions(layout.state).filter((d) => d.status === 'committed'), [{ version: '1.0.1', status: 'committed' }]);
  } finally {
    const end = await agent.stop();
    assert.equal(end.code, 0, agent.log);
  }
});

test('three kills from outside at different steps do not give a good version up', async () => {
  const bundle = await buildRelease(bench, { version: '1.0.0', stack: 'agentkilled', repo: 'agentkilled' });
  const layout = await writeAgentConfig(join(bench.dir, 'a-killed'), bench.signer.trustDir);
  await mkdir(layout.inbox, { recursive: true });
  await drop(bundle, layout.inbox, 'demo-1.0.0.airlock');
  // SIGKILL from outside at three different steps (a kill at converge is finished forward by the
  // next start's recovery, so it can come only once).
  for (const step of ['verify', 'services', 'converge']) {
    const agent = new AgentProcess(layout.config, envFor());
    // Killed whatever happens: a wait that fails must not leave an agent behind the test.
    await agent.waitFor(new RegExp(`msg="apply step" .*step=${step}`), 120_000).finally(() => agent.child.kill('SIGKILL'));
    assert.equal((await agent.exited).signal, 'SIGKILL');
  }
  const agent = new AgentProcess(layout.config, envFor());
  try {
    // The kill at converge came after every service was sent: start-up recovery finishes that
    // deployment forward, and the agent finds its bundle deployed.
    await agent.waitFor(/msg="bundle was already deployed"/, 120_000);
    const steps = agentGone(layout.state);
    assert.equal(steps.length, 2, steps.join(','));
    assert.notEqual(steps[0], 'services', 'the first kill came before the services were touched');
    assert.deepEqual(steps.slice(1), ['services']);
    assert.deepEqual(crashLoops(layout.state), []);
    assert.deepEqual(queueRows(layout.state).map((r) => [r.state, r.attempts]), [['applied', 3]]);
    assert.equal(deployedVersions(layout.state).at(-1)?.status, 'committed');
    const recovered = readJournal(layout.state, (j) => j.events({ kind: 'deployment.recover' }).map(({ outcome, reason }) => ({ outcome, reason })));
    assert.deepEqual(recovered.at(-1), { outcome: 'ok', reason: 'committed' });
  } finally {
    const end = await agent.stop();
    assert.equal(end.code, 0, agent.log);
  }
});

test('start-up recovery whose wait fails says so (not "ok"), and the agent logs when recovery starts and ends', async () => {
  const first = await buildRelease(bench, { version: '1.0.0', stack: 'agentrecover', repo: 'agentrecover' });
  const second = await buildRelease(bench, { version: '1.0.1', stack: 'agentrecover', repo: 'agentrecover' });
  const proxy = new EngineProxy(join(bench.dir, 'proxy-recover.sock'), bench.daemon.socket);
  await proxy.start();
  const layout = await writeAgentConfig(join(bench.dir, 'a-recover'), bench.signer.trustDir, { apply: { timeout: '20s' } });
  const env = envFor(proxy.dockerHost);
  try {
    const a = new AgentProcess(layout.config, env);
    await a.waitFor(/msg="agent started"/);
    await drop(first, layout.inbox, 'demo-1.0.0.airlock');
    await a.waitFor(/msg="stack deployed" .*stack=agentrecover/, 120_000);
    const mark = a.mark;
    await drop(second, layout.inbox, 'demo-1.0.1.airlock');
    // Killed while 1.0.1 waits for its services: recovery must restore 1.0.0's specs and wait for them.
    await a.waitFor(/msg="apply step" .*step=converge/, 120_000, mark);
    a.child.kill('SIGKILL');
    await a.exited;
    const interrupted = deployments(layout.state).at(-1)!;
    assert.equal(interrupted.status, 'running');

    // The engine answers every task list 503, as a manager that is stopping does: the wait for the restored specs fails.
    proxy.failFor(120_000, /^(\/v[\d.]+)?\/tasks/, 'This node is not a swarm manager. Manager is being prepared or has trouble connecting to the cluster.');
    // Import-only: this agent only recovers, so nothing else waits on the failing engine.
    await writeAgentConfig(layout.dir, bench.signer.trustDir, { apply: { timeout: '20s', mode: 'import-only' } });
    const b = new AgentProcess(layout.config, env);
    let done: string;
    try {
      await b.waitFor(/msg="start-up recovery: closing what an interrupted deployment left behind"/, 30_000);
      done = await b.waitFor(/msg="start-up recovery done"/, 120_000);
    } finally {
      await b.stop();
    }
    assert.ok(proxy.failed > 0, 'the proxy answered 503');
    assert.match(done, /recovered=1 /);
    assert.match(b.log, /msg="recovered an interrupted deployment" .*status=rolled-back .*did not converge/);
    const recover = readJournal(layout.state, (j) => j.events({ kind: 'deployment.recover' }).map(({ outcome, reason, message }) => ({ outcome, reason, message })));
    assert.deepEqual(recover.map((r) => [r.outcome, r.reason]), [['failed', 'not-converged']], 'no "ok" after the wait failed');
    assert.match(recover[0]!.message ?? '', /not a swarm manager|503/);
    const row = readJournal(layout.state, (j) => j.deployment(interrupted.id));
    assert.equal(row.status, 'rolled-back');
    assert.match(row.reason ?? '', /restored the previous specs, but they did not converge/);

    // The engine is back: the agent deploys 1.0.1 after all.
    proxy.failFor(0, /./, '');
    await writeAgentConfig(layout.dir, bench.signer.trustDir, { apply: { timeout: '60s' } });
    const c = new AgentProcess(layout.config, env);
    try {
      await c.waitFor(/msg="start-up recovery done" recovered=0 /, 30_000);
      await c.waitFor(/msg="stack deployed" .*stack=agentrecover/, 120_000);
      assert.deepEqual(deployedVersions(layout.state).at(-1), { version: '1.0.1', status: 'committed' });
    } finally {
      const end = await c.stop();
      assert.equal(end.code, 0, c.log);
    }
  } finally {
    await proxy.close();
  }
});
