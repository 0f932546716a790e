/**
 * Delta bundles (issue 9): `bundle build --since OLD` leaves out every blob
 * the earlier bundle named. Real bundles on disk, the real CLI, real SQLite
 * and a dockerd of this file's own for the load check.
 *
 * The test app has a shared busybox base layer and a small app layer; v2
 * changes only the app layer (and the compose and env files, which name
 * the version).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { readdir, readFile, rm, stat, truncate, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeSigner, runCli, tempDir, type Signer } from '../helpers/fixtures.js';
import { PrivateDaemon } from '../helpers/dockerd.js';
import { archiveImageIds, sha256File } from '../helpers/images.js';
import { Bundle, fileEntry } from '../helpers/tamper.js';
import { DeltaBench, EPOCH, MiB, entries, journal, manifestOf, sha, storeListing } from '../helpers/delta.js';
import { loadPrivateKey } from '../../src/trust/keys.js';
import { blobEntryName, type BundleBaseRef, type Manifest } from '../../src/bundle/manifest.js';
import { engineImageId } from '../helpers/engines.js';

const REPO_PREFIX = 'deltatest';

let work: { dir: string; cleanup: () => Promise<void> };
let daemon: PrivateDaemon;
let signer: Signer;
let key: KeyObject;
let bench: DeltaBench;
/** Project folders and bundles of v1, v2 and v3 (v3 changes the app layer again). */
const p = { v1: '', v2: '', v3: '' };
const b = { full1: '', full2: '', delta: '', deltaFromManifest: '', manifestFile: '' };

const project = (version: string) => bench.project(version);
const build = (projectDir: string, out: string, extra: string[] = []) => bench.build(projectDir, out, extra);
const importArgs = (file: string, state: string, ...extra: string[]) => bench.importArgs(file, state, ...extra);

before(async () => {
  work = await tempDir('airlock-delta-');
  daemon = new PrivateDaemon(join(work.dir, 'engine'));
  await daemon.start();
  signer = await makeSigner(work.dir);
  key = await loadPrivateKey(signer.keyPath);
  bench = new DeltaBench(work.dir, signer, REPO_PREFIX);
  p.v1 = await project('1.0.0');
  p.v2 = await project('1.1.0');
  p.v3 = await project('1.2.0');
  b.full1 = await build(p.v1, 'full');
  b.full2 = await build(p.v2, 'full');
  b.delta = await build(p.v2, 'delta', ['--since', b.full1, '--trust', signer.trustDir]);
  const inspect = await runCli(['bundle', 'inspect', b.full1, '--manifest']);
  assert.equal(inspect.code, 0, inspect.stderr);
  b.manifestFile = join(work.dir, 'demo-1.0.0.manifest.json');
  await writeFile(b.manifestFile, inspect.stdout);
  b.deltaFromManifest = await build(p.v2, 'delta-m', ['--since', b.manifestFile]);
});

after(async () => {
  await daemon?.destroy();
  await work?.cleanup();
});

test('a delta carries only the changed app layer, image config and manifest, and stack files; its manifest names the base and every blob', async () => {
  const full1 = await manifestOf(b.full1);
  const full2 = await manifestOf(b.full2);
  const delta = await manifestOf(b.delta);
  const web2 = full2.manifest.images.find((i) => i.refs[0] === `${REPO_PREFIX}/web:1.1.0`)!;

  // Exactly what changed between v1 and v2, in the manifest's (digest) order.
  const changed = [
    await sha256File(join(p.v2, 'images', 'app.tar')),
    web2.config.digest,
    web2.manifest.digest,
    sha(await readFile(join(p.v2, 'docker-compose.yml'))),
    sha(await readFile(join(p.v2, 'web.env'))),
  ].sort();
  const names = (await entries(b.delta)).map((e) => e.name);
  assert.deepEqual(names, ['manifest.json', 'manifest.sig', ...changed.map(blobEntryName)]);

  // Left out: the busybox layer, the base image's config and manifest, the unchanged extra file.
  const inFull1 = new Set(full1.manifest.blobs.map((x) => x.digest));
  const shared = full2.manifest.blobs.filter((x) => inFull1.has(x.digest));
  assert.deepEqual(shared.map((x) => x.kind).sort(), ['file', 'image-config', 'image-manifest', 'layer']);
  assert.ok(shared.some((x) => x.digest === full1.manifest.images[0]!.layers[0]!.digest));

  const m = delta.manifest;
  assert.equal(m.format, 'airlock.bundle.v2');
  assert.deepEqual(m.requires, ['delta']);
  assert.deepEqual(m.base, { name: 'demo', version: '1.0.0', manifestDigest: sha(full1.bytes) });
  // Every blob the release needs is named, with the full bundle's digest, size and kind; the shared ones as not carried.
  assert.deepEqual(
    m.blobs.map((x) => [x.digest, x.size, x.kind, x.carried ?? true]),
    full2.manifest.blobs.map((x) => [x.digest, x.size, x.kind, !inFull1.has(x.digest)]),
  );
  assert.ok(m.blobs.filter((x) => x.carried === false).every((x) => x.encoding === undefined && x.stored === undefined));
  assert.deepEqual([m.stacks, m.images, m.files], [full2.manifest.stacks, full2.manifest.images, full2.manifest.files]);
  // A full bundle names no base and requires no delta support (only zstd, which auto compressed with).
  assert.equal(full2.manifest.format, 'airlock.bundle.v2');
  assert.equal(full2.manifest.base, undefined);
  assert.deepEqual(full2.manifest.requires, ['zstd']);
  const sizes = [(await stat(b.delta)).size, (await stat(b.full2)).size];
  assert.ok(sizes[0]! * 20 < sizes[1]!, `delta ${sizes[0]} vs full ${sizes[1]}`);
});

