import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
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

test('key id of an OpenSSH public key line: the id of the same key in PEM for ssh-ed25519; its own for sk-ssh-ed25519', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const key = join(dir, 'S');
  await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'me@host', '-f', key]);
  // The same key as PEM (ssh-keygen cannot export Ed25519 to PKCS8): the last 32 bytes of the line's blob.
  const line = (await readFile(`${key}.pub`, 'utf8')).split(' ');
  const raw = Buffer.from(line[1]!, 'base64').subarray(-32);
  const pem = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
  await writeFile(join(dir, 'S-pem.pub'), pem);
  const ssh = await runCli(['key', 'id', `${key}.pub`, '--json']);
  assert.equal(ssh.code, 0, ssh.stderr);
  const fromPem = await runCli(['key', 'id', join(dir, 'S-pem.pub'), '--json']);
  assert.equal(fromPem.code, 0, fromPem.stderr);
  assert.match((JSON.parse(ssh.stdout) as { keyId: string }).keyId, /^[0-9a-f]{16}$/);
  assert.deepEqual(JSON.parse(ssh.stdout), JSON.parse(fromPem.stdout));

  // A hardware-backed key: the SHA-256 of its wire blob (type, Ed25519 key, application).
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const blob = Buffer.concat([str(Buffer.from('sk-ssh-ed25519@openssh.com')), str(Buffer.alloc(32, 7)), str(Buffer.from('ssh:'))]);
  await writeFile(join(dir, 'sk.pub'), `sk-ssh-ed25519@openssh.com ${blob.toString('base64')} token\n`);
  const sk = await runCli(['key', 'id', join(dir, 'sk.pub')]);
  assert.equal(sk.code, 0, sk.stderr);
  assert.equal(sk.stdout.trim(), createHash('sha256').update(blob).digest('hex').slice(0, 16));

  // Another OpenSSH key type is refused by name.
  await writeFile(join(dir, 'rsa.pub'), `ssh-rsa ${Buffer.from('x'.repeat(30)).toString('base64')} me\n`);
  const rsa = await runCli(['key', 'id', join(dir, 'rsa.pub')]);
  assert.equal(rsa.code, 3);
  assert.match(rsa.stderr, /ssh-rsa/);
});
