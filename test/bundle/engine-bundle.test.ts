/**
 * Engine bundles (docs/bundle-format.md, "Engine bundles"): Debian's own
 * engines built into real signed bundles on disk, verified and inspected
 * by the real CLI, and every input the format refuses, at build and at verify.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createPrivateKey } from 'node:crypto';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import YAML from 'yaml';
import { STATIC_ENGINE_FILES, type EngineRecord, type Manifest } from '../../src/bundle/manifest.js';
import { makeSigner, runCli, tempDir, type Signer } from '../helpers/fixtures.js';
import { Bundle } from '../helpers/tamper.js';
import { buildDeb, engineFixtures, SMALL_ELF, writeStaticArchive, type ArchiveEntry, type EngineFixtureName } from '../helpers/engine-bundle-fixtures.js';

interface Inspected {
  engine: EngineRecord | null;
  manifest: Manifest;
}

async function writeDefinition(dir: string, engine: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<string> {
  const file = join(dir, 'bundle.yaml');
  await writeFile(file, YAML.stringify({ name: 'docker-engine', version: '1.0.0', ...extra, engine }));
  return file;
}

async function build(dir: string, signer: Signer, engine: Record<string, unknown>) {
  const def = await writeDefinition(dir, engine);
  return runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(dir, 'out'), '--json']);
}

/** A build that must be refused: its exit code and the JSON error. */
async function refused(dir: string, signer: Signer, engine: Record<string, unknown>) {
  const r = await build(dir, signer, engine);
  assert.notEqual(r.code, 0, `the build was accepted: ${r.stdout}`);
  return { code: r.code, error: JSON.parse(r.stdout) as { reason: string; message: string; subject?: string } };
}

const fixtureTest = (name: string, body: (t: import('node:test').TestContext, f: Exclude<ReturnType<typeof engineFixtures>, string>) => Promise<void>) =>
  test(name, async (t) => {
    const f = engineFixtures();
    if (typeof f === 'string') return t.skip(f);
    await body(t, f);
  });

