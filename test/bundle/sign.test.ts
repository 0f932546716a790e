import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import tar from 'tar-stream';
import { makeProject, makeSigner, runCli, tempDir, type Signer } from '../helpers/fixtures.js';
import { entries, EPOCH, type Entry } from '../helpers/delta.js';
import { addSignatures, ed25519Signer, type ManifestSigner } from '../../src/bundle/add-signature.js';
import type { AirlockError } from '../../src/errors/index.js';
import { loadPrivateKey } from '../../src/trust/keys.js';

const run = promisify(execFile);

interface Record {
  algorithm: string;
  keyId: string;
  signature: string;
}

/** The records of manifest.sig: one alone, or the list. */
const recordsOf = (sig: Buffer): Record[] => {
  const v = JSON.parse(sig.toString()) as Record | { signatures: Record[] };
  return 'signatures' in v ? v.signatures : [v];
};

async function buildBundle(dir: string, signer: Signer): Promise<string> {
  const def = await makeProject(dir, { expires: null });
  const r = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(dir, 'out'), '--json'], EPOCH);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return (JSON.parse(r.stdout) as { path: string }).path;
}

/** A trust dir holding these public key files. */
async function trustDir(dir: string, name: string, pubs: string[]): Promise<string> {
  const t = join(dir, name);
  await mkdir(t, { recursive: true });
  for (const [i, p] of pubs.entries()) await copyFile(p, join(t, `k${i}.pub`));
  return t;
}

async function verify(bundle: string, trust: string): Promise<{ code: number; out: { reason?: string; message?: string } }> {
  const r = await runCli(['bundle', 'verify', bundle, '--trust', trust, '--json']);
  return { code: r.code, out: JSON.parse(r.stdout || '{}') as { reason?: string } };
}

async function sign(bundle: string, ...keys: string[]) {
  return runCli(['bundle', 'sign', bundle, ...keys.flatMap((k) => ['--key', k]), '--json']);
}

const BLOCK = 512;
const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

/** The file's bytes around manifest.sig's entry: up to its header, and from the end of its padded data. */
function aroundSignature(file: Buffer, all: Entry[]): { head: Buffer; tail: Buffer } {
  const sigStart = BLOCK + padded(all[0]!.data.length);
  return { head: file.subarray(0, sigStart), tail: file.subarray(sigStart + BLOCK + padded(all[1]!.data.length)) };
}

function pack(all: Entry[]): Promise<Buffer> {
  const p = tar.pack();
  for (const e of all) p.entry({ name: e.name, size: e.data.length, mode: 0o644, mtime: new Date(0) }, e.data);
  p.finalize();
  return (async () => {
    const chunks: Buffer[] = [];
    for await (const c of p as unknown as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  })();
}

test('bundle sign adds a second signature and changes no other byte; either key alone verifies it', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const k1 = await makeSigner(dir, 'k1');
  const k2 = await makeSigner(dir, 'k2');
  const k3 = await makeSigner(dir, 'k3');
  const bundle = await buildBundle(dir, k1);
  const beforeBytes = await readFile(bundle);
  const before = await entries(bundle);
  const modeBefore = (await stat(bundle)).mode;

  const r = await sign(bundle, k2.keyPath);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.deepEqual(JSON.parse(r.stdout), { bundle, signers: [{ keyId: k1.keyId, algorithm: 'ed25519' }, { keyId: k2.keyId, algorithm: 'ed25519' }] });

  const afterBytes = await readFile(bundle);
  const after = await entries(bundle);
  assert.deepEqual(after.map((e) => e.name), before.map((e) => e.name));
  for (const i of [0, ...after.keys()].filter((i) => i !== 1)) assert.ok(after[i]!.data.equals(before[i]!.data), `entry ${after[i]!.name} changed`);
  // Byte for byte: everything before manifest.sig's header and after its data, tar headers and end of archive included.
  const was = aroundSignature(beforeBytes, before);
  const is = aroundSignature(afterBytes, after);
  assert.ok(is.head.equals(was.head));
  assert.ok(is.tail.equals(was.tail));
  assert.equal((await stat(bundle)).mode, modeBefore);
  assert.deepEqual(recordsOf(after[1]!.data).map((x) => x.keyId), [k1.keyId, k2.keyId]);
  // The record k1 made at build is kept as it was.
  assert.deepEqual(recordsOf(after[1]!.data)[0], recordsOf(before[1]!.data)[0]);

  const both = await trustDir(dir, 'trust-both', [k1.pubPath, k2.pubPath]);
  assert.equal((await verify(bundle, both)).code, 0);
  assert.equal((await verify(bundle, k2.trustDir)).code, 0);
  const neither = await verify(bundle, k3.trustDir);
  assert.equal(neither.code, 10);
  assert.equal(neither.out.reason, 'unknown-key');

  // k2 again: its record is replaced, not added.
  const again = await sign(bundle, k2.keyPath);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(recordsOf((await entries(bundle))[1]!.data).length, 2);
  assert.equal((await verify(bundle, both)).code, 0);
  const head = aroundSignature(await readFile(bundle), await entries(bundle));
  assert.ok(head.tail.equals(was.tail));

  // A flipped bit in k2's signature, with only k2 trusted: a bad signature, not a pass on k1's.
  const flipped = await entries(bundle);
  const records = recordsOf(flipped[1]!.data);
  const sig = Buffer.from(records[1]!.signature, 'base64');
  sig[10] = sig[10]! ^ 0x01;
  records[1]!.signature = sig.toString('base64');
  flipped[1]!.data = Buffer.from(JSON.stringify({ signatures: records }));
  const tampered = join(dir, 'tampered.airlock');
  await writeFile(tampered, await pack(flipped));
  const bad = await verify(tampered, k2.trustDir);
  assert.equal(bad.code, 10);
  assert.equal(bad.out.reason, 'bad-signature');
  assert.equal((await verify(tampered, k1.trustDir)).code, 0);
});

