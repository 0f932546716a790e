import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import YAML from 'yaml';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CLI, makeProject, makeSigner, runCli, tempDir, type Signer } from '../helpers/fixtures.js';
import { PrivateDaemon } from '../helpers/dockerd.js';
import { archiveImageIds, sha256File } from '../helpers/images.js';

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

const importArgs = (file: string, state: string) => ['bundle', 'import', file, '--state', state, '--trust', signer.trustDir, '--json'];

interface ImportJson {
  images: { loaded: string[]; present: string[]; tagged: string[] };
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
    const base = await sha256File(join(project, 'images', 'base.tar'));
    const app = await sha256File(join(project, 'images', 'app.tar'));
    const web = await docker.images.inspect('loadtest/web:1.0.0');
    assert.equal(web.Id, expected.get('loadtest/web:1.0.0'));
    assert.deepEqual(web.RootFS.Layers, [base, app]);
    assert.equal((await docker.images.inspect('loadtest/base:1')).Id, expected.get('loadtest/base:1'));

    const db = new Database(join(state, 'journal.db'), { readonly: true });
    try {
      const rows = db.prepare('SELECT id, refs FROM images ORDER BY refs').all() as { id: string; refs: string }[];
      assert.deepEqual(rows.map((r) => [JSON.parse(r.refs)[0], r.id]), [
        ['loadtest/base:1', expected.get('loadtest/base:1')],
        ['loadtest/web:1.0.0', expected.get('loadtest/web:1.0.0')],
      ]);
    } finally {
      db.close();
    }

    // Importing again loads nothing: both images are there with the right ids.
    const again = await runCli(importArgs(file, state), { DOCKER_HOST: daemon.dockerHost });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual((JSON.parse(again.stdout) as ImportJson).images, { loaded: [], tagged: [], present: ['loadtest/base:1', 'loadtest/web:1.0.0'] });

    // An image still in the engine under another name only needs its tag back.
    await docker.images.tag('loadtest/base:1', 'keep/base', '1');
    await docker.images.delete('loadtest/base:1');
    const retag = await runCli(importArgs(file, state), { DOCKER_HOST: daemon.dockerHost });
    assert.deepEqual((JSON.parse(retag.stdout) as ImportJson).images.tagged, ['loadtest/base:1']);
    assert.equal((await docker.images.inspect('loadtest/base:1')).Id, expected.get('loadtest/base:1'));

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
  const child = spawn(process.execPath, [CLI, ...importArgs(file, state)], {
    env: { ...process.env, DOCKER_HOST: daemon.dockerHost },
    stdio: ['ignore', 'pipe', 'pipe'],
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

  const db = new Database(join(state, 'journal.db'), { readonly: true });
  try {
    assert.deepEqual(db.prepare('SELECT * FROM images').all(), []);
    const events = db.prepare("SELECT kind, outcome FROM events ORDER BY id").all();
    assert.deepEqual(events, [
      { kind: 'bundle.import', outcome: 'ok' },
      { kind: 'images.load', outcome: 'failed' },
    ]);
  } finally {
    db.close();
  }

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
    assert.equal((await docker.images.inspect('loadtest/web:3.0.0')).Id, expected.get('loadtest/web:3.0.0'));

    // An image in neither place is named.
    await writeFile(defFile, YAML.stringify({ name: 'fromengine', version: '1.0.1', images: ['loadtest/nothere:1'] }));
    const missing = await runCli(['bundle', 'build', '-f', defFile, '--key', signer.keyPath, '-o', join(work.dir, 'out')], { DOCKER_HOST: daemon.dockerHost });
    assert.equal(missing.code, 4);
    assert.match(missing.stderr, /image loadtest\/nothere:1 is in none of the image archives nor in the local Docker Engine/);
  } finally {
    await docker.close();
  }
});
