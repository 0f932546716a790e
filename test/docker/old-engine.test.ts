/**
 * An engine older than Docker 20.10 (API 1.41): the real CLI refuses it by
 * name, release and address, before it reads or changes anything. No real
 * 19.03 can run here, so a stand-in answers /_ping and /version as 19.03.15
 * does, and refuses any newer API version as it would.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Journal } from '../../src/journal/journal.js';
import { makeProject, makeSigner, runCli, tempDir, type Signer } from '../helpers/fixtures.js';
import { docker1903, type FakeDaemon } from './fake-daemon.js';

let fake: FakeDaemon;
let dir: string;
let cleanup: () => Promise<void>;
let signer: Signer;
let bundle: string;
let env: NodeJS.ProcessEnv;

const refusal = (socket: string) => `Docker Engine 19.03.15 (API 1.40) at unix://${socket}: airlock needs Docker 20.10 (API 1.41) or newer`;

before(async () => {
  ({ dir, cleanup } = await tempDir('airlock-old-engine-'));
  signer = await makeSigner(dir);
  const definition = await makeProject(join(dir, 'project'));
  // Built from image archives: the build asks no engine.
  const built = await runCli(['bundle', 'build', '-f', definition, '--key', signer.keyPath, '-o', join(dir, 'out'), '--json']);
  assert.equal(built.code, 0, built.stderr);
  bundle = (JSON.parse(built.stdout) as { path: string }).path;
  fake = docker1903();
  await fake.listen();
  env = { DOCKER_HOST: `unix://${fake.socketPath}` };
});

after(async () => {
  await fake?.close();
  await cleanup?.();
});

/** Every request the stand-in saw since `from`: an engine refused early is asked its versions, nothing else. */
const askedOnlyVersions = (from: number) => assert.deepEqual([...new Set(fake.requests.slice(from))].sort(), ['GET /_ping', 'GET /version']);

test('doctor fails the engine check naming the release, its API version and the way out', async () => {
  const from = fake.requests.length;
  const r = await runCli(['doctor', '--trust', signer.trustDir, '--state', join(dir, 'doctor-state'), '--json'], env);
  // Doctor's own contract: 3 when a check fails, every check reported.
  assert.equal(r.code, 3, r.stderr);
  const checks = (JSON.parse(r.stdout) as { checks: { name: string; status: string; detail: string; hint?: string }[] }).checks;
  const engine = checks.find((c) => c.name === 'engine')!;
  assert.deepEqual(engine, { name: 'engine', status: 'fail', detail: refusal(fake.socketPath), hint: 'upgrade Docker Engine to 20.10 or newer, then run the command again' });
  assert.ok(checks.some((c) => c.name === 'trust store'));
  const human = await runCli(['doctor', '--trust', signer.trustDir, '--state', join(dir, 'doctor-state')], env);
  assert.match(human.stdout, new RegExp(`^FAIL\\s+engine\\s+Docker Engine 19\\.03\\.15 \\(API 1\\.40\\) at unix://`, 'm'));
  askedOnlyVersions(from);
});

test('bundle apply is refused with exit 15 before it opens the journal or stores a blob', async () => {
  const state = join(dir, 'apply-state');
  const from = fake.requests.length;
  const r = await runCli(['bundle', 'apply', bundle, '--trust', signer.trustDir, '--state', state], env);
  assert.equal(r.code, 15, r.stdout + r.stderr);
  assert.equal(r.stderr, `airlock: error: ${refusal(fake.socketPath)}\n  hint: upgrade Docker Engine to 20.10 or newer, then run the command again\n`);
  assert.equal(existsSync(state), false, 'the state dir was made');
  askedOnlyVersions(from);

  const json = await runCli(['bundle', 'apply', bundle, '--trust', signer.trustDir, '--state', state, '--json'], env);
  assert.equal(json.code, 15);
  assert.deepEqual(JSON.parse(json.stdout), {
    error: 'engine',
    reason: 'api-too-old',
    message: refusal(fake.socketPath),
    subject: `unix://${fake.socketPath}`,
    hint: 'upgrade Docker Engine to 20.10 or newer, then run the command again',
    exitCode: 15,
  });
});

test('bundle import, which loads images, is refused the same way and stores nothing', async () => {
  const state = join(dir, 'import-state');
  const r = await runCli(['bundle', 'import', bundle, '--trust', signer.trustDir, '--state', state], env);
  assert.equal(r.code, 15, r.stdout + r.stderr);
  assert.match(r.stderr, new RegExp(`^airlock: error: Docker Engine 19\\.03\\.15 \\(API 1\\.40\\) at unix://`));
  assert.equal(existsSync(state), false);
  // --no-load talks to no engine: it stores.
  const stored = await runCli(['bundle', 'import', bundle, '--trust', signer.trustDir, '--state', state, '--no-load'], env);
  assert.equal(stored.code, 0, stored.stderr);
  assert.ok(readdirSync(join(state, 'blobs', 'sha256')).length > 0);
});

test('status is refused with exit 15 rather than shown as "engine unreachable"', async () => {
  const state = join(dir, 'status-state');
  Journal.open(state).close();
  const r = await runCli(['status', '--state', state], env);
  assert.equal(r.code, 15, r.stdout + r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`^airlock: error: Docker Engine 19\\.03\\.15 \\(API 1\\.40\\) at unix://.*: airlock needs Docker 20\\.10 \\(API 1\\.41\\) or newer\\n`));
  const json = await runCli(['status', '--state', state, '--json'], env);
  assert.equal(json.code, 15);
  assert.equal((JSON.parse(json.stdout) as { reason: string }).reason, 'api-too-old');
});
