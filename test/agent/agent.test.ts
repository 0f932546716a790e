/**
 * The agent as a real process against a real dockerd (a private single-node
 * swarm): inbox to quarantine or done, the maintenance window, kills in the
 * middle of an import and of a deploy, reload and stop.
 */
import assert from 'node:assert/strict';
import { copyFile, readdir, readFile, rename, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import YAML from 'yaml';
import { AgentProcess, writeAgentConfig } from '../helpers/agent.js';
import { assertRuns, buildRelease, deployments, startBench, type Bench } from '../helpers/apply.js';
import { readJournal } from '../helpers/journal-read.js';
import { runCli } from '../helpers/fixtures.js';

let bench: Bench;
before(async () => {
  bench = await startBench('airlock-agent-');
});
after(async () => {
  await bench?.close();
});

const envFor = () => ({ DOCKER_HOST: bench.daemon.dockerHost });

/** Drops a bundle into the inbox the way an upload ends: written aside, then renamed in. */
async function drop(bundle: string, inbox: string, name = 'release.airlock'): Promise<string> {
  const target = join(inbox, name);
  await copyFile(bundle, `${target}.tmp-upload`);
  await rename(`${target}.tmp-upload`, target);
  return target;
}

const queueRows = (state: string) => readJournal(state, (j) => j.queue().map(({ bundle_id, state, attempts, reason }) => ({ bundle_id, state, attempts, reason })));
const eventRows = (state: string, kind: string) => readJournal(state, (j) => j.events({ kind }).map(({ outcome, reason, message }) => ({ outcome, reason, message })));

test('a bundle dropped into the inbox is imported, deployed and moved to done/', async () => {
  const bundle = await buildRelease(bench, { version: '1.0.0', stack: 'agentok', repo: 'agentok' });
  const layout = await writeAgentConfig(join(bench.dir, 'a-ok'), bench.signer.trustDir);
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    await drop(bundle, layout.inbox);
    await agent.waitFor(/msg="stack deployed" .*stack=agentok/, 120_000);
    assert.deepEqual(await readdir(join(layout.inbox, 'done')), ['release.airlock']);
    assert.equal((await readdir(layout.inbox)).includes('release.airlock'), false);
    const [d] = deployments(layout.state);
    assert.equal(d?.status, 'committed');
    await assertRuns(bench.docker, layout.state, 'agentok', d!.id);
    assert.deepEqual(queueRows(layout.state).map((r) => r.state), ['applied']);
    // One logfmt line per event, no colour when not on a TTY: fit for journald.
    for (const line of agent.log.trim().split('\n')) assert.match(line, /^level=(debug|info|warn|error) msg=/);
    assert.doesNotMatch(agent.log, /\x1b\[/);
  } finally {
    const end = await agent.stop();
    assert.equal(end.code, 0, agent.log);
  }
  assert.match(agent.log, /msg="agent stopped"/);
});

test('a tampered bundle lands in quarantine/ with its reason, and nothing is applied', async () => {
  const bundle = await buildRelease(bench, { version: '1.0.0', stack: 'agentbad', repo: 'agentbad' });
  const bytes = await readFile(bundle);
  const at = Math.floor(bytes.length * 0.6);
  bytes.writeUInt8(bytes.readUInt8(at) ^ 0xff, at);
  const tampered = join(bench.dir, 'tampered.airlock');
  await writeFile(tampered, bytes);
  const layout = await writeAgentConfig(join(bench.dir, 'a-bad'), bench.signer.trustDir);
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    await drop(tampered, layout.inbox, 'evil.airlock');
    await agent.waitFor(/msg="bundle refused and quarantined"/, 60_000);
    assert.deepEqual((await readdir(join(layout.inbox, 'quarantine'))).sort(), ['evil.airlock', 'evil.airlock.reason']);
    const reason = YAML.parse(await readFile(join(layout.inbox, 'quarantine', 'evil.airlock.reason'), 'utf8')) as Record<string, unknown>;
    assert.equal(reason.file, 'evil.airlock');
    assert.ok(['integrity', 'unsafeEntry'].includes(String(reason.error)), JSON.stringify(reason));
    assert.ok(Number(reason.exit_code) >= 11 && Number(reason.exit_code) <= 12);
    assert.ok(typeof reason.message === 'string' && reason.message.length > 0);
    // Nothing stored, loaded or deployed; the refusal is in the journal.
    assert.deepEqual(deployments(layout.state), []);
    assert.equal(readJournal(layout.state, (j) => j.bundles().length), 0);
    assert.equal(eventRows(layout.state, 'bundle.import')[0]?.outcome, 'refused');
    assert.equal(eventRows(layout.state, 'inbox.quarantine').length, 1);
    assert.deepEqual(await bench.docker.services.list({ filters: { label: ['com.docker.stack.namespace=agentbad'] } }), []);
  } finally {
    await agent.stop();
  }
});

