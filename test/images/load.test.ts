import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import YAML from 'yaml';
import { join } from 'node:path';
import { readJournal } from '../helpers/journal-read.js';
import { makeProject, makeSigner, runCli, spawnCli, tempDir, type Signer } from '../helpers/fixtures.js';
import { PrivateDaemon } from '../helpers/dockerd.js';
import { engineImageId } from '../helpers/engines.js';
import { archiveImageIds, sha256File } from '../helpers/images.js';
import { Bundle } from '../helpers/tamper.js';
import { loadPrivateKey } from '../../src/trust/keys.js';

// One engine of this file's own: it starts empty, and one test kills it.
let work: { dir: string; cleanup: () => Promise<void> };
let daemon: PrivateDaemon;
let signer: Signer;

before(async () => {
  work = await tempDir('airlock-load-');
  daemon = new PrivateDaemon(join(work.dir, 'engine'));
  await daemon.start();
  signer = await makeSigner(work.dir);
});

after(async () => {
  await daemon.destroy();
  await work.cleanup();
});

async function bundle(version: string, bulkBytes?: number): Promise<{ file: string; project: string }> {
  const project = join(work.dir, `p-${version}`);
  await mkdir(project, { recursive: true });
  const def = await makeProject(project, { version, repo: 'loadtest', ...(bulkBytes ? { bulkBytes } : {}) });
  const r = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(work.dir, 'out'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  return { file: (JSON.parse(r.stdout) as { path: string }).path, project };
}

/** ref → the id the engine under test shows for that image of the bundle (test/helpers/engines.ts). */
async function engineIdsOf(file: string): Promise<Map<string, string>> {
  const m = (await Bundle.from(await readFile(file))).manifest;
  return new Map(m.images.flatMap((i) => i.refs.map((r) => [r, engineImageId(i)] as const)));
}

const importArgs = (file: string, state: string) => ['bundle', 'import', file, '--state', state, '--trust', signer.trustDir, '--json'];

interface ImportJson {
  images: { loaded: string[]; present: string[]; tagged: string[]; platform: string };
}

test('import loads the images into an engine that lacks them, with the ids and layers docker save wrote', async () => {
  const { file, project } = await bundle('1.0.0');
  const state = join(work.dir, 'state-a');
  const docker = daemon.client();
  try {
    assert.equal(await docker.images.find('loadtest/web:1.0.0'), undefined);
    const r = await runCli(importArgs(file, state), { DOCKER_HOST: daemon.dockerHost });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const out = JSON.parse(r.stdout) as ImportJson;
    assert.deepEqual(out.images.loaded.sort(), ['loadtest/base:1', 'loadtest/web:1.0.0']);

    const expected = await archiveImageIds(join(project, 'images', 'demo.tar'));
    const engineIds = await engineIdsOf(file);
    const base = await sha256File(join(project, 'images', 'base.tar'));
    const app = await sha256File(join(project, 'images', 'app.tar'));
    const web = await docker.images.inspect('loadtest/web:1.0.0');
    assert.equal(web.Id, engineIds.get('loadtest/web:1.0.0'));
    assert.deepEqual(web.RootFS.Layers, [base, app]);
    assert.equal((await docker.images.inspect('loadtest/base:1')).Id, engineIds.get('loadtest/base:1'));

    readJournal(state, (j) => {
      const rows = j.images().sort((a, b) => (a.refs < b.refs ? -1 : a.refs > b.refs ? 1 : 0));
      assert.deepEqual(rows.map((r) => [(JSON.parse(r.refs) as string[])[0], r.id]), [
        ['loadtest/base:1', expected.get('loadtest/base:1')],
        ['loadtest/web:1.0.0', expected.get('loadtest/web:1.0.0')],
      ]);
    });

    // Importing again loads nothing: both images are there with the right ids.
    const again = await runCli(importArgs(file, state), { DOCKER_HOST: daemon.dockerHost });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual((JSON.parse(again.stdout) as ImportJson).images, { loaded: [], tagged: [], present: ['loadtest/base:1', 'loadtest/web:1.0.0'], platform: 'linux/amd64' });

    // An image still in the engine under another name only needs its tag back.
    await docker.images.tag('loadtest/base:1', 'keep/base', '1');
    await docker.images.delete('loadtest/base:1');
    const retag = await runCli(importArgs(file, state), { DOCKER_HOST: daemon.dockerHost });
    assert.deepEqual((JSON.parse(retag.stdout) as ImportJson).images.tagged, ['loadtest/base:1']);
    assert.equal((await docker.images.inspect('loadtest/base:1')).Id, engineIds.get('loadtest/base:1'));

    // The next release's layers partly come from this one, already in the content store:
    // with the engine emptied, they still load complete.
    for (const ref of ['loadtest/web:1.0.0', 'loadtest/base:1', 'keep/base:1']) await docker.images.delete(ref);
    const next = await bundle('1.1.0');
    const upgrade = await runCli(importArgs(next.file, state), { DOCKER_HOST: daemon.dockerHost });
    assert.equal(upgrade.code, 0, upgrade.stderr + upgrade.stdout);
    const up = JSON.parse(upgrade.stdout) as ImportJson & { newBlobs: number; blobs: number };
    assert.ok(up.newBlobs < up.blobs, 'the base layer was already stored');
    assert.deepEqual(up.images.loaded.sort(), ['loadtest/base:1', 'loadtest/web:1.1.0']);
    assert.deepEqual((await docker.images.inspect('loadtest/web:1.1.0')).RootFS.Layers, [base, await sha256File(join(next.project, 'images', 'app.tar'))]);
  } finally {
    await docker.close();
  }
});

test('a daemon killed during a load: a clear error, nothing recorded as loaded, success once it is back', async () => {
  const { file } = await bundle('2.0.0', 256 * 1024 * 1024);
  const state = join(work.dir, 'state-b');
  const child = spawnCli(importArgs(file, state), {
    env: { ...process.env, DOCKER_HOST: daemon.dockerHost }
  });
  let stdout = '';
  let stderr = '';
  let killed = false;
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d;
    // Plain progress lines (not a TTY): kill the engine once the upload is under way.
    if (!killed && /^load: \d+%/m.test(stderr)) {
      killed = true;
      void daemon.kill();
    }
  });
  const code = await new Promise<number>((res) => child.on('close', (c) => res(c ?? -1)));
  assert.ok(killed, `the load never started: ${stderr}`);
  assert.equal(code, 15, stdout + stderr);
  const err = JSON.parse(stdout) as { error: string; reason: string; message: string };
  assert.equal(err.error, 'engine');
  assert.match(err.message, /engine|daemon|connection|socket/i);

  readJournal(state, (j) => {
    assert.deepEqual(j.images(), []);
    const events = j.events().map(({ kind, outcome }) => ({ kind, outcome }));
    assert.deepEqual(events, [
      { kind: 'bundle.import', outcome: 'ok' },
      { kind: 'images.load', outcome: 'failed' },
    ]);
  });

  await daemon.start();
  const retry = await runCli(importArgs(file, state), { DOCKER_HOST: daemon.dockerHost });
  assert.equal(retry.code, 0, retry.stderr + retry.stdout);
  assert.ok((JSON.parse(retry.stdout) as ImportJson).images.loaded.includes('loadtest/web:2.0.0'));
  const docker = daemon.client();
  try {
    const layers = (await docker.images.inspect('loadtest/web:2.0.0')).RootFS.Layers ?? [];
    assert.equal(layers.length, 3);
  } finally {
    await docker.close();
  }
});