/** Builds a fixture into a signed bundle, verifies it and inspects it, both as text and as JSON. */
async function buildVerifyInspect(t: import('node:test').TestContext, fixture: { path: string }, version: string, form: 'static' | 'packages') {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const built = await build(dir, signer, { version, [form]: fixture.path });
  assert.equal(built.code, 0, built.stderr + built.stdout);
  const bundle = (JSON.parse(built.stdout) as { path: string }).path;
  const verify = await runCli(['bundle', 'verify', bundle, '--trust', signer.trustDir]);
  assert.equal(verify.code, 0, verify.stderr);
  assert.match(verify.stdout, /^valid: docker-engine 1\.0\.0, signed by /);
  const json = await runCli(['bundle', 'inspect', bundle, '--trust', signer.trustDir, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const text = await runCli(['bundle', 'inspect', bundle, '--trust', signer.trustDir]);
  assert.equal(text.code, 0, text.stderr);
  const inspected = JSON.parse(json.stdout) as Inspected;
  const m = inspected.manifest;
  assert.equal(m.format, 'airlock.bundle.v2');
  assert.ok(m.requires?.includes('engine'), `requires: ${m.requires?.join(',')}`);
  assert.deepEqual(inspected.engine, m.engine);
  // Each engine file is one carried blob of kind engine-file, and there are no others.
  const kinds = new Map(m.blobs.map((b) => [b.digest, b.kind]));
  for (const f of m.engine!.files) assert.equal(kinds.get(f.digest), 'engine-file', f.path);
  assert.deepEqual(m.stacks, []);
  assert.deepEqual(m.images, []);
  return { engine: m.engine!, text: text.stdout };
}

for (const [name, row] of [
  ['static-26', 'Debian 13'],
  ['static-28', 'Debian testing'],
] as const) {
  fixtureTest(`${name}: Docker's static layout of ${row}'s engine builds, verifies, and inspect names version, form, platform and glibc from the binaries`, async (t, f) => {
    const fixture = f[name as EngineFixtureName];
    const { engine, text } = await buildVerifyInspect(t, fixture, fixture.version, 'static');
    assert.equal(engine.version, fixture.version);
    assert.equal(engine.form, 'static');
    assert.deepEqual(engine.platform, { os: 'linux', architecture: 'amd64' });
    // Debian links its engine against glibc; runc references GLIBC_2.38 (the newest any of them needs).
    assert.equal(engine.libc.kind, 'glibc');
    assert.ok(engine.libc.kind === 'glibc' && /^2\.(3[89]|[4-9]\d)$/.test(engine.libc.minimum), `minimum ${JSON.stringify(engine.libc)}`);
    if (name === 'static-26') assert.deepEqual(engine.libc, { kind: 'glibc', minimum: '2.38' });
    assert.deepEqual(engine.files.map((x) => x.path), [...STATIC_ENGINE_FILES]);
    assert.ok(engine.files.every((x) => x.mode === 0o755 && x.size > 0 && x.package === undefined));
    assert.match(text, new RegExp(`engine {4}${fixture.version.replace(/[.+]/g, '\\$&')}, static \\(Docker's binaries\\), linux/amd64, glibc ${engine.libc.kind === 'glibc' ? engine.libc.minimum : ''} or newer`));
    for (const file of STATIC_ENGINE_FILES) assert.match(text, new RegExp(`^${file} +0755 `, 'm'));
  });
}

fixtureTest("deb-26: Debian 13's docker.io and its closure build as the package form; inspect lists each package's own fields", async (t, f) => {
  const fixture = f['deb-26'];
  const { engine, text } = await buildVerifyInspect(t, fixture, fixture.version, 'packages');
  assert.equal(engine.form, 'deb');
  assert.deepEqual(engine.platform, { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(engine.libc, { kind: 'distribution' });
  const packages = new Map(engine.files.map((x) => [x.package!.name, x]));
  for (const p of ['docker.io', 'containerd', 'runc', 'tini']) assert.ok(packages.has(p), `no ${p} among ${[...packages.keys()].join(', ')}`);
  assert.match(packages.get('docker.io')!.package!.version, /^26\.1\.5\+dfsg1-/);
  for (const x of engine.files) {
    assert.ok(x.path.endsWith('.deb'), x.path);
    assert.ok(x.path.startsWith(`${x.package!.name}_`), x.path);
  }
  assert.match(text, /engine {4}26\.1\.5\+dfsg1, deb packages \(\d+\), linux\/amd64, C library from the distribution/);
  assert.match(text, /^docker\.io +26\.1\.5\+dfsg1-\S+ +amd64 +docker\.io_\S+\.deb /m);
});

fixtureTest('deb-26-missing is the same set without containerd (for the install-time missing-dependency check)', async (_t, f) => {
  const { readdir } = await import('node:fs/promises');
  const full = await readdir(f['deb-26'].path);
  const missing = await readdir(f['deb-26-missing'].path);
  assert.deepEqual(missing, full.filter((n) => !n.startsWith('containerd_')));
  assert.ok(full.some((n) => n.startsWith('containerd_')));
});

/* ---- refusals at build: exit 3, each with its reason, naming the entry ---- */

const ALL = [...STATIC_ENGINE_FILES];
const binaries = async (names: readonly string[] = ALL): Promise<ArchiveEntry[]> => {
  const elf = await readFile(SMALL_ELF);
  return [{ name: 'docker/', type: 'directory' }, ...names.map((n) => ({ name: `docker/${n}`, type: 'file' as const, data: elf }))];
};

test('a static archive with anything but the eight binaries under docker/ is refused at build, naming the entry', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const elf = await readFile(SMALL_ELF);
  const cases: [string, ArchiveEntry[], string, RegExp][] = [
    ['an extra file', [...(await binaries()), { name: 'docker/docker-compose', type: 'file', data: elf }], 'engine-unexpected-file', /the file docker\/docker-compose is not one of the engine's binaries/],
    ['a file outside docker/', [{ name: 'README.md', type: 'file', data: Buffer.from('hi') }, ...(await binaries())], 'engine-unexpected-file', /the file README\.md is outside docker\//],
    ['a folder inside docker/', [...(await binaries()), { name: 'docker/plugins/', type: 'directory' }], 'engine-unexpected-file', /the folder docker\/plugins\/ is not a regular file/],
    ['a symbolic link', [...(await binaries(ALL.filter((n) => n !== 'docker-init'))), { name: 'docker/docker-init', type: 'symlink', linkname: '/usr/bin/tini' }], 'engine-link-entry', /docker\/docker-init is a symbolic link/],
    ['a hard link', [...(await binaries()), { name: 'docker/runc', type: 'link', linkname: 'docker/ctr' }], 'engine-link-entry', /docker\/runc is a hard link/],
    ['a missing dockerd', await binaries(ALL.filter((n) => n !== 'dockerd')), 'engine-missing-file', /lacks docker\/dockerd: an engine needs all eight/],
    ['a binary twice', [...(await binaries()), { name: 'docker/ctr', type: 'file', data: elf }], 'engine-unexpected-file', /docker\/ctr is in the archive twice/],
    ['a binary that is not ELF', [...(await binaries(ALL.filter((n) => n !== 'docker'))), { name: 'docker/docker', type: 'file', data: Buffer.from('#!/bin/sh\necho docker\n') }], 'engine-not-elf', /docker\/docker is not an ELF executable/],
  ];
  for (const [i, [name, entries, reason, message]] of cases.entries()) {
    const archive = await writeStaticArchive(join(dir, `case-${i}.tgz`), entries);
    const { code, error } = await refused(dir, signer, { version: '28.5.2', static: archive });
    assert.equal(code, 3, name);
    assert.equal(error.reason, reason, `${name}: ${error.message}`);
    assert.match(error.message, message, name);
    assert.ok(error.message.startsWith(archive), `${name}: names the archive: ${error.message}`);
  }
});

test('a gzip file that is not a tar, and a file that is not gzip, are refused as archives (engine-bad-archive)', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const plain = join(dir, 'docker.tar');
  await writeFile(plain, 'not gzip at all');
  const gzipped = join(dir, 'notes.tgz');
  await writeFile(gzipped, gzipSync(Buffer.from('gzip, but of text, not of a tar archive\n'.repeat(40))));
  for (const [path, name] of [[plain, /docker\.tar/], [gzipped, /notes\.tgz/]] as const) {
    const { code, error } = await refused(dir, signer, { version: '28.5.2', static: path });
    assert.equal(code, 3, path);
    assert.equal(error.reason, 'engine-bad-archive', `${path}: ${error.message}`);
    assert.match(error.message, new RegExp(`${name.source} is not a gzip-compressed tar archive`));
  }
});

test('a static folder with docker/ builds like the archive; one without docker/ is refused', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const folder = join(dir, 'engine');
  await mkdir(join(folder, 'docker'), { recursive: true });
  for (const n of STATIC_ENGINE_FILES) await copyFile(SMALL_ELF, join(folder, 'docker', n));
  const built = await build(dir, signer, { version: '28.5.2', static: 'engine' });
  assert.equal(built.code, 0, built.stdout + built.stderr);
  const empty = join(dir, 'empty');
  await mkdir(empty);
  const { code, error } = await refused(dir, signer, { version: '28.5.2', static: 'empty' });
  assert.equal(code, 3);
  assert.equal(error.reason, 'engine-missing-file');
  assert.match(error.message, /empty holds no docker\/ folder/);
});

test('packages: a file that is not a .deb, a .deb dpkg-deb cannot read, and mixed architectures are refused at build', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const amd = await buildDeb(dir, 'engine-part', '1.0', 'amd64');
  const arm = await buildDeb(dir, 'other-part', '1.0', 'arm64');
  const noarch = await buildDeb(dir, 'docs-part', '1.0', 'all');

  const withReadme = join(dir, 'with-readme');
  await mkdir(withReadme);
  await copyFile(amd, join(withReadme, basename(amd)));
  await writeFile(join(withReadme, 'README.txt'), 'how to install');
  let r = await refused(dir, signer, { version: '26.1.5', packages: 'with-readme' });
  assert.equal(r.code, 3);
  assert.equal(r.error.reason, 'engine-not-a-package');
  assert.match(r.error.message, /with-readme\/README\.txt is not a \.deb file/);

  const fake = join(dir, 'fake_1.0_amd64.deb');
  await writeFile(fake, 'not an ar archive');
  r = await refused(dir, signer, { version: '26.1.5', packages: [amd, fake] });
  assert.equal(r.code, 3);
  assert.equal(r.error.reason, 'engine-not-a-package');
  assert.match(r.error.message, /fake_1\.0_amd64\.deb is not a Debian package dpkg-deb can read/);

  r = await refused(dir, signer, { version: '26.1.5', packages: [amd, arm, noarch] });
  assert.equal(r.code, 3);
  assert.equal(r.error.reason, 'engine-mixed-architectures');
  assert.match(r.error.message, /several architectures: amd64 \(engine-part_1\.0_amd64\.deb\), arm64 \(other-part_1\.0_arm64\.deb\)/);

  // Architecture all beside one native architecture is a normal set.
  const ok = await build(dir, signer, { version: '26.1.5', packages: [amd, noarch] });
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  const m = JSON.parse((await runCli(['bundle', 'inspect', (JSON.parse(ok.stdout) as { path: string }).path, '--json'])).stdout) as Inspected;
  assert.deepEqual(m.engine!.platform, { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(m.engine!.files.map((x) => [x.path, x.package]), [
    ['docs-part_1.0_all.deb', { name: 'docs-part', version: '1.0', architecture: 'all' }],
    ['engine-part_1.0_amd64.deb', { name: 'engine-part', version: '1.0', architecture: 'amd64' }],
  ]);
});

test('engine: in the definition is refused by key path when it gives both forms, neither, or a bad version', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ version: '28.5.2', static: 'a.tgz', packages: 'debs' }, /bundle\.yaml:\d+: engine\.packages: is given beside static/],
    [{ version: '28.5.2' }, /bundle\.yaml:\d+: engine: names no engine: give static: .* or packages:/],
    [{ static: 'a.tgz' }, /engine\.version: is required/],
    [{ version: 'latest', static: 'a.tgz' }, /engine\.version: must match pattern/],
    [{ version: '28.5.2', packages: [] }, /engine\.packages: /],
  ];
  for (const [engine, message] of cases) {
    const { code, error } = await refused(dir, signer, engine);
    assert.equal(code, 3, JSON.stringify(engine));
    assert.equal(error.reason, 'bad-definition', JSON.stringify(engine));
    assert.match(error.message, message, JSON.stringify(engine));
  }
});

