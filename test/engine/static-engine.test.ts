import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isAirlockError } from '../../src/errors/index.js';
import { engineHostPathsUnder } from '../../src/engine/host-paths.js';
import { currentEngine, staticVersions } from '../../src/engine/installed.js';
import { placeStaticEngine, switchCurrent } from '../../src/engine/static-engine.js';
import { tempDir } from '../helpers/fixtures.js';
import { staticEngineBlobs } from '../helpers/engine-host.js';

/** Two small engines whose "binaries" are files of their own bytes (placement is about files, not what they run). */
async function setup() {
  const t = await tempDir('airlock-engine-');
  const src = join(t.dir, 'src');
  await mkdir(src);
  for (const v of ['1.0', '2.0']) {
    await mkdir(join(src, v));
    for (const n of ['containerd', 'containerd-shim-runc-v2', 'ctr', 'docker', 'docker-init', 'docker-proxy', 'dockerd', 'runc']) {
      await writeFile(join(src, v, n), `#!/bin/sh\necho ${n} ${v}\n`, { mode: 0o755 });
    }
  }
  const paths = engineHostPathsUnder(join(t.dir, 'root'));
  const one = await staticEngineBlobs('1.0', join(t.dir, 'blobs'), (n) => join(src, '1.0', n));
  const two = await staticEngineBlobs('2.0', join(t.dir, 'blobs'), (n) => join(src, '2.0', n));
  return { t, paths, one, two };
}

const reasonOf = (reason: string) => (e: unknown) => isAirlockError(e) && e.reason === reason;

test('placing a static engine copies its 8 binaries with their modes, and a second placing changes nothing', async () => {
  const { t, paths, one } = await setup();
  try {
    const first = await placeStaticEngine(one.record, one.blobPath, paths);
    assert.equal(first.outcome, 'placed');
    const names = (await readdir(first.dir)).sort();
    assert.deepEqual(names, ['containerd', 'containerd-shim-runc-v2', 'ctr', 'docker', 'docker-init', 'docker-proxy', 'dockerd', 'engine.json', 'runc']);
    assert.equal((await stat(join(first.dir, 'dockerd'))).mode & 0o777, 0o755);
    assert.equal(await readFile(join(first.dir, 'dockerd'), 'utf8'), '#!/bin/sh\necho dockerd 1.0\n');
    const before = (await stat(join(first.dir, 'dockerd'))).mtimeMs;
    assert.equal((await placeStaticEngine(one.record, one.blobPath, paths)).outcome, 'unchanged');
    assert.equal((await stat(join(first.dir, 'dockerd'))).mtimeMs, before);
    assert.deepEqual(await staticVersions(paths), ['1.0']);
  } finally {
    await t.cleanup();
  }
});

test('what a crash left half-copied (<version>.tmp) is never a version, and the next placing replaces it', async () => {
  const { t, paths, one } = await setup();
  try {
    await mkdir(join(paths.engineDir, '1.0.tmp'), { recursive: true });
    await writeFile(join(paths.engineDir, '1.0.tmp', 'dockerd'), 'half');
    assert.deepEqual(await staticVersions(paths), []);
    assert.equal((await placeStaticEngine(one.record, one.blobPath, paths)).outcome, 'placed');
    assert.deepEqual(await readdir(paths.engineDir), ['1.0']);
  } finally {
    await t.cleanup();
  }
});

test('a version folder that holds other bytes than the record is replaced', async () => {
  const { t, paths, one } = await setup();
  try {
    const { dir } = await placeStaticEngine(one.record, one.blobPath, paths);
    await writeFile(join(dir, 'runc'), 'tampered', { mode: 0o755 });
    assert.equal((await placeStaticEngine(one.record, one.blobPath, paths)).outcome, 'replaced');
    assert.equal(await readFile(join(dir, 'runc'), 'utf8'), '#!/bin/sh\necho runc 1.0\n');
    assert.deepEqual(await readdir(paths.engineDir), ['1.0']);
  } finally {
    await t.cleanup();
  }
});

test('a blob whose bytes are not the recorded ones is refused and leaves no folder behind', async () => {
  const { t, paths, one } = await setup();
  try {
    const runc = one.record.files.find((f) => f.path === 'runc')!;
    await writeFile(one.blobPath(runc.digest), '#!/bin/sh\necho runc 6.6\n');
    await assert.rejects(placeStaticEngine(one.record, one.blobPath, paths), (e: unknown) => {
      assert.ok(isAirlockError(e) && e.reason === 'hash-mismatch' && e.exitCode === 11, String(e));
      assert.match(e.message, /'runc'/);
      assert.equal(e.subject, 'runc');
      return true;
    });
    assert.deepEqual(await readdir(paths.engineDir), []);
    assert.deepEqual(await staticVersions(paths), []);
  } finally {
    await t.cleanup();
  }
});