test('a bundle cut short is left in the inbox, and taken once the upload is complete', async () => {
  const bundle = await buildRelease(bench, { version: '1.0.0', stack: 'agentcut', repo: 'agentcut' });
  const layout = await writeAgentConfig(join(bench.dir, 'a-cut'), bench.signer.trustDir, { apply: { mode: 'import-only' } });
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    const target = join(layout.inbox, 'cut.airlock');
    await copyFile(bundle, target);
    await truncate(target, Math.floor((await stat(bundle)).size / 2));
    await agent.waitFor(/msg="bundle is incomplete; it is tried again once it changes"/, 60_000);
    // Unchanged, it is not tried again at every poll.
    const mark = agent.mark;
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(agent.lines(/bundle is incomplete/).length, 1, agent.log.split('\n').slice(mark).join('\n'));
    assert.equal((await readdir(layout.inbox)).includes('cut.airlock'), true);
    // The upload resumes and completes.
    await copyFile(bundle, target);
    await agent.waitFor(/msg="bundle imported"/, 60_000, mark);
    assert.deepEqual(await readdir(join(layout.inbox, 'done')), ['cut.airlock']);
    assert.deepEqual(deployments(layout.state), [], 'import-only never deploys');
  } finally {
    await agent.stop();
  }
});

/** A cron expression that fires once, `secondsAhead` from now (local time, as node-cron reads it). */
function cronAt(secondsAhead: number): { expr: string; at: Date } {
  const at = new Date(Math.ceil(Date.now() / 1000) * 1000 + secondsAhead * 1000);
  return { expr: `${at.getSeconds()} ${at.getMinutes()} ${at.getHours()} ${at.getDate()} ${at.getMonth() + 1} *`, at };
}

test('outside the maintenance window a bundle is imported at once and deployed only when the window opens', async () => {
  const bundle = await buildRelease(bench, { version: '1.0.0', stack: 'agentwin', repo: 'agentwin' });
  const window = cronAt(15);
  const layout = await writeAgentConfig(join(bench.dir, 'a-win'), bench.signer.trustDir, { apply: { window: { cron: window.expr, duration: '10m' } } });
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    await drop(bundle, layout.inbox);
    await agent.waitFor(/msg="bundle imported"/, 60_000);
    await agent.waitFor(/msg="bundles wait for the maintenance window"/, 10_000);
    assert.ok(Date.now() < window.at.getTime(), 'the import must finish before the window opens for this test to mean anything');
    // Imported and loaded, not deployed.
    assert.deepEqual(deployments(layout.state), []);
    assert.deepEqual(queueRows(layout.state).map((r) => r.state), ['waiting']);
    assert.ok((await bench.docker.images.find('agentwin/web:1.0.0')) !== undefined, 'images are loaded on arrival');
    const status = await runCli(['status', '--state', layout.state], envFor());
    assert.match(status.stdout, /agent: waiting for the maintenance window: demo 1\.0\.0/, status.stdout + status.stderr);
    await agent.waitFor(/msg="stack deployed" .*stack=agentwin/, 120_000);
    const started = readJournal(layout.state, (j) => j.deployments()[0]!.started_at);
    assert.ok(Date.parse(started) >= window.at.getTime(), `deployed at ${started}, before the window opened at ${window.at.toISOString()}`);
    assert.deepEqual(queueRows(layout.state).map((r) => r.state), ['applied']);
  } finally {
    await agent.stop();
  }
});