/* ---- refusals at verify: a signed manifest that breaks the engine record's rules ---- */

test('a signed manifest whose engine breaks the format is refused at verify (exit 11, manifest-invalid)', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const key = createPrivateKey(await readFile(signer.keyPath));
  const archive = await writeStaticArchive(join(dir, 'engine.tgz'), await binaries());
  const built = await build(dir, signer, { version: '28.5.2', static: archive });
  assert.equal(built.code, 0, built.stderr);
  const path = (JSON.parse(built.stdout) as { path: string }).path;
  const good = await Bundle.from(await readFile(path));
  const ok = await runCli(['bundle', 'verify', path, '--trust', signer.trustDir]);
  assert.equal(ok.code, 0, ok.stderr);

  const cases: [string, (m: Manifest) => void, RegExp][] = [
    ['an unexpected static path', (m) => (m.engine!.files[7]!.path = 'runc-debug' as never), /engine\/files\/7\/path must be equal to one of the allowed values/],
    ['a static path twice', (m) => (m.engine!.files[1]!.path = 'containerd'), /engine file containerd is listed twice/],
    ['a ninth static file', (m) => m.engine!.files.push({ ...m.engine!.files[0]! }), /engine\/files must NOT have more than 8 items/],
    ['an engine without the requirement', (m) => (m.requires = m.requires!.filter((r) => r !== 'engine')), /carries an engine but does not require engine/],
    ['the requirement without an engine', (m) => delete m.engine, /requires engine but carries none/],
    ['an engine file whose blob is of another kind', (m) => (m.blobs[0]!.kind = 'file'), /which is of kind file, not engine-file/],
    ['a static engine that leaves libc to the distribution', (m) => (m.engine!.libc = { kind: 'distribution' }), /a static engine names its own C library/],
    [
      'a package without its fields',
      (m) => {
        m.engine!.form = 'deb';
        m.engine!.libc = { kind: 'distribution' };
        m.engine!.files = [{ path: 'docker.io_28.5.2_amd64.deb', digest: m.engine!.files[0]!.digest, size: m.engine!.files[0]!.size, mode: 0o644 }];
      },
      /engine\/files\/0 must have required property 'package'/,
    ],
    [
      'a package file that is not a .deb',
      (m) => {
        m.engine!.form = 'deb';
        m.engine!.libc = { kind: 'distribution' };
        const f = m.engine!.files[0]!;
        m.engine!.files = [{ path: 'docker.io_28.5.2_amd64.rpm', digest: f.digest, size: f.size, mode: 0o644, package: { name: 'docker.io', version: '28.5.2', architecture: 'amd64' } }];
      },
      /engine file docker\.io_28\.5\.2_amd64\.rpm is not a \.deb package/,
    ],
  ];
  for (const [name, change, message] of cases) {
    const m = good.manifest;
    change(m);
    const bad = join(dir, 'bad.airlock');
    await writeFile(bad, good.resign(m, key).pack());
    const r = await runCli(['bundle', 'verify', bad, '--trust', signer.trustDir, '--json']);
    assert.equal(r.code, 11, `${name}: ${r.stdout}${r.stderr}`);
    const error = JSON.parse(r.stdout) as { reason: string; message: string };
    assert.equal(error.reason, 'manifest-invalid', name);
    assert.match(error.message, message, name);
  }
});
