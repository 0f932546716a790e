/**
 * Hostile input on the paths that deploy, against a private single-node
 * swarm (issue 16 items 4, 5, 6): a key revoked while its release is on
 * record, then `rollback --to` that release and the agent's drift re-apply;
 * a trust dir others can write, against `bundle plan`, `bundle apply` and
 * the agent; a compose file whose keys carry escape sequences. Each asserts
 * the specific message and exit code, and that the engine and the journal
 * were left as they were.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, chmod, chown, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AgentProcess, writeAgentConfig, type AgentLayout } from '../helpers/agent.js';
import { assertRuns, buildRelease, deployments, runAirlock, startBench, type Bench } from '../helpers/apply.js';
import { readJournal } from '../helpers/journal-read.js';
import { makeSigner, type Signer } from '../helpers/fixtures.js';

/** Any control character a terminal acts on (C0 but line feed, DEL, C1). */
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

let bench: Bench;
/** Signs the 1.0.0 release; revoked later. */
let old: Signer;
/** Signs the 2.0.0 release; stays trusted. */
let current: Signer;
/** Trusts both keys; `revoked` is written by the tests. */
let trust: string;
/** The agent's layout; its state is the one the rollback tests use, so the agent sees their record. */
let layout: AgentLayout;

before(async () => {
  bench = await startBench('airlock-hostile-revoked-');
  // Other users (setpriv below) must reach the trust dirs: the work dir is 0755, like /etc.
  await chmod(bench.dir, 0o755);
  old = bench.signer;
  current = await makeSigner(bench.dir, 'current');
  trust = join(bench.dir, 'trusted.d');
  await mkdir(trust);
  await copyFile(old.pubPath, join(trust, 'old.pub'));
  await copyFile(current.pubPath, join(trust, 'current.pub'));
  layout = await writeAgentConfig(join(bench.dir, 'agent'), trust, { drift: { schedule: '*/2 * * * * *', reapply: true } });
});
after(async () => {
  await bench?.close();
});

const env = () => ({ DOCKER_HOST: bench.daemon.dockerHost });
const cli = (args: string[]) => runAirlock([...args, '--state', layout.state, '--trust', trust], env());
const events = (kind: string) => readJournal(layout.state, (j) => j.events({ kind }).map(({ outcome, reason, message }) => ({ outcome, reason, message })));
const image = async (service: string) => (await bench.docker.services.inspect(service)).Spec.TaskTemplate?.ContainerSpec?.Image;

test('rollback --to a release whose key was revoked since is refused (exit 10), naming key and list; --allow-revoked deploys it, journaled', async () => {
  const v1 = await buildRelease(bench, { version: '1.0.0', stack: 'rev', repo: 'revtest' });
  const v2 = await buildRelease({ ...bench, signer: current }, { version: '2.0.0', stack: 'rev', repo: 'revtest' });
  for (const file of [v1, v2]) {
    const r = await cli(['bundle', 'apply', file, '--timeout', '60s', '--json']);
    assert.equal(r.code, 0, r.stderr);
  }
  await writeFile(join(trust, 'revoked'), `${old.keyId}  # leaked 2026-12\n`);

  const refused = await cli(['rollback', 'rev', '--to', '1.0.0', '--timeout', '60s']);
  assert.equal(refused.code, 10, refused.stderr);
  assert.ok(
    refused.stderr.includes(`error: rollback of stack rev to deployment #1 would deploy bundle demo 1.0.0, signed by key ${old.keyId}, which is revoked in ${trust}/revoked, line 1; refused\n`),
    refused.stderr,
  );
  assert.ok(refused.stderr.includes(`run 'airlock rollback rev --to 1 --allow-revoked' (recorded in the journal)`), refused.stderr);
  // The host as it was: no deployment started, the engine runs 2.0.0, the refusal is on record.
  assert.deepEqual(deployments(layout.state).map((d) => [d.id, d.kind, d.status]), [[1, 'apply', 'committed'], [2, 'apply', 'committed']]);
  await assertRuns(bench.docker, layout.state, 'rev', 2);
  assert.equal(await image('rev_web'), 'revtest/web:2.0.0');
  assert.deepEqual(events('revocation').map((e) => [e.outcome, e.reason]), [['refused', 'revoked-key']]);

  const forced = await cli(['rollback', 'rev', '--to', '1.0.0', '--allow-revoked', '--timeout', '60s', '--json']);
  assert.equal(forced.code, 0, forced.stderr);
  await assertRuns(bench.docker, layout.state, 'rev', 3);
  assert.equal(await image('rev_web'), 'revtest/web:1.0.0');
  const allowed = events('revocation').at(-1)!;
  assert.equal(allowed.reason, 'revoked-allowed');
  assert.match(allowed.message ?? '', new RegExp(`; deployed anyway with --allow-revoked by root@`));
  const source = readJournal(layout.state, (j) => j.deployment(3).source);
  assert.equal(source, 'rollback to #1 (key revoked; --allow-revoked)');
});