test('build takes images the archives lack from the local engine, and they load back with the same ids', async () => {
  const { file, project } = await bundle('3.0.0');
  const expected = await archiveImageIds(join(project, 'images', 'demo.tar'));
  const docker = daemon.client();
  try {
    // Put the images into the engine, then build a bundle that names no image archive.
    const state = join(work.dir, 'state-c');
    assert.equal((await runCli(importArgs(file, state), { DOCKER_HOST: daemon.dockerHost })).code, 0);
    const defFile = join(project, 'engine.yaml');
    await writeFile(defFile, YAML.stringify({ name: 'fromengine', version: '1.0.0', stacks: [{ name: 'web', compose: 'docker-compose.yml' }] }));
    const built = await runCli(['bundle', 'build', '-f', defFile, '--key', signer.keyPath, '-o', join(work.dir, 'out'), '--json'], { DOCKER_HOST: daemon.dockerHost });
    assert.equal(built.code, 0, built.stderr);
    const path = (JSON.parse(built.stdout) as { path: string }).path;
    const inspect = JSON.parse((await runCli(['bundle', 'inspect', path, '--trust', signer.trustDir, '--json'])).stdout) as {
      manifest: { images: { refs: string[]; id: string }[] };
    };
    assert.deepEqual(
      inspect.manifest.images.map((i) => [i.refs[0], i.id]),
      [
        ['loadtest/base:1', expected.get('loadtest/base:1')],
        ['loadtest/web:3.0.0', expected.get('loadtest/web:3.0.0')],
      ],
    );

    await docker.images.delete('loadtest/web:3.0.0');
    await docker.images.delete('loadtest/base:1');
    const r = await runCli(importArgs(path, join(work.dir, 'state-d')), { DOCKER_HOST: daemon.dockerHost });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal((await docker.images.inspect('loadtest/web:3.0.0')).Id, (await engineIdsOf(path)).get('loadtest/web:3.0.0'));

    // An image in neither place is named.
    await writeFile(defFile, YAML.stringify({ name: 'fromengine', version: '1.0.1', images: ['loadtest/nothere:1'] }));
    const missing = await runCli(['bundle', 'build', '-f', defFile, '--key', signer.keyPath, '-o', join(work.dir, 'out')], { DOCKER_HOST: daemon.dockerHost });
    assert.equal(missing.code, 4);
    assert.match(missing.stderr, /image loadtest\/nothere:1 is in none of the image archives nor in the local Docker Engine/);
  } finally {
    await docker.close();
  }
});

