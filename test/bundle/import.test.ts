import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { JournalReader, readJournal } from '../helpers/journal-read.js';
import { makeProject, makeSigner, runCli, tempDir } from '../helpers/fixtures.js';
import { sha256File } from '../helpers/images.js';

async function buildVersion(dir: string, keyPath: string, version: string, appText?: string): Promise<string> {
  const project = join(dir, `project-${version}`);
  await mkdir(project, { recursive: true });
  const def = await makeProject(project, { version, ...(appText ? { appText } : {}) });
  const r = await runCli(['bundle', 'build', '-f', def, '--key', keyPath, '-o', join(dir, 'out'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { path: string }).path;
}

async function storeListing(state: string): Promise<Map<string, { ino: number; mtimeMs: number }>> {
  const dir = join(state, 'blobs', 'sha256');
  const out = new Map<string, { ino: number; mtimeMs: number }>();
  for (const name of await readdir(dir)) {
    const s = await stat(join(dir, name));
    out.set(name, { ino: s.ino, mtimeMs: s.mtimeMs });
  }
  return out;
}

test('import stores every blob by its hash, journals it, and writes nothing twice', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const v1 = await buildVersion(dir, signer.keyPath, '1.0.0');
  const state = join(dir, 'state');
  const args = (file: string) => ['bundle', 'import', file, '--state', state, '--trust', signer.trustDir, '--json'];

  const first = await runCli(args(v1));
  assert.equal(first.code, 0, first.stderr);
  const r1 = JSON.parse(first.stdout) as { newBlobs: number; blobs: number; alreadyImported: boolean };
  assert.equal(r1.newBlobs, r1.blobs);
  assert.equal(r1.alreadyImported, false);

  // Every stored file is named by the SHA-256 of its bytes.
  const listing = await storeListing(state);
  assert.equal(listing.size, r1.blobs);
  for (const hex of listing.keys()) assert.equal(await sha256File(join(state, 'blobs', 'sha256', hex)), `sha256:${hex}`);
  assert.deepEqual(await readdir(join(state, 'blobs', 'staging')), []);

  const again = await runCli(args(v1));
  assert.equal(again.code, 0, again.stderr);
  assert.equal((JSON.parse(again.stdout) as { newBlobs: number; alreadyImported: boolean }).newBlobs, 0);
  assert.deepEqual(await storeListing(state), listing, 'no blob rewritten');

  // v2 changes only the app layer (and the files that name the version): the base layer is shared.
  const v2 = await buildVersion(dir, signer.keyPath, '1.1.0');
  const second = JSON.parse((await runCli(args(v2))).stdout) as { newBlobs: number; blobs: number };
  assert.ok(second.newBlobs < second.blobs);
  const baseHex = (await sha256File(join(dir, 'project-1.1.0', 'images', 'base.tar'))).slice(7);
  assert.deepEqual((await storeListing(state)).get(baseHex), listing.get(baseHex), 'shared base layer untouched');

  const j = JournalReader.open(state);
  t.after(() => j.close());
  assert.equal(j.journalMode(), 'wal');
  const bundles = j.bundles().map(({ name, version, key_id }) => ({ name, version, key_id }));
  assert.deepEqual(bundles, [
    { name: 'demo', version: '1.0.0', key_id: signer.keyId },
    { name: 'demo', version: '1.1.0', key_id: signer.keyId },
  ]);
  const blobCount = j.blobs().length;
  assert.equal(blobCount, (await storeListing(state)).size);
  const events = j.events({ kind: 'bundle.import' }).map(({ outcome, subject }) => ({ outcome, subject }));
  assert.deepEqual(events, [
    { outcome: 'ok', subject: 'demo 1.0.0' },
    { outcome: 'ok', subject: 'demo 1.0.0' },
    { outcome: 'ok', subject: 'demo 1.1.0' },
  ]);
});

test('verify and inspect report, and change nothing on the host', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const v1 = await buildVersion(dir, signer.keyPath, '1.0.0');
  const state = join(dir, 'state');
  const verify = await runCli(['bundle', 'verify', v1, '--trust', signer.trustDir, '--state', state, '--json']);
  assert.equal(verify.code, 0, verify.stderr);
  const v = JSON.parse(verify.stdout) as { valid: boolean; name: string; version: string; keyId: string };
  assert.deepEqual([v.valid, v.name, v.version, v.keyId], [true, 'demo', '1.0.0', signer.keyId]);
  await assert.rejects(stat(state), 'verify creates no state');

  const inspect = await runCli(['bundle', 'inspect', v1, '--trust', signer.trustDir, '--json']);
  assert.equal(inspect.code, 0, inspect.stderr);
  const i = JSON.parse(inspect.stdout) as { signature: { status: string; keyId: string; signers: string[] }; manifest: { images: unknown[]; stacks: unknown[] } };
  assert.deepEqual(i.signature, { status: 'valid', keyId: signer.keyId, signers: [signer.keyId] });
  assert.equal(i.manifest.images.length, 2);

  // Inspect still shows the manifest when the signer is not trusted, and says so.
  const other = await makeSigner(dir, 'other');
  const untrusted = await runCli(['bundle', 'inspect', v1, '--trust', other.trustDir]);
  assert.equal(untrusted.code, 0);
  assert.match(untrusted.stdout, new RegExp(`signature unknown-key, key ${signer.keyId}`));
  assert.match(untrusted.stdout, /demo\/web:1\.0\.0/);
  const refused = await runCli(['bundle', 'verify', v1, '--trust', other.trustDir]);
  assert.equal(refused.code, 10);
  assert.match(refused.stderr, new RegExp(`unknown key ${signer.keyId}`));
});