test('--since a manifest file (bundle inspect --manifest, pretty-printed, or inspect --json) builds the same delta as --since the bundle', async () => {
  assert.equal(await sha256File(b.deltaFromManifest), await sha256File(b.delta));
  const raw = await readFile(b.manifestFile, 'utf8');
  assert.equal(sha(Buffer.from(raw.trimEnd())), ((await manifestOf(b.delta)).manifest.base as BundleBaseRef).manifestDigest);

  const pretty = join(work.dir, 'pretty.json');
  await writeFile(pretty, JSON.stringify(JSON.parse(raw), null, 2));
  assert.equal(await sha256File(await build(p.v2, 'delta-pretty', ['--since', pretty])), await sha256File(b.delta));

  const inspected = await runCli(['bundle', 'inspect', b.full1, '--json']);
  const asJson = join(work.dir, 'inspect.json');
  await writeFile(asJson, inspected.stdout);
  assert.equal(await sha256File(await build(p.v2, 'delta-inspect', ['--since', asJson])), await sha256File(b.delta));
});

test('bundle inspect and build say that a bundle is a delta, and of what', async () => {
  const human = await runCli(['bundle', 'inspect', b.delta, '--trust', signer.trustDir]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /signature valid/);
  assert.match(human.stdout, /^content   .* in 5 blobs/m);
  assert.match(human.stdout, /^delta     of demo 1\.0\.0 \(manifest [0-9a-f]{12}\): relies on 4 blobs \(\d+\.\d MiB\) the host must hold already$/m);
  const full = await runCli(['bundle', 'inspect', b.full2]);
  assert.doesNotMatch(full.stdout, /^delta     of/m);

  const json = JSON.parse((await runCli(['bundle', 'inspect', b.delta, '--json'])).stdout) as {
    delta: { base: { name: string; version: string }; carried: { blobs: number }; fromBase: { blobs: number; bytes: number } };
  };
  assert.deepEqual([json.delta.base.name, json.delta.base.version, json.delta.carried.blobs, json.delta.fromBase.blobs], ['demo', '1.0.0', 5, 4]);
  assert.equal(JSON.parse((await runCli(['bundle', 'inspect', b.full2, '--json'])).stdout).delta, null);

  const built = await runCli(['bundle', 'build', '-f', join(p.v2, 'bundle.yaml'), '--key', signer.keyPath, '-o', join(work.dir, 'delta-json'), '--json', '--since', b.full1], EPOCH);
  const r = JSON.parse(built.stdout) as { delta: { baseRead: string; baseSignatureChecked: boolean; fromBase: { blobs: number } } };
  assert.deepEqual([r.delta.baseRead, r.delta.baseSignatureChecked, r.delta.fromBase.blobs], ['bundle', false, 4]);
});

