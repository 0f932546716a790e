/**
 * `bundle build --seal-to` (issue 19, docs/sealed-secrets.md): every secret
 * file and every file marked sensitive is sealed to each site, Debian's `age`
 * opens it with a site identity, and the plaintext (or its hash or length)
 * is nowhere in the bundle.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import { memoryBlobs } from '../../src/apply/bundle-files.js';
import { openBundleFile, readBundle } from '../../src/bundle/reader.js';
import { TrustStore } from '../../src/trust/trust-store.js';
import { makeProject, makeSigner, runCli, tempDir, type Signer } from '../helpers/fixtures.js';
import { entries } from '../helpers/delta.js';

/** Why age cannot be run here, or false. Under CI a missing age fails the test: CI must prove interop. */
function ageMissing(): string | false {
  if (!spawnSync('age', ['--version'], { stdio: 'ignore' }).error) return false;
  const why = 'age not installed (Debian package age; scripts/install-deps installs it)';
  if (process.env.CI === 'true') throw new Error(`${why}: CI must open sealed bundles with the real age`);
  return why;
}
const skip = ageMissing();

// Distinctive values, of lengths no other file in the bundle has.
const DB_PASSWORD = 'pin-271828-zebra-quokka';
const TOKEN_ENV = 'API_TOKEN=tok-31415926-octopus-narwhal\n';
const TLS_KEY = '-----BEGIN TLS KEY ZEPHYR-----\nMIIEvQ-zephyr-0123456789\n-----END TLS KEY ZEPHYR-----\n';
const PLAINTEXTS = [DB_PASSWORD, TOKEN_ENV, TLS_KEY];
const hex = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

interface Site {
  keyId: string;
  identityPath: string;
  recipientPath: string;
}

