import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readIdentityFile, readRecipientFile } from '../../src/seal/site-keys.js';
import { runCli, tempDir } from '../helpers/fixtures.js';

interface SiteOut {
  kind: string;
  keyId: string;
  recipient: string;
  identityPath: string;
  recipientPath: string;
}

test('key generate --kind site writes a 0600 identity and its recipient file, and prints the recipient and key id', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const r = await runCli(['key', 'generate', '--kind', 'site', '--out', join(dir, 'keys', 'site-a'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as SiteOut;
  assert.equal(out.kind, 'site');
  assert.equal(out.identityPath, join(dir, 'keys', 'site-a.identity'));
  assert.equal(out.recipientPath, join(dir, 'keys', 'site-a.recipient'));
  assert.equal((await stat(out.identityPath)).mode & 0o777, 0o600);
  assert.equal((await stat(out.recipientPath)).mode & 0o077, 0o044, 'the recipient is public');
  assert.match(out.recipient, /^age1[0-9a-z]{58}$/);
  assert.equal(out.keyId, createHash('sha256').update(out.recipient).digest('hex').slice(0, 16));
  const [id] = await readIdentityFile(out.identityPath);
  assert.equal(id!.recipient, out.recipient);
  assert.deepEqual(readRecipientFile(out.recipientPath), [{ recipient: out.recipient, keyId: out.keyId }]);
  // The secret is in the identity file only, never in what the command prints.
  assert.equal(r.stdout.includes('AGE-SECRET-KEY'), false);
  assert.equal((await readFile(out.recipientPath, 'utf8')).includes('AGE-SECRET-KEY'), false);

  const text = await runCli(['key', 'generate', '--kind', 'site', '-o', join(dir, 'keys', 'site-b')]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^site key id [0-9a-f]{16}\nrecipient: age1[0-9a-z]{58}\nidentity: {2}.*site-b\.identity \(keep it on the site's hosts, root-only\)\nrecipient file: .*site-b\.recipient \(give it to the vendor\)\n$/);
  assert.equal(text.stdout.includes('AGE-SECRET-KEY'), false);
});

test('key id gives a site key id from the recipient file and from the identity file', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const out = JSON.parse((await runCli(['key', 'generate', '--kind', 'site', '--out', join(dir, 'site'), '--json'])).stdout) as SiteOut;
  for (const file of [out.recipientPath, out.identityPath]) {
    const r = await runCli(['key', 'id', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${out.keyId}\n`);
  }
  assert.deepEqual(JSON.parse((await runCli(['key', 'id', out.recipientPath, '--json'])).stdout), { keyIds: [out.keyId] });
  // An identity file open to others is refused here too, with the fix.
  await chmod(out.identityPath, 0o644);
  const open = await runCli(['key', 'id', out.identityPath]);
  assert.equal(open.code, 3);
  assert.match(open.stderr, /site identity .*site\.identity is open to others \(mode 0644\)/);
  assert.match(open.stderr, /chmod 600/);
});

test('key generate --kind site refuses to overwrite, and refuses an unknown kind, leaving the files as they were', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const base = join(dir, 'site');
  assert.equal((await runCli(['key', 'generate', '--kind', 'site', '--out', base])).code, 0);
  const before = await readFile(`${base}.identity`, 'utf8');
  const again = await runCli(['key', 'generate', '--kind', 'site', '--out', base]);
  assert.equal(again.code, 3);
  assert.match(again.stderr, /key file already exists: .*site\.identity/);
  assert.equal(await readFile(`${base}.identity`, 'utf8'), before);

  const kind = await runCli(['key', 'generate', '--kind', 'rsa', '--out', join(dir, 'other')]);
  assert.equal(kind.code, 2);
  assert.match(kind.stderr, /--kind must be signing or site, not "rsa"/);
  assert.deepEqual((await readdir(dir)).sort(), ['site.identity', 'site.recipient']);

  // A recipient file in the way: no identity is left without it.
  await writeFile(join(dir, 'lone.recipient'), 'age1…\n');
  const lone = await runCli(['key', 'generate', '--kind', 'site', '--out', join(dir, 'lone')]);
  assert.equal(lone.code, 3);
  assert.match(lone.stderr, /key file already exists: .*lone\.recipient/);
  assert.deepEqual((await readdir(dir)).sort(), ['lone.recipient', 'site.identity', 'site.recipient']);
});