test('imported after v1, the delta loads the same engine images as a full v2 import', async () => {
  const docker = daemon.client();
  try {
    // v1's blobs only stored, not loaded: the engine starts without the base layer, so the
    // load proves the archive is assembled whole from the content store.
    const stateA = join(work.dir, 'state-a');
    const v1 = await runCli(importArgs(b.full1, stateA, '--no-load'));
    assert.equal(v1.code, 0, v1.stderr + v1.stdout);
    assert.equal(await docker.images.find(`${REPO_PREFIX}/base:1`), undefined);
    const before = await storeListing(stateA);

    const r = await runCli(importArgs(b.delta, stateA), { DOCKER_HOST: daemon.dockerHost });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const out = JSON.parse(r.stdout) as { newBlobs: number; blobs: number; delta: { base: { name: string; version: string }; baseBlobs: number }; images: { loaded: string[] } };
    assert.equal(out.newBlobs, 5);
    assert.equal(out.blobs, 9);
    assert.deepEqual([out.delta.base.name, out.delta.base.version, out.delta.baseBlobs], ['demo', '1.0.0', 4]);
    assert.deepEqual(out.images.loaded.sort(), [`${REPO_PREFIX}/base:1`, `${REPO_PREFIX}/web:1.1.0`]);
    const after = await storeListing(stateA);
    for (const [hex, s] of before) assert.deepEqual(after.get(hex), s, 'base blobs untouched');

    const viaDelta = {
      web: await docker.images.inspect(`${REPO_PREFIX}/web:1.1.0`),
      base: await docker.images.inspect(`${REPO_PREFIX}/base:1`),
    };
    const expected = await archiveImageIds(join(p.v2, 'images', 'demo.tar'));
    const record = (await Bundle.from(await readFile(b.delta))).manifest.images.find((i) => i.refs.includes(`${REPO_PREFIX}/web:1.1.0`))!;
    assert.equal(record.id, expected.get(`${REPO_PREFIX}/web:1.1.0`));
    assert.equal(viaDelta.web.Id, engineImageId(record));
    assert.deepEqual(viaDelta.web.RootFS.Layers, [await sha256File(join(p.v2, 'images', 'base.tar')), await sha256File(join(p.v2, 'images', 'app.tar'))]);

    // The delta's bundle record links every blob it needs, carried or not, so retention keeps the base's.
    const j = journal(stateA);
    try {
      const rows = j.bundles();
      assert.deepEqual(rows.map((x) => x.version), ['1.0.0', '1.1.0']);
      const m = (await manifestOf(b.delta)).manifest;
      assert.deepEqual(j.links(rows[1]!.id), m.blobs.map((x) => x.digest));
      assert.deepEqual(j.events().map((e) => e.outcome), ['ok', 'ok']);
    } finally {
      j.close();
    }

    // The same release as a full bundle, into an engine without these images.
    for (const ref of [`${REPO_PREFIX}/web:1.1.0`, `${REPO_PREFIX}/base:1`]) await docker.images.delete(ref, { force: true });
    assert.equal(await docker.images.find(`${REPO_PREFIX}/web:1.1.0`), undefined);
    const full = await runCli(importArgs(b.full2, join(work.dir, 'state-b')), { DOCKER_HOST: daemon.dockerHost });
    assert.equal(full.code, 0, full.stderr + full.stdout);
    const viaFull = {
      web: await docker.images.inspect(`${REPO_PREFIX}/web:1.1.0`),
      base: await docker.images.inspect(`${REPO_PREFIX}/base:1`),
    };
    assert.deepEqual([viaFull.web.Id, viaFull.web.RootFS.Layers, viaFull.base.Id], [viaDelta.web.Id, viaDelta.web.RootFS.Layers, viaDelta.base.Id]);
  } finally {
    await docker.close();
  }
});

