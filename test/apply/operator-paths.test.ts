/**
 * The README's vendor and host steps, end to end on a private dockerd
 * (issue 16, item 15): a host applies 1.0.0 (web at 2 replicas) and writes a
 * receipt; the vendor builds 1.1.0 (web at 3) as a delta against it, which
 * leaves out the env file that did not change. `bundle plan` of that delta
 * reads the env file from the host's content store, as apply does; after a
 * rollback from 3 replicas to 2, `status` counts only tasks meant to run.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import type { Docker } from '../../src/docker/index.js';
import type { Manifest } from '../../src/bundle/manifest.js';
import { PrivateDaemon } from '../helpers/dockerd.js';
import { makeProject, makeSigner, runCli, tempDir, type Signer } from '../helpers/fixtures.js';
import { manifestOf, sha, storeListing } from '../helpers/delta.js';

const REPO = 'opspaths';
const ENV = Buffer.from('GREETING=hello\n');

let work: { dir: string; cleanup: () => Promise<void> };
let daemon: PrivateDaemon;
let docker: Docker;
let vendor: Signer;
let site: Signer;
let state: string;
/** 1.1.0 built as a delta against the receipt the host wrote after applying 1.0.0. */
let delta: string;

const env = () => ({ DOCKER_HOST: daemon.dockerHost });
const cli = (args: string[]) => runCli(args, env());

/**
 * A release whose only change is web's replica count. `sleep` as PID 1
 * ignores SIGTERM, so a task told to shut down keeps running for its stop
 * grace period, as a real service that drains its connections does.
 */
async function release(version: string, replicas: number): Promise<string> {
  const dir = join(work.dir, `p-${version}`);
  await mkdir(dir, { recursive: true });
  const definition = await makeProject(dir, { version, repo: REPO, expires: null });
  const compose = { services: { web: { image: `${REPO}/base:1`, command: ['sleep', '3600'], env_file: ['web.env'], stop_grace_period: '60s', deploy: { replicas } } } };
  await writeFile(join(dir, 'docker-compose.yml'), YAML.stringify(compose));
  await writeFile(join(dir, 'web.env'), ENV);
  return definition;
}

async function build(definition: string, out: string, extra: string[] = []): Promise<string> {
  const r = await cli(['bundle', 'build', '-f', definition, '--key', vendor.keyPath, '-o', join(work.dir, out), '--json', ...extra]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return (JSON.parse(r.stdout) as { path: string }).path;
}

before(async () => {
  work = await tempDir('airlock-operator-paths-');
  daemon = new PrivateDaemon(join(work.dir, 'engine'));
  await daemon.start();
  docker = daemon.client();
  vendor = await makeSigner(work.dir, 'vendor');
  site = await makeSigner(work.dir, 'site');
  state = join(work.dir, 'state');
  const full = await build(await release('1.0.0', 2), 'full');
  const applied = await cli(['bundle', 'apply', full, '--trust', vendor.trustDir, '--state', state, '--init-swarm', '--timeout', '60s', '--json']);
  assert.equal(applied.code, 0, applied.stderr + applied.stdout);
  const receipt = join(work.dir, 'site.receipt.json');
  const r = await cli(['bundle', 'receipt', '--state', state, '--key', site.keyPath, '-o', receipt, '--site', 'site-a']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  delta = await build(await release('1.1.0', 3), 'delta', ['--since-receipt', receipt, '--receipt-key', site.pubPath]);
});

after(async () => {
  await docker?.close();
  await daemon?.destroy();
  await work?.cleanup();
});

test('bundle plan of a delta built --since-receipt reads the env file it relies on from the content store, as apply does', async () => {
  const m: Manifest = (await manifestOf(delta)).manifest;
  const envBlob = m.blobs.find((b) => b.digest === sha(ENV));
  assert.deepEqual([envBlob?.kind, envBlob?.carried], ['env-file', false], 'the unchanged env file is not carried');
  const service = (await docker.services.inspect('web_web')).Version.Index;
  const store = await storeListing(state);

  const r = await cli(['bundle', 'plan', delta, '--trust', vendor.trustDir, '--state', state]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /^stack web \(demo 1\.1\.0\):\n {2}~ service web_web\n {6}Mode\.Replicated\.Replicas: 2 -> 3$/m);
  assert.equal((await docker.services.inspect('web_web')).Version.Index, service, 'the plan changed no service');
  assert.deepEqual(await storeListing(state), store, 'the plan stored nothing');

  // A host without what the delta relies on: refused as apply refuses it, naming the receipt.
  const bare = await cli(['bundle', 'plan', delta, '--trust', vendor.trustDir, '--state', join(work.dir, 'bare'), '--json']);
  assert.equal(bare.code, 13, bare.stderr + bare.stdout);
  const err = JSON.parse(bare.stdout) as { reason: string; subject: string };
  assert.deepEqual([err.reason, err.subject.startsWith('receipt of site-a')], ['missing-base', true]);
});

test('status right after a rollback from 3 replicas to 2 shows 2/2, converged: tasks told to shut down do not count', async () => {
  const applied = await cli(['bundle', 'apply', delta, '--trust', vendor.trustDir, '--state', state, '--timeout', '60s', '--json']);
  assert.equal(applied.code, 0, applied.stderr + applied.stdout);
  const rolledBack = await cli(['rollback', 'web', '--trust', vendor.trustDir, '--state', state, '--timeout', '60s', '--json']);
  assert.equal(rolledBack.code, 0, rolledBack.stderr + rolledBack.stdout);

  const r = await cli(['status', '--state', state, '--json']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  // The moment status looked at: the third task still running, told to stop (60 s grace).
  const tasks = await docker.tasks.list({ filters: { service: ['web_web'] } });
  // (Swarm marks a task it scales away `remove`, one it replaces `shutdown`.)
  const draining = tasks.filter((t) => t.DesiredState !== 'running' && t.Status.State === 'running');
  assert.equal(draining.length, 1, `the scaled-down task is still stopping, the case under test: ${JSON.stringify(tasks.map((t) => [t.Slot, t.DesiredState, t.Status.State]))}`);
  const web = (JSON.parse(r.stdout) as { stacks: { stack: string; kind: string; services: { name: string; running: number; desired: number }[]; converged: boolean }[] }).stacks.find((s) => s.stack === 'web')!;
  assert.deepEqual([web.kind, web.services, web.converged], ['rollback', [{ name: 'web_web', running: 2, desired: 2 }], true]);

  const human = await cli(['status', '--state', state]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^ {2}web_web 2\/2$/m);
  assert.match(human.stdout, /^web +demo 1\.0\.0 +#\d+ \(rollback\) .* yes$/m);
});
