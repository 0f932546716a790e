/**
 * The agent under load and faults (issue 17), as a real process against a
 * real dockerd (a private single-node swarm): an engine that says "swarm
 * inactive" for a while (a proxy on its socket), a batch of versions
 * dropped together, retention after many versions, kills during deploys,
 * and what start-up recovery says.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AgentProcess, writeAgentConfig } from '../helpers/agent.js';
import { buildRelease, deployments, readJournalDb, startBench, type Bench } from '../helpers/apply.js';
import { EngineProxy } from '../helpers/engine-proxy.js';

let bench: Bench;
before(async () => {
  bench = await startBench('airlock-agent-faults-');
});
after(async () => {
  await bench?.close();
});

const envFor = (host = bench.daemon.dockerHost) => ({ DOCKER_HOST: host });

/** Drops a bundle into the inbox the way an upload ends: written aside, then renamed in. */
async function drop(bundle: string, inbox: string, name: string): Promise<void> {
  const target = join(inbox, name);
  await copyFile(bundle, `${target}.tmp-upload`);
  await rename(`${target}.tmp-upload`, target);
}

type QueueRow = { version: string; state: string; attempts: number; reason: string | null };
const queueRows = (state: string) =>
  readJournalDb(state, (db) => db.prepare('SELECT b.version, q.state, q.attempts, q.reason FROM agent_queue q JOIN bundles b ON b.id = q.bundle_id ORDER BY q.bundle_id').all()) as QueueRow[];
const deployedVersions = (state: string) =>
  readJournalDb(state, (db) => db.prepare(`SELECT b.version, d.status FROM deployments d JOIN bundles b ON b.id = d.bundle_id ORDER BY d.id`).all()) as { version: string; status: string }[];

test('a bundle imported while the engine says "swarm inactive" is deployed once the engine is a manager again', async () => {
  const bundle = await buildRelease(bench, { version: '1.0.0', stack: 'agentproxy', repo: 'agentproxy' });
  const proxy = new EngineProxy(join(bench.dir, 'proxy.sock'), bench.daemon.socket);
  await proxy.start();
  const layout = await writeAgentConfig(join(bench.dir, 'a-proxy'), bench.signer.trustDir);
  const agent = new AgentProcess(layout.config, envFor(proxy.dockerHost));
  try {
    await agent.waitFor(/msg="agent started"/);
    proxy.sayInactiveFor(10_000);
    await drop(bundle, layout.inbox, 'release.airlock');
    const imported = await agent.waitFor(/msg="bundle imported"/, 60_000);
    assert.ok(proxy.sayingInactive, 'the import must end while the engine says inactive for this test to mean anything');
    assert.match(imported, /queued=true/);
    await agent.waitFor(/msg="this node is not a swarm manager now/, 10_000);
    assert.deepEqual(deployments(layout.state), [], 'nothing is deployed while the node says it is not a manager');
    assert.deepEqual(queueRows(layout.state).map((r) => r.state), ['waiting']);
    await agent.waitFor(/msg="stack deployed" .*stack=agentproxy/, 120_000);
    assert.equal(proxy.sayingInactive, false);
    assert.ok(proxy.faked >= 2, `the proxy changed ${proxy.faked} answers`);
    assert.match(agent.log, /msg="this node is a swarm manager again: deploying what waits"/);
    assert.deepEqual(deployedVersions(layout.state), [{ version: '1.0.0', status: 'committed' }]);
    assert.deepEqual(queueRows(layout.state).map((r) => r.state), ['applied']);
  } finally {
    const end = await agent.stop();
    await proxy.close();
    assert.equal(end.code, 0, agent.log);
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