test('killed in the middle of an import, the restarted agent imports and deploys it once', async () => {
  const bundle = await buildRelease(bench, { version: '1.0.0', stack: 'agentkill', repo: 'agentkill' });
  const layout = await writeAgentConfig(join(bench.dir, 'a-kill'), bench.signer.trustDir);
  const first = new AgentProcess(layout.config, { ...envFor(), AIRLOCK_CRASH_AT: 'import-mid' });
  await first.waitFor(/msg="agent started"/);
  await drop(bundle, layout.inbox);
  const end = await first.exited;
  assert.equal(end.signal, 'SIGKILL', first.log);
  // The file is still in the inbox; nothing was committed.
  assert.equal((await readdir(layout.inbox)).includes('release.airlock'), true);
  assert.equal(readJournal(layout.state, (j) => j.bundles().length), 0);

  const second = new AgentProcess(layout.config, envFor());
  try {
    await second.waitFor(/msg="stack deployed" .*stack=agentkill/, 120_000);
    const ds = deployments(layout.state);
    assert.equal(ds.length, 1, JSON.stringify(ds));
    assert.equal(ds[0]!.status, 'committed');
    await assertRuns(bench.docker, layout.state, 'agentkill', ds[0]!.id);
    // The staging area of the killed import was cleaned up.
    const staging = join(layout.state, 'blobs', 'staging');
    assert.deepEqual(await readdir(staging).catch(() => []), []);
  } finally {
    await second.stop();
  }
});

test('killed right after the deploy committed, the restarted agent does not deploy it again', async () => {
  const bundle = await buildRelease(bench, { version: '1.0.0', stack: 'agentonce', repo: 'agentonce' });
  const layout = await writeAgentConfig(join(bench.dir, 'a-once'), bench.signer.trustDir);
  const first = new AgentProcess(layout.config, { ...envFor(), AIRLOCK_CRASH_AT: 'after-commit' });
  await first.waitFor(/msg="agent started"/);
  await drop(bundle, layout.inbox);
  assert.equal((await first.exited).signal, 'SIGKILL', first.log);
  assert.deepEqual(queueRows(layout.state).map((r) => r.state), ['waiting']);

  const second = new AgentProcess(layout.config, envFor());
  try {
    await second.waitFor(/msg="bundle was already deployed"/, 60_000);
    assert.deepEqual(await readdir(join(layout.inbox, 'done')), ['release.airlock']);
    const ds = deployments(layout.state);
    assert.equal(ds.length, 1, `deployed twice: ${JSON.stringify(ds)}`);
    assert.equal(ds[0]!.status, 'committed');
    assert.deepEqual(queueRows(layout.state).map((r) => r.state), ['applied']);
  } finally {
    await second.stop();
  }
});

test('SIGHUP reloads the config, a bad one is refused and the running one kept', async () => {
  const layout = await writeAgentConfig(join(bench.dir, 'a-hup'), bench.signer.trustDir, { logLevel: 'info' });
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    const good = await readFile(layout.config, 'utf8');
    await writeFile(layout.config, `${good}\nbogus: 1\n`);
    agent.child.kill('SIGHUP');
    const refused = await agent.waitFor(/msg="config reload failed; keeping the running config"/);
    assert.match(refused, /bogus: unknown key/);
    await writeFile(layout.config, good.replace('mode: on-arrival', 'mode: import-only'));
    agent.child.kill('SIGHUP');
    await agent.waitFor(/msg="config reloaded"/);
    // Still alive and polling after both.
    const mark = agent.mark;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(agent.child.exitCode, null, agent.log.split('\n').slice(mark).join('\n'));
  } finally {
    const end = await agent.stop();
    assert.equal(end.code, 0);
  }
});

