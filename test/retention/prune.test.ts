import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readJournal, type JournalReader } from '../helpers/journal-read.js';
import YAML from 'yaml';
import type { Manifest } from '../../src/bundle/manifest.js';
import type { Docker } from '../../src/docker/index.js';
import type { PruneReport } from '../../src/retention/index.js';
import { PrivateDaemon } from '../helpers/dockerd.js';
import { engineImageId } from '../helpers/engines.js';
import { makeProject, makeSigner, runCli, tempDir, type Signer } from '../helpers/fixtures.js';

// One single-node swarm of this file's own, four releases applied in turn, then pruned.
let work: { dir: string; cleanup: () => Promise<void> };
let daemon: PrivateDaemon;
let docker: Docker;
let signer: Signer;
let state: string;

const VERSIONS = ['1.0.0', '1.1.0', '1.2.0', '1.3.0'] as const;

before(async () => {
  work = await tempDir('airlock-prune-');
  daemon = new PrivateDaemon(join(work.dir, 'engine'));
  await daemon.start();
  docker = daemon.client();
  await docker.swarm.init({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: '127.0.0.1' });
  signer = await makeSigner(work.dir);
  state = join(work.dir, 'state');
});

after(async () => {
  await docker?.close();
  await daemon?.destroy();
  await work?.cleanup();
});