test('an image whose layers do not match its manifest is refused before anything is loaded', async () => {
  const { file } = await bundle('4.0.0');
  const key = await loadPrivateKey(signer.keyPath);
  const good = await Bundle.from(await readFile(file));
  const m = good.manifest;
  const web = m.images.find((i) => i.refs[0] === 'loadtest/web:4.0.0')!;

  // 1. The manifest's diff id disagrees with the uncompressed layer: refused when verified, nothing stored.
  const lying = structuredClone(m);
  lying.images.find((i) => i.id === web.id)!.layers[1]!.diffId = `sha256:${'0'.repeat(64)}`;
  const bad1 = join(work.dir, 'bad-diffid.airlock');
  await writeFile(bad1, good.resign(lying, key).pack());
  const state1 = join(work.dir, 'state-e');
  const r1 = await runCli(importArgs(bad1, state1), { DOCKER_HOST: daemon.dockerHost });
  assert.equal(r1.code, 11, r1.stdout + r1.stderr);
  assert.equal((JSON.parse(r1.stdout) as { reason: string }).reason, 'layer-mismatch');
  assert.match((JSON.parse(r1.stdout) as { message: string }).message, /loadtest\/web:4\.0\.0 layer sha256:[0-9a-f]{64} is an uncompressed tar, but its diff id is sha256:0{64}/);

  // 2. The image config lists other layers than the manifest: stored (every blob is genuine),
  //    but refused before the load, and the engine never sees it.
  const configEntry = good.entry(`blobs/sha256/${web.config.digest.slice(7)}`);
  const config = JSON.parse(configEntry.data.toString()) as { rootfs: { diff_ids: string[] } };
  config.rootfs.diff_ids = [config.rootfs.diff_ids[1]!, config.rootfs.diff_ids[0]!];
  const newConfig = Buffer.from(JSON.stringify(config));
  const digest = `sha256:${createHash('sha256').update(newConfig).digest('hex')}`;
  const swapped = structuredClone(m);
  const img = swapped.images.find((i) => i.id === web.id)!;
  img.id = digest;
  img.config = { digest, size: newConfig.length };
  swapped.blobs = [...swapped.blobs, { digest, size: newConfig.length, kind: 'image-config' as const, encoding: 'identity' as const }].sort((a, b) => (a.digest < b.digest ? -1 : 1));
  const names = swapped.blobs.map((b) => `blobs/sha256/${b.digest.slice(7)}`);
  const entries = [good.entry('manifest.json'), good.entry('manifest.sig'), ...names.map((n) => (n.endsWith(digest.slice(7)) ? { ...configEntry, name: n, data: newConfig } : good.entry(n)))];
  const bad2 = join(work.dir, 'bad-config.airlock');
  await writeFile(bad2, good.with(entries).resign(swapped, key).pack());
  const state2 = join(work.dir, 'state-f');
  const r2 = await runCli(importArgs(bad2, state2), { DOCKER_HOST: daemon.dockerHost });
  assert.equal(r2.code, 11, r2.stdout + r2.stderr);
  const err2 = JSON.parse(r2.stdout) as { reason: string; message: string };
  assert.equal(err2.reason, 'layer-mismatch');
  assert.match(err2.message, /image loadtest\/web:4\.0\.0: its config lists layers/);
  const docker = daemon.client();
  try {
    assert.equal(await docker.images.find('loadtest/web:4.0.0'), undefined);
  } finally {
    await docker.close();
  }
  readJournal(state2, (j) => {
    assert.deepEqual(j.images(), []);
    assert.deepEqual(j.events({ kind: 'images.load' }).map(({ outcome, reason }) => ({ outcome, reason })), [{ outcome: 'refused', reason: 'layer-mismatch' }]);
  });
});
