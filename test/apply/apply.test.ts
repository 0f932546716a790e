import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readJournal, type JournalReader } from '../helpers/journal-read.js';
import YAML from 'yaml';
import type { Docker, ServiceSpec } from '../../src/docker/index.js';
import { diffSpecs } from '../../src/stack/spec-diff.js';
import { PrivateDaemon } from '../helpers/dockerd.js';
import { makeProject, makeSigner, runCli, spawnCli, tempDir, type Signer } from '../helpers/fixtures.js';
import { isBundleImage } from '../../src/images/identity.js';

// A single-node swarm of this file's own; the tests run in order and build on each other.
let work: { dir: string; cleanup: () => Promise<void> };
let daemon: PrivateDaemon;
let docker: Docker;
let signer: Signer;
let state: string;

before(async () => {
  work = await tempDir('airlock-apply-');
  daemon = new PrivateDaemon(join(work.dir, 'engine'));
  await daemon.start();
  docker = daemon.client();
  signer = await makeSigner(work.dir);
  state = join(work.dir, 'state');
});

after(async () => {
  await docker.close();
  await daemon.destroy();
  await work.cleanup();
});

/** A release of the test app: web serves `appText`; `broken` makes web exit at once. */
async function release(version: string, opts: { broken?: boolean } = {}): Promise<string> {
  const project = join(work.dir, `p-${version}`);
  await mkdir(project, { recursive: true });
  const def = await makeProject(project, { version, repo: 'applytest', appText: `release ${version}\n` });
  const compose = YAML.parse(await readFile(join(project, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Record<string, unknown>> };
  compose.services.web!.command = opts.broken ? ['sh', '-c', 'exit 1'] : ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'];
  compose.services.worker!.command = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'];
  await writeFile(join(project, 'docker-compose.yml'), YAML.stringify(compose));
  const r = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(work.dir, 'out'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { path: string }).path;
}

const cli = (args: string[]) => runCli([...args, '--state', state], { DOCKER_HOST: daemon.dockerHost, AIRLOCK_TRUST_DIR: signer.trustDir });
const apply = (file: string, ...extra: string[]) => cli(['bundle', 'apply', file, '--trust', signer.trustDir, '--json', ...extra]);

const journal = <T>(fn: (j: JournalReader) => T): T => readJournal(state, fn);

/** The specs the engine runs for the stack, by service name. */
async function engineSpecs(): Promise<Map<string, ServiceSpec>> {
  const services = await docker.services.list({ filters: { label: ['com.docker.stack.namespace=web'] } });
  return new Map(services.map((s) => [s.Spec.Name!, s.Spec]));
}

/** Asserts the engine runs exactly the specs deployment `id` applied. */
async function assertRuns(id: number): Promise<void> {
  const recorded = journal((j) => j.services(id).filter((s) => s.spec_after !== null));
  const engine = await engineSpecs();
  assert.deepEqual([...engine.keys()].sort(), recorded.map((r) => r.name).sort());
  for (const r of recorded) {
    const spec = JSON.parse(r.spec_after ?? '') as ServiceSpec;
    const running = engine.get(r.name)!;
    const drift = diffSpecs({ ...spec, TaskTemplate: { ...spec.TaskTemplate, ForceUpdate: 0 } }, { ...running, TaskTemplate: { ...running.TaskTemplate, ForceUpdate: 0 } });
    assert.deepEqual(drift, [], `${r.name} differs from deployment #${id}`);
  }
}

test('apply with --init-swarm: a journaled deployment, converged, with pinned images', async () => {
  const v1 = await release('1.0.0');
  const r = await apply(v1, '--init-swarm', '--timeout', '60s');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const out = JSON.parse(r.stdout) as { bundle: { version: string }; stacks: { stack: string; deployment: number; services: { name: string; ready: number; desired: number }[] }[] };
  assert.deepEqual(out.stacks.map((s) => [s.stack, s.deployment]), [['web', 1]]);
  assert.ok(out.stacks[0]!.services.every((s) => s.ready === s.desired));
  const steps = journal((j) => j.steps(1).map(({ step, outcome }) => ({ step, outcome })));
  assert.deepEqual(steps, ['verify', 'store', 'load', 'prepare', 'services', 'converge', 'commit', 'cleanup'].map((step) => ({ step, outcome: 'ok' })));
  const pins = journal((j) => j.services(1));
  assert.deepEqual(pins.map((p) => [p.name, p.spec_before, p.image_ref]), [
    ['web_web', null, 'applytest/web:1.0.0'],
    ['web_worker', null, 'applytest/base:1'],
  ]);
  // The journal pins the config digest; the engine holds exactly that image, under whatever id its store gives it.
  const manifest = journal((j) => j.manifest('1.0.0'));
  const web = manifest.images.find((i) => i.refs.includes('applytest/web:1.0.0'))!;
  assert.equal(pins[0]!.image_id, web.id);
  assert.ok(isBundleImage(await docker.images.inspect('applytest/web:1.0.0'), web));
  await assertRuns(1);

  const status = JSON.parse((await cli(['status', '--json'])).stdout) as { stacks: { stack: string; bundle: string; deployment: number; converged: boolean; appliedBy: string }[] };
  assert.equal(status.stacks[0]!.bundle, 'demo 1.0.0');
  assert.equal(status.stacks[0]!.converged, true);
  assert.match(status.stacks[0]!.appliedBy, /@/);
});

test('an upgrade records the previous specs, and a deploy that never becomes healthy is rolled back by itself', async () => {
  const v2 = await release('1.1.0');
  const up = await apply(v2, '--timeout', '60s');
  assert.equal(up.code, 0, up.stdout + up.stderr);
  const before2 = journal((j) => j.services(2).find((s) => s.name === 'web_web')!);
  const after1 = journal((j) => j.services(1).find((s) => s.name === 'web_web')!);
  assert.deepEqual(diffSpecs(JSON.parse(before2.spec_before ?? '') as ServiceSpec, JSON.parse(after1.spec_after ?? '') as ServiceSpec), []);
  await assertRuns(2);

  const bad = await release('1.2.0', { broken: true });
  const r = await apply(bad, '--timeout', '15s');
  assert.equal(r.code, 15, r.stdout + r.stderr);
  // Swarm's own update monitor may give up first ("paused"); either way the task's exit is named.
  assert.match((JSON.parse(r.stdout) as { message: string }).message, /web_web(: swarm paused the update|: 0\/1 ready).*failed on node \w+: task: non-zero exit \(1\)/);
  const d3 = journal((j) => j.deployment(3));
  assert.equal(d3.status, 'rolled-back');
  assert.match(d3.reason ?? '', /^did not converge, rolled back to the previous specs/);
  assert.deepEqual(journal((j) => j.events({ kind: 'deployment.rollback' }).map(({ outcome, reason }) => ({ outcome, reason }))), [{ outcome: 'ok', reason: 'health-gate' }]);
  await assertRuns(2);
});

test('rollback restores any recorded deployment, by default the release before, and is journaled', async () => {
  const r = await cli(['rollback', 'web', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).restores, 1);
  await assertRuns(1);
  assert.equal((await docker.services.inspect('web_web')).Spec.TaskTemplate?.ContainerSpec?.Image, 'applytest/web:1.0.0');

  const forward = await cli(['rollback', 'web', '--to', '1.1.0', '--json']);
  assert.equal(forward.code, 0, forward.stdout + forward.stderr);
  await assertRuns(2);

  const history = JSON.parse((await cli(['history', 'web', '--json'])).stdout) as { id: number; kind: string; status: string; restores: number | null }[];
  assert.deepEqual(history.map((d) => [d.id, d.kind, d.status, d.restores]), [
    [5, 'rollback', 'committed', 2],
    [4, 'rollback', 'committed', 1],
    [3, 'apply', 'rolled-back', null],
    [2, 'apply', 'committed', null],
    [1, 'apply', 'committed', null],
  ]);
  const refused = await cli(['rollback', 'web', '--to', '3']);
  assert.equal(refused.code, 13);
  assert.match(refused.stderr, /deployment #3 was rolled-back, never a running state to go back to/);
});

test('three levels back after two upgrades; a downgrade by apply is refused', async () => {
  const v3 = await release('1.3.0');
  assert.equal((await apply(v3, '--timeout', '60s')).code, 0);
  const target = (JSON.parse((await cli(['history', 'web', '--json'])).stdout) as { id: number; bundle_version: string; kind: string }[]).find(
    (d) => d.kind === 'apply' && d.bundle_version === '1.0.0',
  )!;
  const r = await cli(['rollback', 'web', '--to', String(target.id)]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  await assertRuns(target.id);

  const old = join(work.dir, 'out', 'demo-1.0.0.airlock');
  const down = await apply(old);
  assert.equal(down.code, 13);
  assert.equal((JSON.parse(down.stdout) as { reason: string }).reason, 'downgrade');
});

test('one apply at a time: a second one waits, then fails naming the first', async () => {
  const v4 = await release('1.4.0');
  const first = spawnCli(['bundle', 'apply', v4, '--trust', signer.trustDir, '--state', state, '--timeout', '60s'], {
    env: { ...process.env, DOCKER_HOST: daemon.dockerHost }
  });
  let stderr = '';
  first.stderr.on('data', (d) => (stderr += d));
  // Wait until the first holds the lock (it journals its steps as it goes).
  for (let i = 0; i < 100 && !/deployment #\d+: store/.test(stderr); i++) await new Promise((r) => setTimeout(r, 100));
  const second = await apply(v4, '--wait', '1s');
  assert.equal(second.code, 16, second.stdout + second.stderr);
  assert.match((JSON.parse(second.stdout) as { message: string }).message, /another apply is running: bundle apply .*demo-1\.4\.0\.airlock \(pid \d+, since /);
  const code = await new Promise<number>((res) => first.on('close', (c) => res(c ?? -1)));
  assert.equal(code, 0, stderr);
});

test('bundle plan shows what apply would change, field by field, and changes nothing', async () => {
  const v5 = await release('1.5.0');
  const before = (await docker.services.inspect('web_web')).Version.Index;
  const r = await runCli(['bundle', 'plan', v5, '--trust', signer.trustDir], { DOCKER_HOST: daemon.dockerHost });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^stack web \(demo 1\.5\.0\):$/m);
  // Env values are hidden unless asked for: which variables change, not what they hold.
  assert.match(r.stdout, /~ service web_web\n(?: {6}.*\n)* {6}TaskTemplate\.ContainerSpec\.Env: changed VERSION \(values hidden; --show-env shows them\)\n/);
  assert.doesNotMatch(r.stdout, /VERSION=|GREETING=|hello/);
  const json = await runCli(['bundle', 'plan', v5, '--trust', signer.trustDir, '--json'], { DOCKER_HOST: daemon.dockerHost });
  assert.equal(json.code, 0, json.stderr);
  assert.doesNotMatch(json.stdout, /VERSION=1|GREETING=hello/);
  const web = (JSON.parse(json.stdout) as { stacks: { plan: { services: { name: string; changes?: { path: string; env?: unknown }[] }[] } }[] }).stacks[0]!.plan.services.find((s) => s.name === 'web_web')!;
  assert.deepEqual(web.changes!.find((c) => c.path === 'TaskTemplate.ContainerSpec.Env')!.env, { added: [], removed: [], changed: ['VERSION'] });
  const shown = await runCli(['bundle', 'plan', v5, '--trust', signer.trustDir, '--show-env'], { DOCKER_HOST: daemon.dockerHost });
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /~ service web_web\n(?: {6}.*\n)* {6}TaskTemplate\.ContainerSpec\.Env: \["GREETING=hello","VERSION=1\.4\.0"\] -> \["GREETING=hello","VERSION=1\.5\.0"\]\n/);
  assert.match(r.stdout, /TaskTemplate\.ContainerSpec\.Image: "applytest\/web:1\.4\.0" -> "applytest\/web:1\.5\.0"/);
  assert.match(r.stdout, /= service web_worker \(unchanged\)/);
  assert.equal((await docker.services.inspect('web_web')).Version.Index, before);
  assert.equal(await docker.images.find('applytest/web:1.5.0'), undefined, 'nothing loaded');
  const other = await makeSigner(work.dir, 'other');
  const untrusted = await runCli(['bundle', 'plan', v5, '--trust', other.trustDir], { DOCKER_HOST: daemon.dockerHost });
  assert.equal(untrusted.code, 10);
});