async function release(version: string): Promise<string> {
  const project = join(work.dir, `p-${version}`);
  await mkdir(project, { recursive: true });
  const def = await makeProject(project, { version, repo: 'prunetest', appText: `prune release ${version}\n` });
  const compose = YAML.parse(await readFile(join(project, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Record<string, unknown>> };
  for (const s of Object.values(compose.services)) s.command = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'];
  await writeFile(join(project, 'docker-compose.yml'), YAML.stringify(compose));
  const r = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(work.dir, 'out'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { path: string }).path;
}

const cli = (args: string[]) => runCli([...args, '--state', state], { DOCKER_HOST: daemon.dockerHost, AIRLOCK_TRUST_DIR: signer.trustDir });

const journal = <T>(fn: (j: JournalReader) => T): T => readJournal(state, fn);

const manifestOf = (version: string): Manifest =>
  journal((j) => j.manifest(version));
const blobsOf = (version: string) => new Set(manifestOf(version).blobs.map((b) => b.digest));
/** The id the engine under test shows for a release's web image. */
const webImageOf = (version: string) => engineImageId(manifestOf(version).images.find((i) => i.refs.includes(`prunetest/web:${version}`))!);
const storeHas = (digest: string) => existsSync(join(state, 'blobs', 'sha256', digest.slice('sha256:'.length)));
const storeFiles = () => readdirSync(join(state, 'blobs', 'sha256')).sort();
const engineImages = async () => (await docker.images.list()).map((i) => i.Id).sort();
const journalDump = () =>
  journal((j) => (['bundles', 'blobs', 'bundle_blobs', 'images', 'bundle_images', 'deployments', 'events'] as const).map((t) => j.rows(t)));

test('prune on a real engine: a dry run changes nothing, a prune keeps the last K, rollback to a kept release still works', async () => {
  // Four releases, applied in turn to one stack.
  for (const v of VERSIONS) {
    const r = await cli(['bundle', 'apply', await release(v), '--trust', signer.trustDir, '--timeout', '60s', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }
  const v1Only = [...blobsOf('1.0.0')].filter((d) => !blobsOf('1.2.0').has(d) && !blobsOf('1.3.0').has(d));
  const kept = [...blobsOf('1.2.0'), ...blobsOf('1.3.0')];
  assert.ok(v1Only.length >= 3, 'v1 has blobs of its own (app layer, image config, compose and env files)');
  assert.ok(v1Only.every(storeHas) && kept.every(storeHas));
  const v1Web = webImageOf('1.0.0');
  /** The journal's name for it, whatever the store: its config digest. */
  const v1WebConfig = manifestOf('1.0.0').images.find((i) => i.refs.includes('prunetest/web:1.0.0'))!.id;
  assert.ok(await docker.images.find(v1Web));

  // --dry-run: lists what would go, with sizes; nothing changes.
  const filesBefore = storeFiles();
  const imagesBefore = await engineImages();
  const journalBefore = journalDump();
  const dry = await cli(['prune', '--keep', '2', '--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.stdout + dry.stderr);
  const plan = JSON.parse(dry.stdout) as PruneReport;
  assert.equal(plan.dryRun, true);
  assert.equal(plan.event, null);
  assert.deepEqual(plan.bundles.map((b) => b.version), ['1.0.0', '1.1.0']);
  assert.deepEqual(plan.kept.deployments.map((d) => [d.id, d.bundle, d.reason]), [
    [4, 'demo 1.3.0', 'current'],
    [3, 'demo 1.2.0', 'recent'],
  ]);
  for (const d of v1Only) assert.ok(plan.blobs.some((b) => b.digest === d), `dry run lists ${d}`);
  assert.ok(plan.blobs.every((b) => !kept.includes(b.digest)), 'no blob of a kept release is listed');
  assert.ok(plan.blobs.every((b) => b.size > 0));
  assert.deepEqual(plan.images.map((i) => i.refs).sort(), [['prunetest/web:1.0.0'], ['prunetest/web:1.1.0']]);
  assert.ok(plan.bytes.blobs > 0 && plan.bytes.total >= plan.bytes.blobs);
  const human = await cli(['prune', '--keep', '2', '--dry-run']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^dry run: nothing was changed$/m);
  assert.match(human.stdout, /stack web: #4 demo 1\.3\.0 \(running\), #3 demo 1\.2\.0 \(recent\)/);
  assert.match(human.stdout, /would remove the stored blobs of demo 1\.0\.0, demo 1\.1\.0/);
  assert.match(human.stdout, /prunetest\/web:1\.0\.0/);
  assert.match(human.stdout, /^would free .+ from the content store \(\d+ blobs\)/m);
  assert.deepEqual(storeFiles(), filesBefore);
  assert.deepEqual(await engineImages(), imagesBefore);
  assert.deepEqual(journalDump(), journalBefore);

  // The prune itself.
  const r = await cli(['prune', '--keep', '2', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const done = JSON.parse(r.stdout) as PruneReport;
  assert.equal(done.dryRun, false);
  assert.deepEqual(done.blobs.map((b) => b.digest), plan.blobs.map((b) => b.digest));
  assert.deepEqual(done.skipped, []);
  for (const d of v1Only) assert.ok(!storeHas(d), `${d}, which only v1 needed, is gone from the store`);
  for (const d of kept) assert.ok(storeHas(d), `${d} of v3/v4 stays`);
  assert.equal(await docker.images.find(v1Web), undefined, "v1's app image is gone from the engine");
  assert.equal(await docker.images.find('prunetest/web:1.0.0'), undefined);
  for (const v of ['1.2.0', '1.3.0']) assert.equal((await docker.images.inspect(`prunetest/web:${v}`)).Id, webImageOf(v));
  assert.ok(await docker.images.find('prunetest/base:1'), 'the base image every release shares stays');
  assert.equal(done.bytes.blobs, plan.bytes.blobs);
  assert.ok(done.bytes.images > 0, 'the engine freed layers');

  // Journal: bundle rows stay as history, their links go; one prune event with counts and bytes.
  const links = journal((j) => {
    const links = j.bundleBlobs();
    return j.bundles().map((b) => ({ version: b.version, n: links.filter((l) => l.bundle_id === b.id).length }));
  });
  assert.deepEqual(links.map((l) => [l.version, l.n > 0]), [['1.0.0', false], ['1.1.0', false], ['1.2.0', true], ['1.3.0', true]]);
  assert.equal(journal((j) => j.images().filter((i) => i.id === v1WebConfig).length), 0);
  const events = journal((j) => j.events({ kind: 'prune' }));
  assert.equal(events.length, 1);
  assert.equal(events[0]!.id, done.event);
  assert.equal(events[0]!.outcome, 'ok');
  const details = JSON.parse(events[0]!.details ?? '') as { keep: number; blobs: number; blobBytes: number; imageBytes: number; bytes: number; bundles: { version: string }[] };
  assert.equal(details.keep, 2);
  assert.equal(details.blobs, done.blobs.length);
  assert.equal(details.blobBytes, done.bytes.blobs);
  assert.equal(details.bytes, done.bytes.total);
  assert.deepEqual(details.bundles.map((b) => b.version), ['1.0.0', '1.1.0']);

  // A second prune finds nothing more.
  const again = JSON.parse((await cli(['prune', '--keep', '2', '--json'])).stdout) as PruneReport;
  assert.deepEqual([again.blobs.length, again.images.length, again.bundles.length, again.bytes.total], [0, 0, 0, 0]);

  // Rollback to a kept release works, even with its image gone from the engine: it loads from the kept blobs.
  await docker.images.delete('prunetest/web:1.2.0', { force: true });
  const back = await cli(['rollback', 'web', '--to', '1.2.0', '--json']);
  assert.equal(back.code, 0, back.stdout + back.stderr);
  assert.equal((await docker.services.inspect('web_web')).Spec.TaskTemplate?.ContainerSpec?.Image, 'prunetest/web:1.2.0');
  assert.equal((await docker.images.inspect('prunetest/web:1.2.0')).Id, webImageOf('1.2.0'));

  // Rollback to v1 fails: its image is gone from the engine and its blobs from the store. The
  // error names the missing blob (v1's image config, whose digest is the image id); the
  // deployment is journaled as failed and the stack keeps running what it ran.
  const gone = await cli(['rollback', 'web', '--to', '1.0.0', '--json']);
  assert.notEqual(gone.code, 0, gone.stdout + gone.stderr);
  const err = JSON.parse(gone.stdout) as { message: string };
  assert.match(err.message, new RegExp(v1WebConfig.slice('sha256:'.length)), err.message);
  assert.match(err.message, ROLLBACK_PRUNED, err.message);
  const last = journal((j) => j.deployments().slice(-1).map(({ kind, status, restores }) => ({ kind, status, restores }))[0]);
  assert.deepEqual(last, { kind: 'rollback', status: 'failed', restores: 1 });
  assert.equal((await docker.services.inspect('web_web')).Spec.TaskTemplate?.ContainerSpec?.Image, 'prunetest/web:1.2.0');

  // Importing v1 again brings its blobs back, and the rollback works; the next prune links them
  // to v1 again (it runs now) and drops v4, now third among the states the stack last ran.
  const reimport = await cli(['bundle', 'import', join(work.dir, 'out', 'demo-1.0.0.airlock'), '--trust', signer.trustDir, '--json']);
  assert.equal(reimport.code, 0, reimport.stdout + reimport.stderr);
  const v1Back = await cli(['rollback', 'web', '--to', '1.0.0', '--json']);
  assert.equal(v1Back.code, 0, v1Back.stdout + v1Back.stderr);
  assert.equal((await docker.services.inspect('web_web')).Spec.TaskTemplate?.ContainerSpec?.Image, 'prunetest/web:1.0.0');
  const third = JSON.parse((await cli(['prune', '--keep', '2', '--json'])).stdout) as PruneReport;
  assert.deepEqual(third.bundles.map((b) => b.version), ['1.3.0']);
  assert.ok(v1Only.every(storeHas));
  assert.ok(journal((j) => j.bundleBlobs().filter((l) => j.bundles().find((b) => b.id === l.bundle_id)?.version === '1.0.0').length) > 0);
});

/**
 * What a rollback to a pruned release says. Today rollback.ts reaches the missing blob
 * file (ENOENT on blobs/sha256/<image id>); with the pre-check src/retention/restorable.ts
 * offers, it says the image was pruned and names the bundle to import again.
 */
const ROLLBACK_PRUNED = /no such file or directory, open '.*\/blobs\/sha256\/[0-9a-f]{64}'|was pruned/;