async function siteKey(dir: string, name: string): Promise<Site> {
  const r = await runCli(['key', 'generate', '--kind', 'site', '--out', join(dir, 'sites', name), '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Site;
}

interface Definition {
  stacks: { name: string; compose: string; env_files: (string | { path: string; sensitive: boolean })[] }[];
  files: { src: string; dest: string; mode?: number; sensitive?: boolean }[];
  seal_to?: string[];
  [key: string]: unknown;
}

/**
 * The demo project with a stack whose compose file (in a subfolder) declares
 * a file secret, an external one, a sensitive env file and a sensitive
 * extra file. `file:` is relative to the bundle root, as on the host.
 */
async function sealedProject(dir: string, sites: Site[], change: (d: Definition) => void = () => {}): Promise<string> {
  const file = await makeProject(dir);
  const def = YAML.parse(await readFile(file, 'utf8')) as Definition;
  await mkdir(join(dir, 'stack'), { recursive: true });
  await writeFile(
    join(dir, 'stack', 'docker-compose.yml'),
    YAML.stringify({
      services: { web: { image: 'demo/web:1.0.0', secrets: ['db_password', 'vendor_ca'], env_file: ['web.env'] } },
      secrets: { db_password: { file: './secrets/db.password' }, vendor_ca: { external: true } },
    }),
  );
  await writeFile(join(dir, 'db.password'), DB_PASSWORD);
  await writeFile(join(dir, 'token.env'), TOKEN_ENV);
  await writeFile(join(dir, 'tls.key'), TLS_KEY);
  def.stacks = [{ name: 'web', compose: 'stack/docker-compose.yml', env_files: ['web.env', { path: 'token.env', sensitive: true }] }];
  def.files.push({ src: 'db.password', dest: 'secrets/db.password', mode: 0o400 }, { src: 'tls.key', dest: 'conf/tls.key', sensitive: true });
  def.seal_to = sites.map((s) => s.recipientPath);
  change(def);
  await writeFile(file, YAML.stringify(def));
  return file;
}

/** Builds with --compress gzip (a v1 bundle unless something needs v2) unless `extra` names another. */
async function build(def: string, signer: Signer, out: string, extra: string[] = []) {
  const compress = extra.includes('--compress') ? [] : ['--compress', 'gzip'];
  return runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', out, ...compress, '--json', ...extra]);
}

interface ManifestShape {
  format: string;
  requires?: string[];
  sealedTo?: string[];
  blobs: { digest: string; size: number; encoding: string; carried?: false }[];
  stacks: { composeFiles: { name: string; digest: string; sealed?: true }[]; envFiles: { name: string; digest: string; sealed?: true }[] }[];
  files: { path: string; digest: string; size: number; sealed?: true }[];
}

function age(identity: string, sealed: Buffer): Buffer {
  const r = spawnSync('age', ['-d', '-i', identity], { input: sealed });
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout;
}

test('build --seal-to two sites: secrets and sensitive files are age files each site opens; the plaintext is nowhere in the bundle', { skip }, async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const sites = [await siteKey(dir, 'site-a'), await siteKey(dir, 'site-b')];
  const def = await sealedProject(dir, sites);
  const out = join(dir, 'out');
  // Stored as they are, so that a plaintext in clear anywhere would show in a search of the bytes.
  const r = await build(def, signer, out, ['--compress', 'none']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '', 'a sealed build warns of nothing');
  const built = JSON.parse(r.stdout) as { path: string; sealed: { to: string[]; files: string[] } };
  const keyIds = sites.map((s) => s.keyId).sort();
  assert.deepEqual(built.sealed, { to: keyIds, files: ['stack web env file token.env', 'file secrets/db.password', 'file conf/tls.key'] });
  // Nothing but the bundle is left in the output folder: no scratch copy of a sealed or plain secret.
  assert.deepEqual(await readdir(out), ['demo-1.0.0.airlock']);

  const all = await entries(built.path);
  const manifestBytes = all[0]!.data;
  const m = JSON.parse(manifestBytes.toString()) as ManifestShape;
  assert.equal(m.format, 'airlock.bundle.v2');
  assert.deepEqual(m.requires, ['sealed']);
  assert.deepEqual(m.sealedTo, keyIds);
  const byPath = new Map(m.files.map((f) => [f.path, f]));
  const [stack] = m.stacks;
  assert.deepEqual(stack!.composeFiles.map((f) => [f.name, f.sealed]), [['stack/docker-compose.yml', undefined]]);
  assert.deepEqual(stack!.envFiles.map((f) => [f.name, f.sealed]), [['web.env', undefined], ['token.env', true]]);
  assert.equal(byPath.get('conf/app.conf')!.sealed, undefined);
  assert.equal(byPath.get('secrets/db.password')!.sealed, true);
  assert.equal(byPath.get('conf/tls.key')!.sealed, true);

  const entryOf = (digest: string) => all.find((e) => e.name === `blobs/sha256/${digest.slice(7)}`)!.data;
  const sealed: [string, string][] = [
    [byPath.get('secrets/db.password')!.digest, DB_PASSWORD],
    [stack!.envFiles[1]!.digest, TOKEN_ENV],
    [byPath.get('conf/tls.key')!.digest, TLS_KEY],
  ];
  for (const [digest, plaintext] of sealed) {
    const blob = m.blobs.find((b) => b.digest === digest)!;
    const bytes = entryOf(digest);
    // The record is of the sealed bytes: what the signature covers.
    assert.equal(`sha256:${hex(bytes)}`, digest);
    assert.equal(blob.size, bytes.length);
    assert.notEqual(blob.size, Buffer.byteLength(plaintext));
    assert.ok(bytes.subarray(0, 22).equals(Buffer.from('age-encryption.org/v1\n')), 'a binary age file');
    for (const site of sites) assert.equal(age(site.identityPath, bytes).toString(), plaintext);
  }
  // Plain files stay plain.
  assert.equal(entryOf(byPath.get('conf/app.conf')!.digest).toString(), 'listen=8080\n');

  // No plaintext, and no hash of one, anywhere in the bundle's bytes (manifest included).
  const bundleBytes = await readFile(built.path);
  for (const p of PLAINTEXTS) {
    assert.equal(bundleBytes.includes(p), false, `plaintext ${JSON.stringify(p)} in the bundle`);
    assert.equal(bundleBytes.includes(hex(p)), false, 'a plaintext digest in the bundle');
  }
  for (const p of PLAINTEXTS) assert.doesNotMatch(manifestBytes.toString(), new RegExp(`"size":${Buffer.byteLength(p)}[,}]`), 'a plaintext length in the manifest');

  // The reader takes it: signature, schema and the sealed rules, every blob hashed.
  const { sink } = memoryBlobs();
  const v = await readBundle(await openBundleFile(built.path), { trust: await TrustStore.load(signer.trustDir), sink });
  assert.deepEqual(v.manifest.sealedTo, keyIds);

  // inspect names the key ids and the sealed files, never a value.
  const human = await runCli(['bundle', 'inspect', built.path, '--trust', signer.trustDir]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, new RegExp(`^sealed to ${keyIds.join(', ')} \\(site key ids; 3 sealed files`, 'm'));
  assert.match(human.stdout, /token\.env \(sealed\)/);
  assert.match(human.stdout, /secrets\/db\.password \(sealed\)/);
  assert.doesNotMatch(human.stdout, /app\.conf \(sealed\)/);
  const json = await runCli(['bundle', 'inspect', built.path, '--trust', signer.trustDir, '--json']);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual((JSON.parse(json.stdout) as { sealed: unknown }).sealed, built.sealed);
  for (const text of [human.stdout, json.stdout, r.stdout]) {
    for (const p of PLAINTEXTS) assert.equal(text.includes(p.trim()), false, 'a value in the output');
  }
});

test('--seal-to replaces the definition\'s seal_to; a delta carries the sealed blobs, which differ every build', { skip }, async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const [a, b] = [await siteKey(dir, 'site-a'), await siteKey(dir, 'site-b')];
  const def = await sealedProject(dir, [a!]);
  const first = await build(def, signer, join(dir, 'one'), ['--seal-to', b!.recipientPath]);
  assert.equal(first.code, 0, first.stderr);
  const path = (JSON.parse(first.stdout) as { path: string }).path;
  const m = JSON.parse((await entries(path))[0]!.data.toString()) as ManifestShape;
  assert.deepEqual(m.sealedTo, [b!.keyId]);
  const secret = (await entries(path)).find((e) => e.name === `blobs/sha256/${m.files.find((f) => f.path === 'secrets/db.password')!.digest.slice(7)}`)!.data;
  assert.equal(age(b!.identityPath, secret).toString(), DB_PASSWORD);
  assert.notEqual(spawnSync('age', ['-d', '-i', a!.identityPath], { input: secret }).status, 0, 'site a was replaced');

  // Same inputs, a delta against the first: the images come from the base, every sealed blob is new and carried.
  const delta = await build(def, signer, join(dir, 'two'), ['--since', path]);
  assert.equal(delta.code, 0, delta.stderr);
  const d = JSON.parse((await entries((JSON.parse(delta.stdout) as { path: string }).path))[0]!.data.toString()) as ManifestShape;
  assert.deepEqual(d.requires, ['delta', 'sealed']);
  // Ciphertext does not compress: sealed blobs are stored as they are even under --compress gzip, which encodes every other carried blob.
  for (const b of d.blobs.filter((x) => x.carried === undefined)) {
    assert.equal(b.encoding, d.files.some((f) => f.sealed && f.digest === b.digest) || d.stacks[0]!.envFiles.some((f) => f.sealed && f.digest === b.digest) ? 'identity' : 'gzip');
  }
  assert.deepEqual(d.sealedTo, [a!.keyId]);
  const sealedDigests = [...d.files.filter((f) => f.sealed).map((f) => f.digest), ...d.stacks[0]!.envFiles.filter((f) => f.sealed).map((f) => f.digest)];
  assert.equal(sealedDigests.length, 3);
  for (const digest of sealedDigests) {
    assert.equal(d.blobs.find((x) => x.digest === digest)!.carried, undefined);
    assert.equal(m.blobs.some((x) => x.digest === digest), false, 'sealing is randomised');
  }
  assert.ok(d.blobs.some((x) => x.carried === false), 'the images are left to the base');
});