test('bundle sign with an OpenSSH key (ssh-keygen -Y sign): an sshsig record that its .pub line alone verifies', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const k1 = await makeSigner(dir, 'k1');
  const bundle = await buildBundle(dir, k1);
  const before = await entries(bundle);
  const sshKey = join(dir, 'ssh', 'S');
  await mkdir(join(dir, 'ssh'));
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'vendor@test', '-f', sshKey]);

  const r = await sign(bundle, sshKey);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const after = await entries(bundle);
  const records = recordsOf(after[1]!.data);
  assert.equal(records.length, 2);
  assert.equal(records[1]!.algorithm, 'sshsig');
  for (const i of [0, ...after.keys()].filter((i) => i !== 1)) assert.ok(after[i]!.data.equals(before[i]!.data));

  const trust = join(dir, 'trust-ssh');
  await mkdir(trust);
  await copyFile(`${sshKey}.pub`, join(trust, 's.pub'));
  const v = await verify(bundle, trust);
  assert.equal(v.code, 0, JSON.stringify(v.out));
  const id = await runCli(['key', 'id', `${sshKey}.pub`]);
  assert.equal(id.code, 0, id.stderr);
  assert.equal(id.stdout.trim(), records[1]!.keyId);

  // Without S.pub beside it, the public key comes from ssh-keygen -y: the same record's key.
  const lone = join(dir, 'lone');
  await mkdir(lone);
  await copyFile(sshKey, join(lone, 'S'));
  const relone = await sign(bundle, join(lone, 'S'));
  assert.equal(relone.code, 0, relone.stderr);
  assert.equal(recordsOf((await entries(bundle))[1]!.data).length, 2);
  assert.equal((await verify(bundle, trust)).code, 0);
});

test('bundle sign refuses a missing bundle, a file that is not a bundle (unchanged), a folder as key, no key, a parts index', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const k1 = await makeSigner(dir, 'k1');

  const missing = await sign(join(dir, 'none.airlock'), k1.keyPath);
  assert.equal(missing.code, 4, missing.stderr);

  const junk = join(dir, 'junk.airlock');
  await writeFile(junk, 'this is not a bundle\n'.repeat(100));
  const junkBefore = await stat(junk);
  const notBundle = await sign(junk, k1.keyPath);
  assert.equal(notBundle.code, 11, notBundle.stdout + notBundle.stderr);
  assert.equal((JSON.parse(notBundle.stdout) as { error: string }).error, 'integrity');
  assert.equal(await readFile(junk, 'utf8'), 'this is not a bundle\n'.repeat(100));
  assert.equal((await stat(junk)).mtimeMs, junkBefore.mtimeMs);

  const bundle = await buildBundle(dir, k1);
  const bytes = await readFile(bundle);
  const folder = await sign(bundle, dir);
  assert.equal(folder.code, 3, folder.stdout + folder.stderr);
  const noKey = await runCli(['bundle', 'sign', bundle]);
  assert.equal(noKey.code, 2, noKey.stderr);
  const parts = await sign(join(dir, 'out', 'demo-1.0.0.airlock.parts'), k1.keyPath);
  assert.equal(parts.code, 2, parts.stdout);
  assert.match(parts.stdout, /sign the bundle before splitting/);
  assert.ok((await readFile(bundle)).equals(bytes));
});

