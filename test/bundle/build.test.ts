import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import YAML from 'yaml';
import { makeProject, makeSigner, runCli, tempDir } from '../helpers/fixtures.js';
import { entries } from '../helpers/delta.js';
import { sha256File, writeBusyboxLayer, writeImageArchive, writeLayer, writeRandomLayer } from '../helpers/images.js';


const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function build(dir: string, def: string, keyPath: string, out: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}) {
  const r = await runCli(['bundle', 'build', '-f', def, '--key', keyPath, '-o', out, '--json', ...extra], env);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return JSON.parse(r.stdout) as { path: string; bytes: number; keyId: string };
}

for (const layout of ['oci', 'legacy'] as const) {
  test(`build from a ${layout} docker-save archive: the layout the format document describes`, async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const signer = await makeSigner(dir);
    const def = await makeProject(dir, { layout, version: '1.2.3' });
    const built = await build(dir, def, signer.keyPath, join(dir, 'out'));
    assert.equal(built.path, join(dir, 'out', 'demo-1.2.3.airlock'));
    assert.equal(built.keyId, signer.keyId);

    const all = await entries(built.path);
    assert.deepEqual(all.slice(0, 2).map((e) => e.name), ['manifest.json', 'manifest.sig']);
    assert.ok(all.every((e) => e.type === 'file'));
    const manifest = JSON.parse(all[0]!.data.toString()) as {
      name: string;
      version: string;
      blobs: { digest: string; size: number; kind: string; encoding: string; stored?: { digest: string; size: number } }[];
      images: { refs: string[]; id: string; layers: { digest: string; diffId: string }[] }[];
      stacks: { name: string; composeFiles: { name: string; digest: string }[] }[];
      files: { path: string; mode: number; digest: string }[];
    };
    const sig = JSON.parse(all[1]!.data.toString()) as { keyId: string; signature: string; algorithm: string };
    assert.equal(sig.algorithm, 'ed25519');
    assert.ok(verify(null, all[0]!.data, createPublicKey(await readFile(signer.pubPath)), Buffer.from(sig.signature, 'base64')));

    // Blobs follow in ascending digest order, each named by the hash of its content.
    const blobEntries = all.slice(2);
    assert.deepEqual(blobEntries.map((e) => e.name), manifest.blobs.map((b) => `blobs/sha256/${b.digest.slice(7)}`));
    assert.deepEqual([...manifest.blobs.map((b) => b.digest)].sort(), manifest.blobs.map((b) => b.digest));
    for (const [i, b] of manifest.blobs.entries()) {
      const stored = blobEntries[i]!.data;
      const content = b.encoding === 'gzip' ? gunzipSync(stored) : b.encoding === 'zstd' ? zstdDecompressSync(stored) : stored;
      assert.equal(sha(content), b.digest);
      assert.equal(content.length, b.size);
      if (b.stored) assert.equal(sha(stored), b.stored.digest);
    }

    // The shared busybox base layer is carried once for both images.
    const baseDiff = await sha256File(join(dir, 'images', 'base.tar'));
    assert.equal(manifest.blobs.filter((b) => b.digest === baseDiff).length, 1);
    assert.deepEqual(manifest.images.map((i) => i.refs[0]), ['demo/base:1', 'demo/web:1.2.3']);
    const web = manifest.images.find((i) => i.refs[0] === 'demo/web:1.2.3')!;
    assert.equal(web.layers.length, 2);
    assert.equal(web.layers[0]!.diffId, baseDiff);
    // The image id is the digest of the config, exactly as `docker save` wrote it.
    const archive = await entries(join(dir, 'images', 'demo.tar'));
    const saved = JSON.parse(archive.find((e) => e.name === 'manifest.json')!.data.toString()) as { Config: string; RepoTags: string[] }[];
    const savedWeb = saved.find((s) => s.RepoTags.includes('demo/web:1.2.3'))!;
    assert.equal(web.id, sha(archive.find((e) => e.name === savedWeb.Config)!.data));

    assert.deepEqual(manifest.stacks.map((s) => s.composeFiles.map((f) => f.name)), [['docker-compose.yml']]);
    assert.deepEqual(manifest.files.map((f) => [f.path, f.mode]), [['conf/app.conf', 0o640]]);
    assert.equal(manifest.files[0]!.digest, sha(Buffer.from('listen=8080\n')));
  });
}

test('builds are reproducible under SOURCE_DATE_EPOCH, and differ when an input does', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const def = await makeProject(dir);
  const env = { SOURCE_DATE_EPOCH: '1767225600' };
  const a = await build(dir, def, signer.keyPath, join(dir, 'a'), [], env);
  const b = await build(dir, def, signer.keyPath, join(dir, 'b'), [], env);
  assert.equal(await sha256File(a.path), await sha256File(b.path));
  const c = await build(dir, def, signer.keyPath, join(dir, 'c'), [], { SOURCE_DATE_EPOCH: '1767225601' });
  assert.notEqual(await sha256File(a.path), await sha256File(c.path));
  const manifest = JSON.parse((await entries(a.path))[0]!.data.toString()) as { created: string; expires: string };
  assert.equal(manifest.created, '2026-01-01T00:00:00Z');
  assert.equal(manifest.expires, '2026-01-31T00:00:00Z');
});