test('a delta on a host without its base is refused before anything changes; the journal records why', async () => {
  const m = (await manifestOf(b.delta)).manifest;
  const fromBase = m.blobs.filter((x) => x.carried === false);
  const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
  // A fresh host: nothing of the base.
  const stateC = join(work.dir, 'state-c');
  const r = await runCli(importArgs(b.delta, stateC), { DOCKER_HOST: daemon.dockerHost });
  assert.equal(r.code, 13, r.stderr + r.stdout);
  const err = JSON.parse(r.stdout) as { error: string; reason: string; message: string; subject: string; hint: string };
  assert.deepEqual([err.error, err.reason, err.subject], ['policy', 'missing-base', 'demo 1.0.0']);
  const total = fromBase.reduce((n, x) => n + x.size, 0);
  assert.equal(err.message, `demo 1.1.0 is a delta of demo 1.0.0, and this host lacks 4 blobs (${mib(total)}) of the 4 it relies on from that base`);
  assert.match(err.hint, /import demo 1\.0\.0 here first/);
  assert.deepEqual(await storeListing(stateC), new Map());
  assert.deepEqual(await readdir(join(stateC, 'blobs', 'staging')).catch(() => []), []);
  const j = journal(stateC);
  try {
    assert.deepEqual(j.bundles(), []);
    assert.deepEqual(j.events(), [{ outcome: 'refused', subject: 'demo 1.1.0', reason: 'missing-base' }]);
    assert.deepEqual(j.kinds(), ['bundle.import'], 'no image load was tried');
  } finally {
    j.close();
  }
  // The human form names the base, the count and the size too.
  const human = await runCli(['bundle', 'import', b.delta, '--state', stateC, '--trust', signer.trustDir, '--no-load']);
  assert.equal(human.code, 13);
  assert.match(human.stderr, /demo 1\.1\.0 is a delta of demo 1\.0\.0, and this host lacks 4 blobs/);

  // A host that had the base but lost one blob of it, and has another cut short.
  const stateD = join(work.dir, 'state-d');
  assert.equal((await runCli(importArgs(b.full1, stateD, '--no-load'))).code, 0);
  const layer = fromBase.find((x) => x.kind === 'layer')!;
  const config = fromBase.find((x) => x.kind === 'image-config')!;
  const blobPath = (d: string) => join(stateD, 'blobs', 'sha256', d.slice(7));
  const saved = join(work.dir, 'saved-layer');
  await copyFile(blobPath(layer.digest), saved);
  await rm(blobPath(layer.digest));
  const savedConfig = await readFile(blobPath(config.digest));
  await truncate(blobPath(config.digest), 10);
  const listing = await storeListing(stateD);
  const rd = await runCli(importArgs(b.delta, stateD, '--no-load'));
  assert.equal(rd.code, 13, rd.stderr + rd.stdout);
  assert.equal(
    (JSON.parse(rd.stdout) as { message: string }).message,
    `demo 1.1.0 is a delta of demo 1.0.0, and this host lacks 2 blobs (${mib(layer.size + config.size)}) of the 4 it relies on from that base (1 of them stored with the wrong size)`,
  );
  assert.deepEqual(await storeListing(stateD), listing, 'store unchanged');
  const jd = journal(stateD);
  try {
    assert.deepEqual(jd.bundles().map((x) => x.version), ['1.0.0']);
    assert.deepEqual(jd.events().map((e) => [e.outcome, e.reason]), [['ok', null], ['refused', 'missing-base']]);
  } finally {
    jd.close();
  }
  // Once the blobs are back, the same delta imports.
  await copyFile(saved, blobPath(layer.digest));
  await writeFile(blobPath(config.digest), savedConfig);
  const ok = await runCli(importArgs(b.delta, stateD, '--no-load'));
  assert.equal(ok.code, 0, ok.stderr + ok.stdout);
});

test('a delta of a delta relies on everything its base named, carried or not', async () => {
  const d3 = await build(p.v3, 'delta3', ['--since', b.delta]);
  const m = (await manifestOf(d3)).manifest;
  assert.equal((m.base as BundleBaseRef).version, '1.1.0');
  const carried = m.blobs.filter((x) => x.carried !== false);
  assert.equal(carried.length, 5, 'only the v3 app layer, web config and manifest, compose and env files');
  const busybox = await sha256File(join(p.v3, 'images', 'base.tar'));
  assert.equal(m.blobs.find((x) => x.digest === busybox)?.carried, false, 'the busybox layer v2 relied on is left out too');

  const state = join(work.dir, 'state-e');
  for (const file of [b.full1, b.delta, d3]) {
    const r = await runCli(importArgs(file, state, '--no-load'));
    assert.equal(r.code, 0, `${file}: ${r.stderr}${r.stdout}`);
  }
});

