/**
 * Multi-platform bundles, host side (issue 15), on a real engine of the row
 * under test: a host stores every verified variant but loads only the one
 * for its own platform (this machine is linux/amd64); apply, re-import,
 * rollback and prune work with several variants per ref; a bundle with no
 * variant for this host is refused before anything changes. Also the build
 * from the local engine with --platform, which depends on the engine.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import { compareApiVersions } from '../../src/docker/index.js';
import type { Manifest } from '../../src/bundle/manifest.js';
import { makeMultiPlatformProject, runCli, type MultiPlatformProjectOptions } from '../helpers/fixtures.js';
import { cliFor, startBench, type Bench } from '../helpers/apply.js';
import { readJournal } from '../helpers/journal-read.js';
import { engineImageId, engineImageStore } from '../helpers/engines.js';
import type { WrittenVariant } from '../helpers/images.js';
import { Bundle } from '../helpers/tamper.js';

// One single-node swarm of this file's own; the tests run in order and build on each other.
let bench: Bench;
let run: ReturnType<typeof cliFor>;

before(async () => {
  bench = await startBench('airlock-platforms-');
  run = cliFor(bench, join(bench.dir, 'state'));
});

after(async () => {
  await bench.close();
});

interface Release {
  path: string;
  ref: string;
  amd64: WrittenVariant | undefined;
  arm64: WrittenVariant | undefined;
}

/** Builds release `version` of the multi-platform test app for `platforms`. */
async function release(version: string, platforms: string | null, project: MultiPlatformProjectOptions = {}): Promise<Release> {
  const dir = join(bench.dir, `p-${version}`);
  const { definition, ref, variants } = await makeMultiPlatformProject(dir, { version, ...project });
  const r = await runCli(['bundle', 'build', '-f', definition, '--key', bench.signer.keyPath, '-o', join(bench.dir, 'out'), '--json', ...(platforms ? ['--platform', platforms] : [])]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const find = (arch: string) => variants.find((v) => v.platform.architecture === arch);
  return { path: (JSON.parse(r.stdout) as { path: string }).path, ref, amd64: find('amd64'), arm64: find('arm64') };
}

/** The engine's id for a variant on the store under test: its config digest (classic) or manifest digest (containerd). */
const engineIdOf = (v: WrittenVariant) => engineImageId({ id: v.config, manifest: { digest: v.manifest } });
/** Whether the engine holds the variant under either of its ids. */
const inEngine = async (v: WrittenVariant) => (await bench.docker.images.find(v.config)) !== undefined || (await bench.docker.images.find(v.manifest)) !== undefined;
const storeHas = (digest: string) => existsSync(join(run.state, 'blobs', 'sha256', digest.slice('sha256:'.length)));
const storeFiles = () => readdirSync(join(run.state, 'blobs', 'sha256')).sort();
const trust = () => ['--trust', bench.signer.trustDir];

let v1: Release;

test('apply stores every variant but loads only the amd64 one: the service runs it, the arm64 variant never reaches the engine; a re-import loads nothing', async () => {
  v1 = await release('1.0.0', 'linux/amd64,linux/arm64');
  const r = await run.apply(v1.path);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const out = JSON.parse(r.stdout) as { stacks: { deployment: number; services: { name: string; ready: number; desired: number }[] }[] };
  assert.deepEqual(out.stacks[0]!.services.map((s) => [s.name, s.ready, s.desired]), [['mp_app', 1, 1]]);
  assert.equal((await bench.docker.services.inspect('mp_app')).Spec.TaskTemplate?.ContainerSpec?.Image, v1.ref);

  // The engine holds the amd64 variant under the ref, with its own id; nothing of the arm64 one.
  assert.equal((await bench.docker.images.inspect(v1.ref)).Id, engineIdOf(v1.amd64!));
  assert.equal(await inEngine(v1.arm64!), false);
  // The content store keeps both: everything the bundle carries was verified and stored.
  for (const d of [v1.amd64!.config, v1.amd64!.manifest, v1.arm64!.config, v1.arm64!.manifest]) assert.ok(storeHas(d), `${d} stored`);
  // The journal records the loaded variant, and pins the service to its config digest.
  assert.deepEqual(readJournal(run.state, (j) => j.images().map(({ id }) => ({ id }))), [{ id: v1.amd64!.config }]);
  assert.deepEqual(readJournal(run.state, (j) => j.services().map(({ image_ref, image_id }) => ({ image_ref, image_id }))), [{ image_ref: v1.ref, image_id: v1.amd64!.config }]);
  const load = readJournal(run.state, (j) => j.events({ kind: 'images.load' })[0]!);
  assert.deepEqual(JSON.parse(load.details ?? ''), { loaded: [v1.ref], present: [], tagged: [], platform: 'linux/amd64' });

  const again = await run.cli(['bundle', 'import', v1.path, ...trust(), '--json']);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.deepEqual((JSON.parse(again.stdout) as { images: unknown }).images, { loaded: [], tagged: [], present: [v1.ref], platform: 'linux/amd64' });
  assert.equal(await inEngine(v1.arm64!), false);
});

test('an upgrade, a rollback that puts the amd64 variant back (reloaded from the content store where the engine dropped it), and a prune: each per variant', async () => {
  const v2 = await release('2.0.0', 'linux/amd64,linux/arm64');
  const up = await run.apply(v2.path);
  assert.equal(up.code, 0, up.stdout + up.stderr);
  assert.equal((await bench.docker.services.inspect('mp_app')).Spec.TaskTemplate?.ContainerSpec?.Image, v2.ref);
  assert.equal(await inEngine(v2.arm64!), false);

  // v1's tag gone: rollback puts back its amd64 variant, loaded again from the content store where the
  // engine dropped the image (the classic store; the containerd store keeps it for the old task's container).
  await bench.docker.images.delete(v1.ref, { force: true });
  assert.equal(await bench.docker.images.find(v1.ref), undefined);
  if (engineImageStore() === 'classic') assert.equal(await inEngine(v1.amd64!), false);
  const back = await run.cli(['rollback', 'mp', '--json', '--timeout', '60s']);
  assert.equal(back.code, 0, back.stdout + back.stderr);
  const restored = JSON.parse(back.stdout) as { services: { name: string; ready: number; desired: number }[] };
  assert.deepEqual(restored.services.map((s) => [s.name, s.ready, s.desired]), [['mp_app', 1, 1]]);
  assert.equal((await bench.docker.services.inspect('mp_app')).Spec.TaskTemplate?.ContainerSpec?.Image, v1.ref);
  assert.equal((await bench.docker.images.inspect(v1.ref)).Id, engineIdOf(v1.amd64!));
  assert.equal(await inEngine(v1.arm64!), false);

  // Keep one state (the rollback to v1): v2 goes, its amd64 image from the engine, both its variants from the store.
  const pruned = await run.cli(['prune', '--keep', '1', '--json']);
  assert.equal(pruned.code, 0, pruned.stdout + pruned.stderr);
  const report = JSON.parse(pruned.stdout) as { bundles: { version: string }[]; images: { id: string }[]; skipped: unknown[] };
  assert.deepEqual(report.bundles.map((b) => b.version), ['2.0.0']);
  assert.deepEqual(report.images.map((i) => i.id), [v2.amd64!.config]);
  assert.deepEqual(report.skipped, []);
  assert.equal(await inEngine(v2.amd64!), false);
  for (const d of [v2.amd64!.config, v2.arm64!.config, v2.arm64!.manifest]) assert.ok(!storeHas(d), `${d} of v2 pruned`);
  // v1 is what runs: both its variants stay stored, its amd64 image in the engine.
  for (const d of [v1.amd64!.config, v1.arm64!.config, v1.arm64!.manifest]) assert.ok(storeHas(d), `${d} of v1 kept`);
  assert.equal((await bench.docker.images.inspect(v1.ref)).Id, engineIdOf(v1.amd64!));
});

test('a bundle with only an arm64 variant is refused on this amd64 host before anything changes: exit 13, nothing loaded or stored, no service touched, the refusal journaled', async () => {
  const v3 = await release('3.0.0', 'linux/arm64');
  const files = storeFiles();
  const spec = (await bench.docker.services.inspect('mp_app')).Spec;
  const images = (await bench.docker.images.list()).map((i) => i.Id).sort();
  const message = `mp 3.0.0 has no linux/amd64 variant of image ${v3.ref} (the bundle has linux/arm64); this host's engine runs linux/amd64`;

  for (const args of [['bundle', 'import', v3.path, ...trust(), '--json'], ['bundle', 'apply', v3.path, ...trust(), '--timeout', '60s', '--json']]) {
    const r = await run.cli(args);
    assert.equal(r.code, 13, `${args[1]}: ${r.stdout}${r.stderr}`);
    const err = JSON.parse(r.stdout) as { error: string; reason: string; message: string; subject: string; hint: string };
    assert.deepEqual([err.error, err.reason, err.message, err.subject], ['policy', 'platform-unavailable', message, v3.ref]);
    assert.match(err.hint, /--platform linux\/amd64/);
  }
  assert.equal(await bench.docker.images.find(v3.ref), undefined);
  assert.equal(await inEngine(v3.arm64!), false);
  assert.deepEqual((await bench.docker.images.list()).map((i) => i.Id).sort(), images);
  assert.deepEqual(storeFiles(), files, 'nothing of the refused bundle was stored');
  assert.deepEqual((await bench.docker.services.inspect('mp_app')).Spec, spec);
  const refusals = readJournal(run.state, (j) => j.events({ kind: 'bundle.import', subject: 'mp 3.0.0' }).map(({ outcome, reason, subject, message }) => ({ outcome, reason, subject, message })));
  assert.deepEqual(refusals, [
    { outcome: 'refused', reason: 'platform-unavailable', subject: 'mp 3.0.0', message },
    { outcome: 'refused', reason: 'platform-unavailable', subject: 'mp 3.0.0', message },
  ]);
  assert.equal(readJournal(run.state, (j) => j.bundles().filter((b) => b.version === '3.0.0').length), 0);

  // Stored on a jump box (--no-load), then applied here: refused before the load, the stack as it was.
  const jump = cliFor(bench, join(bench.dir, 'state-jump'));
  assert.equal((await jump.cli(['bundle', 'import', v3.path, ...trust(), '--no-load', '--json'])).code, 0);
  const later = await jump.cli(['bundle', 'apply', v3.path, ...trust(), '--timeout', '60s', '--json']);
  assert.equal(later.code, 13, later.stdout + later.stderr);
  assert.equal((JSON.parse(later.stdout) as { reason: string }).reason, 'platform-unavailable');
  assert.deepEqual((await bench.docker.services.inspect('mp_app')).Spec, spec);
});

test('a single-platform bundle whose config names arm64 (no platform recorded) is refused the same way, before anything is stored', async () => {
  const legacy = await release('4.0.0', null, { architectures: ['arm64'], layout: 'docker-save' });
  const m = (await Bundle.from(await readFile(legacy.path))).manifest;
  assert.deepEqual([m.images.length, m.images[0]!.platform, (m.requires ?? []).includes('platforms')], [1, undefined, false]);
  const files = storeFiles();
  const r = await run.cli(['bundle', 'import', legacy.path, ...trust(), '--json']);
  assert.equal(r.code, 13, r.stdout + r.stderr);
  const err = JSON.parse(r.stdout) as { reason: string; message: string };
  assert.equal(err.reason, 'platform-unavailable');
  assert.equal(err.message, `mp 4.0.0 has no linux/amd64 variant of image ${legacy.ref} (the bundle has linux/arm64); this host's engine runs linux/amd64`);
  assert.equal(await bench.docker.images.find(legacy.ref), undefined);
  assert.deepEqual(storeFiles(), files);
});

test('build from the local engine with --platform: every platform the engine can export, the others refused by name', async () => {
  // An image of both platforms in the engine, as `docker load` of a multi-platform save puts it there:
  // the containerd store keeps both; the classic store one per tag (the last loaded, amd64 here).
  const dir = join(bench.dir, 'p-engine');
  const { ref, variants } = await makeMultiPlatformProject(dir, { version: '5.0.0', repo: 'mpeng', architectures: ['arm64', 'amd64'], layout: 'docker-save' });
  await bench.docker.images.loadAll(() => createReadStream(join(dir, 'images', 'app.tar')));
  const amd64 = variants.find((v) => v.platform.architecture === 'amd64')!;
  const def = join(dir, 'engine.yaml');
  await mkdir(dir, { recursive: true });
  await writeFile(def, YAML.stringify({ name: 'fromengine', version: '5.0.0', images: [ref] }));
  const build = (out: string, platforms: string) =>
    runCli(['bundle', 'build', '-f', def, '--key', bench.signer.keyPath, '-o', join(bench.dir, out), '--json', '--platform', platforms], { DOCKER_HOST: bench.daemon.dockerHost });
  const manifestAt = async (stdout: string): Promise<Manifest> => (await Bundle.from(await readFile((JSON.parse(stdout) as { path: string }).path))).manifest;

  const one = await build('engine-one', 'linux/amd64');
  assert.equal(one.code, 0, one.stdout + one.stderr);
  assert.deepEqual((await manifestAt(one.stdout)).images.map((i) => [i.refs, i.platform, i.id]), [[[ref], 'linux/amd64', amd64.config]]);

  const api = await bench.docker.client.apiVersion();
  const both = await build('engine-both', 'linux/amd64,linux/arm64');
  if (engineImageStore() === 'containerd') {
    assert.equal(both.code, 0, both.stdout + both.stderr);
    const m = await manifestAt(both.stdout);
    assert.deepEqual(
      m.images.map((i) => [i.platform, i.id, i.manifest.digest]),
      [...variants].sort((a, b) => (a.platform.architecture < b.platform.architecture ? -1 : 1)).map((v) => [`linux/${v.platform.architecture}`, v.config, v.manifest]),
    );
    return;
  }
  assert.equal(both.code, 4, both.stdout + both.stderr);
  const err = JSON.parse(both.stdout) as { reason: string; message: string };
  assert.equal(err.reason, 'platform-not-found');
  if (compareApiVersions(api, '1.48') >= 0) {
    assert.match(err.message, new RegExp(`^image ${ref.replace(/[./]/g, '\\$&')}: the local Docker Engine has no linux/arm64 variant of it \\(.*no suitable export target`));
  } else {
    assert.equal(err.message, `image ${ref}: the local Docker Engine (API ${api}) exports an image only as it holds it, and holds linux/amd64, not linux/arm64`);
  }
});