test("the agent's drift re-apply does not put back a release whose key is revoked: it logs why, and leaves the engine as it found it", async () => {
  // The record now ends with the forced rollback to 1.0.0 (a revoked key). Scale a service by hand.
  const [svc] = await bench.docker.services.list({ filters: { name: ['rev_web'] } });
  const spec = structuredClone(svc!.Spec);
  spec.Mode = { Replicated: { Replicas: 2 } };
  await bench.docker.services.update(svc!.ID, svc!.Version.Index, spec);
  const before = (await bench.docker.services.inspect('rev_web')).Version.Index;
  const refusedBefore = events('revocation').filter((e) => e.outcome === 'refused').length;

  const agent = new AgentProcess(layout.config, env());
  try {
    const line = await agent.waitFor(/msg="drift not repaired" .*stack=rev/, 60_000);
    assert.match(line, /reason=revoked-key/);
    assert.ok(line.includes(`signed by key ${old.keyId}, which is revoked in ${trust}/revoked, line 1; refused`), line);
    // One more check, so a later cycle is seen to refuse too.
    await agent.waitFor(/msg="drift not repaired" .*stack=rev/, 30_000, agent.mark);
  } finally {
    const end = await agent.stop();
    assert.equal(end.code, 0, agent.log);
  }
  assert.doesNotMatch(agent.log, /msg="drift repaired"/);
  assert.equal((await bench.docker.services.inspect('rev_web')).Version.Index, before, 'the engine was not touched');
  assert.equal(deployments(layout.state).length, 3, 'no deployment started');
  assert.ok(events('revocation').filter((e) => e.outcome === 'refused').length >= refusedBefore + 2);
});