test('bundle sign through ssh-agent: --key names the .pub of a key the agent holds, as with a hardware key', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const k1 = await makeSigner(dir, 'k1');
  const bundle = await buildBundle(dir, k1);
  await mkdir(join(dir, 'ssh'));
  await mkdir(join(dir, 'pub-only'));
  const sshKey = join(dir, 'ssh', 'agent-key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', sshKey]);
  const pubOnly = join(dir, 'pub-only', 'agent-key.pub');
  await copyFile(`${sshKey}.pub`, pubOnly);

  const sock = join(dir, 'agent.sock');
  const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
  t.after(() => {
    agent.kill();
  });
  for (let i = 0; i < 100 && !existsSync(sock); i++) await sleep(50);
  const env = { SSH_AUTH_SOCK: sock };

  // Not in the agent yet: ssh-keygen fails, and says so as ssh-sign-failed.
  const before = await readFile(bundle);
  const absent = await runCli(['bundle', 'sign', bundle, '--key', pubOnly, '--json'], env);
  assert.equal(absent.code, 10, absent.stdout + absent.stderr);
  assert.equal((JSON.parse(absent.stdout) as { reason: string }).reason, 'ssh-sign-failed');
  assert.ok((await readFile(bundle)).equals(before));

  await run('ssh-add', [sshKey], { env: { ...process.env, ...env } });
  const r = await runCli(['bundle', 'sign', bundle, '--key', pubOnly, '--json'], env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const records = recordsOf((await entries(bundle))[1]!.data);
  assert.equal(records[1]!.algorithm, 'sshsig');
  const trust = join(dir, 'trust-agent');
  await mkdir(trust);
  await copyFile(pubOnly, join(trust, 'agent.pub'));
  assert.equal((await verify(bundle, trust)).code, 0);
});

test('bundle sign refuses a key whose signature does not verify, and leaves the bundle as it was', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const k1 = await makeSigner(dir, 'k1');
  const k2 = await makeSigner(dir, 'k2');
  const bundle = await buildBundle(dir, k1);
  const before = await readFile(bundle);
  const tmp = join(dir, 'out', '.demo-1.0.0.airlock.sign-tmp');

  // ssh-keygen itself refuses a .pub beside the key that is not its own.
  await mkdir(join(dir, 'ssh'));
  const a = join(dir, 'ssh', 'a');
  const b = join(dir, 'ssh', 'b');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', a]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', b]);
  await copyFile(`${b}.pub`, `${a}.pub`);
  const r = await sign(bundle, a);
  assert.equal(r.code, 10, r.stdout + r.stderr);
  assert.equal((JSON.parse(r.stdout) as { reason: string }).reason, 'ssh-sign-failed');
  assert.ok((await readFile(bundle)).equals(before));

  // A signer that signs with another key than the one it names (a wrong agent key): refused before the bundle is touched.
  const named = ed25519Signer(await loadPrivateKey(k1.keyPath), k1.keyPath);
  const wrong: ManifestSigner = { ...ed25519Signer(await loadPrivateKey(k2.keyPath), k2.keyPath), keyId: named.keyId, verify: named.verify };
  await assert.rejects(addSignatures(bundle, [wrong]), (e: AirlockError) => e.kind === 'signature' && e.reason === 'bad-signature');
  assert.ok((await readFile(bundle)).equals(before));
  assert.ok(!existsSync(tmp));
});

test('bundle sign signs an unsigned bundle: manifest.sig is added after manifest.json, as one record', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const k1 = await makeSigner(dir, 'k1');
  const built = await entries(await buildBundle(dir, k1));
  const unsigned = join(dir, 'unsigned.airlock');
  await writeFile(unsigned, await pack(built.filter((e) => e.name !== 'manifest.sig')));
  assert.equal((await verify(unsigned, k1.trustDir)).out.reason, 'unsigned');

  const r = await sign(unsigned, k1.keyPath);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const after = await entries(unsigned);
  assert.deepEqual(after.map((e) => e.name), built.map((e) => e.name));
  // One signer: the single-record form every reader takes, the same bytes the build wrote.
  assert.ok(after[1]!.data.equals(built[1]!.data));
  assert.equal((await verify(unsigned, k1.trustDir)).code, 0);
});