test('a record that names a file outside the static archive, or lacks one, is refused before anything is written', async () => {
  const { t, paths, one } = await setup();
  try {
    const extra = { ...one.record, files: [...one.record.files, { ...one.record.files[0]!, path: '../evil' }] };
    await assert.rejects(placeStaticEngine(extra, one.blobPath, paths), reasonOf('extra-entry'));
    const lacking = { ...one.record, files: one.record.files.filter((f) => f.path !== 'dockerd') };
    await assert.rejects(placeStaticEngine(lacking, one.blobPath, paths), reasonOf('missing-entry'));
    await assert.rejects(placeStaticEngine({ ...one.record, version: '../1.0' }, one.blobPath, paths), reasonOf('bad-engine-version'));
    await assert.rejects(lstat(paths.engineDir), { code: 'ENOENT' });
  } finally {
    await t.cleanup();
  }
});

test('switching current is a link swap that returns the previous version, and the CLI link follows current', async () => {
  const { t, paths, one, two } = await setup();
  try {
    await placeStaticEngine(one.record, one.blobPath, paths);
    await placeStaticEngine(two.record, two.blobPath, paths);
    assert.equal(await currentEngine(paths), undefined);
    assert.deepEqual(await switchCurrent(paths, '1.0'), { previous: undefined, changed: true });
    assert.equal(await readlink(paths.currentLink), '1.0');
    assert.equal(await readlink(paths.cliLink), join(paths.currentLink, 'docker'));
    assert.deepEqual(await currentEngine(paths), { form: 'static', version: '1.0', dir: join(paths.engineDir, '1.0') });
    assert.deepEqual(await switchCurrent(paths, '1.0'), { previous: '1.0', changed: false });
    assert.deepEqual(await switchCurrent(paths, '2.0'), { previous: '1.0', changed: true });
    assert.equal(await readFile(paths.cliLink, 'utf8'), '#!/bin/sh\necho docker 2.0\n');
    assert.deepEqual(await switchCurrent(paths, '1.0'), { previous: '2.0', changed: true });
    assert.deepEqual(await staticVersions(paths), ['1.0', '2.0']);
    // Nothing left from the swaps.
    assert.deepEqual((await readdir(paths.engineDir)).sort(), ['1.0', '2.0', 'current']);
    await assert.rejects(switchCurrent(paths, '3.0'), reasonOf('engine-version-missing'));
  } finally {
    await t.cleanup();
  }
});

test('a file planted as current, a link planted as a version folder, or a current leading outside is refused, and left as it is', async () => {
  const { t, paths, one } = await setup();
  try {
    await placeStaticEngine(one.record, one.blobPath, paths);
    await writeFile(paths.currentLink, 'planted');
    await assert.rejects(switchCurrent(paths, '1.0'), (e: unknown) => reasonOf('engine-layout-unsafe')(e) && (e as Error).message.includes(paths.currentLink));
    assert.equal(await readFile(paths.currentLink, 'utf8'), 'planted');
    await assert.rejects(currentEngine(paths), reasonOf('engine-layout-unsafe'));

    await rm(paths.currentLink);
    await mkdir(join(t.dir, 'elsewhere'));
    await symlink(join(t.dir, 'elsewhere'), paths.currentLink);
    await assert.rejects(switchCurrent(paths, '1.0'), reasonOf('engine-layout-unsafe'));
    assert.equal(await readlink(paths.currentLink), join(t.dir, 'elsewhere'));

    await rm(paths.currentLink);
    await symlink(join(t.dir, 'elsewhere'), join(paths.engineDir, '9.9'));
    await assert.rejects(switchCurrent(paths, '9.9'), reasonOf('engine-layout-unsafe'));
    await assert.rejects(lstat(paths.currentLink), { code: 'ENOENT' });
    // A placing over the planted link refuses too rather than writing through it.
    await assert.rejects(placeStaticEngine({ ...one.record, version: '9.9' }, one.blobPath, paths), reasonOf('engine-layout-unsafe'));
    assert.deepEqual(await readdir(join(t.dir, 'elsewhere')), []);
  } finally {
    await t.cleanup();
  }
});

test('a docker CLI that is a file of its own is kept aside when the CLI link is made', async () => {
  const { t, paths, one } = await setup();
  try {
    await placeStaticEngine(one.record, one.blobPath, paths);
    await mkdir(join(paths.cliLink, '..'), { recursive: true });
    await writeFile(paths.cliLink, 'their docker');
    const r = await switchCurrent(paths, '1.0');
    assert.ok(r.savedCli?.startsWith(`${paths.cliLink}.airlock-saved-`), JSON.stringify(r));
    assert.equal(await readFile(r.savedCli!, 'utf8'), 'their docker');
    assert.equal(await readlink(paths.cliLink), join(paths.currentLink, 'docker'));
  } finally {
    await t.cleanup();
  }
});