test('an import that would not fit on the disk is refused before writing', async (t) => {
  const { dir, cleanup } = await tempDir();
  const small = join(dir, 'small');
  await mkdir(small);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', small], { stdio: 'ignore' });
  } catch {
    await cleanup();
    t.skip('needs root to mount a small tmpfs');
    return;
  }
  try {
    const signer = await makeSigner(dir);
    const v1 = await buildVersion(dir, signer.keyPath, '1.0.0');
    const r = await runCli(['bundle', 'import', v1, '--state', small, '--trust', signer.trustDir, '--json']);
    assert.equal(r.code, 14, r.stdout + r.stderr);
    const err = JSON.parse(r.stdout) as { reason: string; message: string };
    assert.equal(err.reason, 'disk-full');
    assert.match(err.message, /not enough free space in .*: need \d+ MiB plus 256 MiB spare/);
    assert.deepEqual(await readdir(join(small, 'blobs', 'sha256')).catch(() => []), []);
    readJournal(small, (j) => {
      assert.deepEqual(j.events().map(({ outcome, reason }) => ({ outcome, reason })), [{ outcome: 'failed', reason: 'disk-full' }]);
      assert.equal(j.bundles().length, 0);
    });
  } finally {
    execFileSync('umount', [small]);
    await cleanup();
  }
});

test('CLI basics: --help on every command, usage errors exit 2, a missing bundle exits 4', async () => {
  for (const cmd of [['key', 'generate'], ['key', 'id'], ['bundle', 'build'], ['bundle', 'inspect'], ['bundle', 'verify'], ['bundle', 'import']]) {
    const r = await runCli([...cmd, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`^Usage: airlock ${cmd.join(' ')}`));
  }
  const top = await runCli(['--help']);
  assert.match(top.stdout, /bundle verify/);
  assert.equal((await runCli(['bundle', 'verify'])).code, 2);
  assert.equal((await runCli(['bundle', 'verify', 'x', '--bogus'])).code, 2);
  assert.equal((await runCli(['frobnicate'])).code, 2);
  const missing = await runCli(['bundle', 'inspect', '/nonexistent/x.airlock']);
  assert.equal(missing.code, 4);
  assert.match(missing.stderr, /bundle not found: \/nonexistent\/x\.airlock/);
  const version = await runCli(['--version']);
  assert.equal(version.stdout.trim(), (JSON.parse(await readFile('package.json', 'utf8')) as { version: string }).version);
});