test('secrets without any recipient: the build warns that they travel in clear, and the bundle is as before', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const def = await sealedProject(dir, [], (d) => {
    delete d.seal_to;
    d.stacks[0]!.env_files = ['web.env', 'token.env'];
    d.files = d.files.filter((f) => f.dest !== 'conf/tls.key');
  });
  const r = await build(def, signer, join(dir, 'out'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^warning: the bundle carries 1 secret file in clear \(secrets\/db\.password\): it is sealed to no site.*hosts that require sealed secrets will refuse it; seal with --seal-to SITE\.recipient/m);
  const m = JSON.parse((await entries((JSON.parse(r.stdout) as { path: string }).path))[0]!.data.toString()) as ManifestShape;
  assert.equal(m.format, 'airlock.bundle.v1');
  assert.equal(m.sealedTo, undefined);
  assert.equal(m.files.find((f) => f.path === 'secrets/db.password')!.digest, `sha256:${hex(DB_PASSWORD)}`);
  assert.ok(m.files.every((f) => f.sealed === undefined));
});

test('refusals when sealing: the file, the key and the fix, exit 3 (4 for a missing recipient file), and no bundle', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const site = await siteKey(dir, 'site-a');
  const cases: { name: string; change: (d: Definition) => void; compose?: string; code: number; reason: string; message: RegExp }[] = [
    {
      name: 'a secret that no files: entry carries',
      change: (d) => (d.files = d.files.filter((f) => f.dest !== 'secrets/db.password')),
      code: 3,
      reason: 'secret-not-in-bundle',
      message: /stack\/docker-compose\.yml: secrets\.db_password\.file "\.\/secrets\/db\.password" of stack web names secrets\/db\.password, which no files: entry of .*bundle\.yaml carries/,
    },
    {
      name: 'a secret file: with a variable',
      change: () => {},
      compose: 'secrets:\n  db_password:\n    file: ./secrets/${SITE}.password\n',
      code: 3,
      reason: 'secret-file-unresolved',
      message: /secrets\.db_password\.file "\.\/secrets\/\$\{SITE\}\.password" holds a variable/,
    },
    {
      name: 'a sensitive file with nothing to seal to',
      change: (d) => delete d.seal_to,
      code: 3,
      reason: 'no-recipients',
      message: /bundle\.yaml:\d+: stacks\[0\]\.env_files\[1\]\.sensitive: true, but the bundle is sealed to no site/,
    },
    { name: 'an empty seal_to', change: (d) => (d.seal_to = []), code: 3, reason: 'bad-definition', message: /bundle\.yaml:\d+: seal_to/ },
    {
      name: 'a recipient file that is a site identity',
      change: (d) => (d.seal_to = [site.identityPath]),
      code: 3,
      reason: 'bad-recipient-file',
      message: /line 4 is a secret identity, not a recipient/,
    },
    { name: 'a recipient file that is not there', change: (d) => (d.seal_to = [join(dir, 'nope.recipient')]), code: 4, reason: 'not-found', message: /recipient file .*nope\.recipient does not exist/ },
    {
      name: 'a plain file with the bytes of a sealed one',
      change: (d) => d.files.push({ src: 'db.password', dest: 'copy/db.password' }),
      code: 3,
      reason: 'secret-in-clear',
      message: /copy\/db\.password holds the same bytes as the sealed file secrets\/db\.password/,
    },
  ];
  for (const c of cases) {
    const sub = join(dir, c.reason);
    await mkdir(sub);
    const def = await sealedProject(sub, [site], c.change);
    if (c.compose) await writeFile(join(sub, 'stack', 'docker-compose.yml'), `services:\n  web:\n    image: demo/web:1.0.0\n${c.compose}`);
    const out = join(sub, 'out');
    const r = await build(def, signer, out);
    assert.equal(r.code, c.code, `${c.name}: ${r.stdout}${r.stderr}`);
    const err = JSON.parse(r.stdout) as { reason: string; message: string };
    assert.equal(err.reason, c.reason, c.name);
    assert.match(err.message, c.message, c.name);
    assert.equal(r.stdout.includes(DB_PASSWORD), false);
    assert.deepEqual(await readdir(out).catch(() => []), [], `${c.name}: nothing written`);
  }
});

test('recipients with nothing to seal: the bundle stays plain and v1, and the build says so', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const site = await siteKey(dir, 'site-a');
  const def = await makeProject(dir);
  const r = await build(def, signer, join(dir, 'out'), ['--seal-to', site.recipientPath]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^warning: nothing was sealed: the stacks have no secret file and no file is marked sensitive: true/m);
  const m = JSON.parse((await entries((JSON.parse(r.stdout) as { path: string }).path))[0]!.data.toString()) as ManifestShape;
  assert.equal(m.format, 'airlock.bundle.v1');
  assert.equal(m.sealedTo, undefined);
});