test('a bad config stops the agent at start with exit 3 naming the key', async () => {
  const layout = await writeAgentConfig(join(bench.dir, 'a-badconf'), bench.signer.trustDir, { apply: { window: { cron: '0 2 * * *', duration: 'two hours' } } });
  const agent = new AgentProcess(layout.config, envFor());
  const end = await agent.exited;
  assert.equal(end.code, 3);
  assert.match(agent.log, /agent\.yaml:\d+: apply\.window\.duration: "two hours" is not a duration/);
});

test('the drift check records a service changed by hand, and restores it when told to re-apply', async () => {
  const bundle = await buildRelease(bench, { version: '1.0.0', stack: 'agentdrift', repo: 'agentdrift' });
  const layout = await writeAgentConfig(join(bench.dir, 'a-drift'), bench.signer.trustDir, { drift: { schedule: '*/2 * * * * *', reapply: false } });
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    await drop(bundle, layout.inbox);
    await agent.waitFor(/msg="stack deployed" .*stack=agentdrift/, 120_000);
    const mark = agent.mark;
    await new Promise((r) => setTimeout(r, 4500));
    assert.deepEqual(agent.lines(/msg=drift /), [], 'no drift right after a deploy');
    // Scale a service by hand, as an operator would with docker service scale.
    const [svc] = await bench.docker.services.list({ filters: { name: ['agentdrift_web'] } });
    const spec = structuredClone(svc!.Spec);
    spec.Mode = { Replicated: { Replicas: 3 } };
    await bench.docker.services.update(svc!.ID, svc!.Version.Index, spec);
    const line = await agent.waitFor(/msg=drift /, 30_000, mark);
    assert.match(line, /stack=agentdrift/);
    assert.match(line, /agentdrift_web changed \(Mode\.Replicated\.Replicas\)/);
    assert.equal(eventRows(layout.state, 'drift')[0]?.reason, 'drift');
    assert.equal(deployments(layout.state).length, 1, 'records only: nothing re-applied');

    await writeFile(layout.config, (await readFile(layout.config, 'utf8')).replace('reapply: false', 'reapply: true'));
    agent.child.kill('SIGHUP');
    await agent.waitFor(/msg="drift repaired" .*stack=agentdrift/, 120_000);
    const ds = deployments(layout.state);
    assert.equal(ds.at(-1)!.status, 'committed');
    await assertRuns(bench.docker, layout.state, 'agentdrift', ds.at(-1)!.id);
  } finally {
    await agent.stop();
  }
});

test('retention runs on its schedule and keeps done/ to keepDone files', async () => {
  const layout = await writeAgentConfig(join(bench.dir, 'a-prune'), bench.signer.trustDir, {
    inbox: { keepDone: 1 },
    apply: { mode: 'import-only' },
    retention: { schedule: '*/2 * * * * *', keep: 3 },
  });
  const first = await buildRelease(bench, { version: '1.0.0', stack: 'agentprune', repo: 'agentprune' });
  const second = await buildRelease(bench, { version: '1.1.0', stack: 'agentprune', repo: 'agentprune' });
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    await drop(first, layout.inbox, 'one.airlock');
    await agent.waitFor(/msg="bundle imported" .*version=1\.0\.0/, 60_000);
    await drop(second, layout.inbox, 'two.airlock');
    await agent.waitFor(/msg="bundle imported" .*version=1\.1\.0/, 60_000);
    await agent.waitFor(/msg="removed old bundle files from done\/" files=1 kept=1/, 30_000);
    assert.deepEqual(await readdir(join(layout.inbox, 'done')), ['two.airlock']);
    assert.ok(agent.lines(/msg=pruned /).length > 0);
    // The content store still holds both: nothing deployed, so both bundles are pending, and kept.
    assert.equal(readJournal(layout.state, (j) => j.bundles().length), 2);
  } finally {
    await agent.stop();
  }
});