test('auto compression zstd-compresses what shrinks and stores incompressible blobs as they are', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const def = await makeProject(dir, {
    extraFiles: [
      { dest: 'random.bin', data: randomBytes(256 * 1024) },
      { dest: 'text.txt', data: Buffer.from('airlock '.repeat(40_000)) },
    ],
  });
  const auto = await build(dir, def, signer.keyPath, join(dir, 'auto'));
  const none = await build(dir, def, signer.keyPath, join(dir, 'none'), ['--compress', 'none']);
  const m = JSON.parse((await entries(auto.path))[0]!.data.toString()) as { blobs: { digest: string; encoding: string; kind: string }[] };
  const enc = (data: Buffer) => m.blobs.find((b) => b.digest === sha(data))?.encoding;
  assert.equal(enc(await readFile(join(dir, 'extra-0'))), 'identity');
  assert.equal(enc(await readFile(join(dir, 'extra-1'))), 'zstd');
  assert.equal(enc(await readFile(join(dir, 'images', 'base.tar'))), 'zstd', 'busybox compresses well');
  assert.ok(auto.bytes < none.bytes * 0.8, `auto ${auto.bytes} vs none ${none.bytes}`);
  const mNone = JSON.parse((await entries(none.path))[0]!.data.toString()) as { blobs: { encoding: string }[] };
  assert.ok(mNone.blobs.every((b) => b.encoding === 'identity'));
});

test('images default to those the stacks reference; a missing one is named', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const def = await makeProject(dir);
  const doc = YAML.parse(await readFile(def, 'utf8')) as Record<string, unknown>;
  await writeFile(join(dir, 'docker-compose.yml'), YAML.stringify({ services: { db: { image: 'demo/db:9' } } }));
  const r = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(dir, 'out')]);
  assert.equal(r.code, 4);
  assert.match(r.stderr, /image demo\/db:9 is in none of the image archives/);
  assert.match(r.stderr, /hint: load or build it in the local engine, or add its 'docker save' tarball under image_archives/);

  // An explicit list overrides what the stacks reference.
  await writeFile(def, YAML.stringify({ ...doc, images: ['demo/base:1'] }));
  const ok = await build(dir, def, signer.keyPath, join(dir, 'out'));
  const m = JSON.parse((await entries(ok.path))[0]!.data.toString()) as { images: { refs: string[] }[] };
  assert.deepEqual(m.images.map((i) => i.refs), [['demo/base:1']]);
});

test('a stack image that is no image reference is refused at build time, naming the file and key', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const def = await makeProject(dir);
  await writeFile(join(dir, 'docker-compose.yml'), YAML.stringify({ services: { web: { image: 'demo/Web:1' } } }));
  const r = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(dir, 'out')]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /docker-compose\.yml: services\.web\.image: "demo\/Web:1" is not a valid image reference \(invalid reference format: repository name \(demo\/Web\) must be lowercase\)/);
  assert.deepEqual(await readdir(join(dir, 'out')).catch(() => []), [], 'no bundle written');
});

test('a layer that does not match its config is refused at build time', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const layer = join(dir, 'l.tar');
  await writeLayer(layer, [{ path: 'a', data: Buffer.from('a') }]);
  const wrong = await writeRandomLayer(join(dir, 'other.tar'), 1024);
  await writeImageArchive(join(dir, 'bad.tar'), [{ refs: ['bad/img:1'], layers: [{ path: layer, diffId: wrong }] }], 'legacy');
  await writeFile(join(dir, 'bundle.yaml'), YAML.stringify({ name: 'bad', version: '1.0.0', images: [{ ref: 'bad/img:1', archive: 'bad.tar' }] }));
  const r = await runCli(['bundle', 'build', '-f', join(dir, 'bundle.yaml'), '--key', signer.keyPath, '-o', join(dir, 'out')]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /layer 1 of bad\/img:1 .* has digest sha256:[0-9a-f]{64}, its config says/);
});

test('bundle definitions with mistakes are refused with the key that is wrong', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  await writeBusyboxLayer(join(dir, 'unused.tar'));
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ name: 'x', version: 'one' }, /version: "one" is not a semantic version/],
    [{ name: 'x', version: '1.0.0', stack: [] }, /bundle\.yaml:3: stack: unknown key/],
    [{ name: 'Bad Name', version: '1.0.0' }, /name: must match pattern/],
    [{ name: 'x', version: '1.0.0', files: [{ src: 'a', dest: '../../etc/passwd' }] }, /bundle\.yaml:\d+: files\[0\]\.dest: "..\/..\/etc\/passwd" climbs out/],
    [{ name: 'x', version: '1.0.0', stacks: [{ name: 'web', compose: '/etc/compose.yml' }] }, /bundle\.yaml:\d+: stacks\[0\]\.compose: "\/etc\/compose.yml" is absolute/],
    [{ name: 'x', version: '1.0.0', expires: 'soon' }, /expires: "soon" is neither a duration/],
  ];
  for (const [doc, message] of cases) {
    await writeFile(join(dir, 'bundle.yaml'), YAML.stringify(doc));
    const r = await runCli(['bundle', 'build', '-f', join(dir, 'bundle.yaml'), '--key', signer.keyPath, '-o', join(dir, 'out')]);
    assert.equal(r.code, 3, `${JSON.stringify(doc)}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  const noKey = await runCli(['bundle', 'build', '-f', join(dir, 'bundle.yaml'), '-o', join(dir, 'out')]);
  assert.equal(noKey.code, 2);
  assert.match(noKey.stderr, /--key KEY is required/);
});