test('recover after a crash will not restore specs of a release whose key was revoked since (exit 10); --allow-revoked restores them, journaled', async () => {
  const own = join(bench.dir, 'trusted-recover.d');
  await mkdir(own);
  await copyFile(old.pubPath, join(own, 'old.pub'));
  await copyFile(current.pubPath, join(own, 'current.pub'));
  const state = join(bench.dir, 'state-recover');
  const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => runAirlock([...args, '--state', state, '--trust', own], { ...env(), ...extra });
  const v1 = await buildRelease(bench, { version: '1.0.0', stack: 'rrc', repo: 'rrctest' });
  const v2 = await buildRelease({ ...bench, signer: current }, { version: '2.0.0', stack: 'rrc', repo: 'rrctest' });
  assert.equal((await run(['bundle', 'apply', v1, '--timeout', '60s'])).code, 0);
  // 2.0.0 (a current key) killed half way through its services: recovery would put 1.0.0's specs back.
  const killed = await run(['bundle', 'apply', v2, '--timeout', '60s'], { AIRLOCK_CRASH_AT: 'services-mid' });
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  await writeFile(join(own, 'revoked'), `${old.keyId}\n`);
  const engineBefore = (await bench.docker.services.list({ filters: { label: ['com.docker.stack.namespace=rrc'] } })).map((s) => [s.Spec.Name, s.Version.Index]).sort();

  const refused = await run(['recover', '--timeout', '60s']);
  assert.equal(refused.code, 10, refused.stderr);
  assert.ok(
    refused.stderr.includes(`error: recovering deployment #2 of stack rrc would restore the specs of deployment #1: bundle demo 1.0.0, signed by key ${old.keyId}, which is revoked in ${own}/revoked, line 1; refused\n`),
    refused.stderr,
  );
  assert.match(refused.stderr, /hint: nothing was changed: deployment #2 stays interrupted\. To restore those specs anyway, run 'airlock recover --allow-revoked'/);
  const stateOf = (id: number) => deployments(state).find((d) => d.id === id)!.status;
  assert.equal(stateOf(2), 'running');
  const engineAfter = (await bench.docker.services.list({ filters: { label: ['com.docker.stack.namespace=rrc'] } })).map((s) => [s.Spec.Name, s.Version.Index]).sort();
  assert.deepEqual(engineAfter, engineBefore, 'the engine was not touched');

  const forced = await run(['recover', '--allow-revoked', '--timeout', '60s']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.notEqual(stateOf(2), 'running');
  await assertRuns(bench.docker, state, 'rrc', 1);
  const allowed = readJournal(state, (j) => j.events({ kind: 'revocation' }).map(({ reason, message }) => ({ reason, message })));
  assert.deepEqual(allowed.map((e) => e.reason), ['revoked-restore', 'revoked-allowed']);
  assert.match(allowed[1]!.message ?? '', /deployed anyway with --allow-revoked by root@/);
});

/** A 0777 trust dir into which user nobody (65534) writes a key of its own, and a bundle that key signed. */
async function plantedTrust(): Promise<{ dir: string; bundle: string }> {
  const mallory = await makeSigner(bench.dir, 'mallory');
  const dir = join(bench.dir, 'trust-0777');
  await mkdir(dir);
  await copyFile(current.pubPath, join(dir, 'current.pub'));
  await chmod(dir, 0o777);
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', `cat > '${join(dir, 'mallory.pub')}'`], { input: await readFile(mallory.pubPath) });
  assert.equal(r.status, 0, `setpriv: ${r.stderr}`);
  const bundle = await buildRelease({ ...bench, signer: mallory }, { version: '6.6.6', stack: 'evil', repo: 'eviltest' });
  return { dir, bundle };
}

test('a 0777 trust dir with a key planted by another user: bundle plan, bundle apply and the agent (at start, and at import when it turns unsafe later) refuse, and nothing reaches the engine', async () => {
  const { dir, bundle } = await plantedTrust();
  const state = join(bench.dir, 'state-0777');
  const unsafe = `trust store ${dir} is not safe to trust: ${dir} is writable by group or others (mode 777); ${dir}/mallory.pub is owned by uid 65534, not root`;
  for (const args of [
    ['bundle', 'plan', bundle, '--trust', dir],
    ['bundle', 'apply', bundle, '--trust', dir, '--state', state, '--timeout', '60s'],
  ]) {
    const r = await runAirlock(args, env());
    assert.equal(r.code, 3, `${args[1]}: ${r.stderr}`);
    assert.ok(r.stderr.includes(`error: ${unsafe}\n`), r.stderr);
  }
  const agentLayout = await writeAgentConfig(join(bench.dir, 'agent-0777'), dir);
  // The agent does not start on it (nor does --check-config accept it: test/agent/check-config.test.ts).
  const refused = new AgentProcess(agentLayout.config, env());
  const { code } = await refused.exited;
  assert.equal(code, 3, refused.log);
  assert.ok(refused.log.includes(`error: ${agentLayout.config}: trustDir: ${unsafe}\n`), refused.log);

  // Safe at start, opened while it runs: the import refuses it.
  await chmod(dir, 0o755);
  await chown(join(dir, 'mallory.pub'), 0, 0);
  const agent = new AgentProcess(agentLayout.config, env());
  try {
    await agent.waitFor(/msg="agent started"/);
    await chmod(dir, 0o777);
    await chown(join(dir, 'mallory.pub'), 65534, 65534);
    await copyFile(bundle, join(agentLayout.inbox, 'evil.airlock.tmp'));
    await rename(join(agentLayout.inbox, 'evil.airlock.tmp'), join(agentLayout.inbox, 'evil.airlock'));
    const line = await agent.waitFor(/msg="bundle could not be imported now; it stays in the inbox"/, 60_000);
    assert.match(line, /reason=trust-store-unsafe/);
    assert.ok(line.includes(unsafe), line);
  } finally {
    await agent.stop();
  }
  assert.ok((await readdir(agentLayout.inbox)).includes('evil.airlock'), 'the bundle waits in the inbox, neither imported nor quarantined');
  assert.equal(readJournal(agentLayout.state, (j) => j.bundles().length), 0);
  assert.deepEqual(await bench.docker.services.list({ filters: { name: ['evil_'] } }), []);
});

test('a compose file whose keys carry escape sequences: stack plan prints them escaped', async () => {
  const file = join(bench.dir, 'evil-compose.yml');
  await writeFile(file, `services:\n  web:\n    image: busybox\n    "\\e[2J\\e]0;owned\\a": 1\n`);
  const r = await runAirlock(['stack', 'plan', '-c', file, 'evilc'], env());
  assert.doesNotMatch(r.stdout + r.stderr, CONTROL);
  assert.match(r.stdout + r.stderr, /\\u001b\[2J\\u001b\]0;owned\\u0007/);
});