test('bundle build --since: a missing, unreadable or untrusted base is refused', async () => {
  const run = (extra: string[]) =>
    runCli(['bundle', 'build', '-f', join(p.v2, 'bundle.yaml'), '--key', signer.keyPath, '-o', join(work.dir, 'refused'), ...extra], EPOCH);
  const missing = await run(['--since', join(work.dir, 'nope.airlock')]);
  assert.equal(missing.code, 4, missing.stderr);
  assert.match(missing.stderr, /base bundle or manifest not found: .*nope\.airlock/);

  const other = await makeSigner(work.dir, 'other');
  const untrusted = await run(['--since', b.full1, '--trust', other.trustDir]);
  assert.equal(untrusted.code, 10, untrusted.stderr);
  assert.match(untrusted.stderr, new RegExp(`unknown key ${signer.keyId}`));

  const manifestWithTrust = await run(['--since', b.manifestFile, '--trust', signer.trustDir]);
  assert.equal(manifestWithTrust.code, 2, manifestWithTrust.stderr);
  assert.match(manifestWithTrust.stderr, /is a manifest, which carries none/);

  const trustAlone = await run(['--trust', signer.trustDir]);
  assert.equal(trustAlone.code, 2);

  const garbage = join(work.dir, 'garbage.json');
  await writeFile(garbage, '{"format":"airlock.bundle.v1"');
  const bad = await run(['--since', garbage]);
  assert.equal(bad.code, 11, bad.stderr);
  assert.match(bad.stderr, /neither a bundle nor a manifest JSON file/);

  // A base manifest edited to list a shared blob at another size, consistently, so it still parses.
  const edited = JSON.parse(await readFile(b.manifestFile, 'utf8')) as Manifest;
  const busybox = await sha256File(join(p.v1, 'images', 'base.tar'));
  const layer = edited.blobs.find((x) => x.digest === busybox)!;
  layer.size += 1;
  for (const img of edited.images) for (const l of img.layers) if (l.digest === layer.digest) l.size = layer.size;
  const editedFile = join(work.dir, 'edited.json');
  await writeFile(editedFile, JSON.stringify(edited));
  const mismatch = await run(['--since', editedFile]);
  assert.equal(mismatch.code, 3, mismatch.stderr);
  assert.match(mismatch.stderr, new RegExp(`blob ${layer.digest} is ${layer.size - 1} bytes here, but the base demo 1\\.0\\.0 lists it with ${layer.size}`));
  // Inconsistent in itself, it does not even parse.
  layer.size += 1;
  await writeFile(editedFile, JSON.stringify(edited));
  assert.equal((await run(['--since', editedFile])).code, 11);
  await assert.rejects(stat(join(work.dir, 'refused', 'demo-1.1.0.airlock')));
});

test('readers refuse what a delta manifest may not say, and a blob smuggled into a delta', async () => {
  const good = await Bundle.from(await readFile(b.delta));
  const verify = async (buf: Buffer) => {
    const file = join(work.dir, 'tampered.airlock');
    await writeFile(file, buf);
    const r = await runCli(['bundle', 'verify', file, '--trust', signer.trustDir, '--json']);
    return { code: r.code, err: JSON.parse(r.stdout || '{}') as { reason?: string; message?: string } };
  };
  const resigned = (change: (m: Manifest) => void) => {
    const m = good.manifest;
    change(m);
    return good.resign(m, key).pack();
  };
  const left = good.manifest.blobs.find((x) => x.carried === false)!;
  const cases: [string, Buffer, string, RegExp][] = [
    ['an entry for a blob the delta does not carry', good.append(fileEntry(blobEntryName(left.digest), Buffer.alloc(left.size))).pack(), 'extra-entry', /is a blob the manifest says this delta bundle does not carry/],
    ['v1 with a blob not carried', resigned((m) => { m.format = 'airlock.bundle.v1'; delete m.requires; delete m.base; }), 'manifest-invalid', /does not match format airlock\.bundle\.v1/],
    ['v2 requiring a feature this airlock lacks', resigned((m) => void (m.requires = ['brotli' as 'delta', 'delta'])), 'manifest-invalid', /requires "brotli", which this airlock does not support/],
    ['a delta without its base', resigned((m) => void delete m.base), 'manifest-invalid', /requires delta but names no base/],
    ['a base without delta', resigned((m) => void (m.requires = [])), 'manifest-invalid', /names a base but does not require delta/],
    ['an unknown format', resigned((m) => void ((m as { format: string }).format = 'airlock.bundle.v3')), 'manifest-invalid', /is in format "airlock\.bundle\.v3", which this airlock does not read/],
  ];
  for (const [name, buf, reason, message] of cases) {
    const { code, err } = await verify(buf);
    assert.equal(code, 11, `${name}: ${JSON.stringify(err)}`);
    assert.equal(err.reason, reason, name);
    assert.match(err.message ?? '', message, name);
  }
  // The untampered delta verifies on its own: every carried byte checked, no host needed.
  const ok = await runCli(['bundle', 'verify', b.delta, '--trust', signer.trustDir]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /5 blobs .* verified/);
});
