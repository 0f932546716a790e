import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TrustStore } from '../../src/trust/trust-store.js';
import { makeSigner, runCli, tempDir } from '../helpers/fixtures.js';

test('key generate writes a 0600 PKCS#8 key and an SPKI public key, and prints the id', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const r = await runCli(['key', 'generate', '--out', join(dir, 'k', 'vendor'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { keyId: string; privatePath: string; publicPath: string };
  assert.equal((await stat(out.privatePath)).mode & 0o777, 0o600);
  const priv = await readFile(out.privatePath, 'utf8');
  const pub = await readFile(out.publicPath, 'utf8');
  assert.match(priv, /^-----BEGIN PRIVATE KEY-----/);
  assert.match(pub, /^-----BEGIN PUBLIC KEY-----/);
  // The id is the documented fingerprint: first 16 hex digits of SHA-256 over the SPKI DER.
  const der = createPublicKey(pub).export({ type: 'spki', format: 'der' });
  assert.equal(out.keyId, createHash('sha256').update(der).digest('hex').slice(0, 16));

  for (const file of [out.privatePath, out.publicPath]) {
    const id = await runCli(['key', 'id', file]);
    assert.equal(id.code, 0);
    assert.equal(id.stdout.trim(), out.keyId);
  }
});

test('key generate refuses to overwrite an existing key', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const base = join(dir, 'vendor');
  assert.equal((await runCli(['key', 'generate', '--out', base])).code, 0);
  const before = await readFile(`${base}.key`, 'utf8');
  const r = await runCli(['key', 'generate', '--out', base]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /already exists/);
  assert.equal(await readFile(`${base}.key`, 'utf8'), before);
});

test('key id refuses files that are not Ed25519 keys', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  await writeFile(join(dir, 'junk.pub'), 'not a key');
  const r = await runCli(['key', 'id', join(dir, 'junk.pub')]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /not a PEM key/);
  const missing = await runCli(['key', 'id', join(dir, 'none.pub')]);
  assert.equal(missing.code, 4);
});

test('trust store holds several keys at once and honours revocations', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const a = await makeSigner(dir, 'old');
  const b = await makeSigner(dir, 'new');
  const trustDir = join(dir, 'trust');
  await mkdir(trustDir);
  await writeFile(join(trustDir, 'old.pub'), await readFile(a.pubPath));
  await writeFile(join(trustDir, 'new.pub'), await readFile(b.pubPath));
  await writeFile(join(trustDir, 'README'), 'not a key, ignored');
  let store = await TrustStore.load(trustDir);
  assert.deepEqual(store.trustedIds.sort(), [a.keyId, b.keyId].sort());
  assert.equal(store.keyFor(a.keyId).keyId, a.keyId);

  await writeFile(join(trustDir, 'revoked'), `# rotated out\n${a.keyId}\n`);
  store = await TrustStore.load(trustDir);
  assert.deepEqual(store.trustedIds, [b.keyId]);
  assert.throws(() => store.keyFor(a.keyId), { reason: 'revoked-key' });
  assert.throws(() => store.keyFor('0123456789abcdef'), { reason: 'unknown-key' });
});
