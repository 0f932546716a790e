import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSiteIdentity, readIdentities, readIdentityFile, readRecipientFile, readRecipients, siteKeyId, writeSiteKeyPair } from '../../src/seal/site-keys.js';
import { tempDir } from '../helpers/fixtures.js';

test('a site identity gives its recipient; the key id is the first 16 hex of SHA-256 of the recipient string', async () => {
  const site = await generateSiteIdentity();
  assert.match(site.identity, /^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
  assert.match(site.recipient, /^age1[0-9a-z]{58}$/);
  assert.equal(site.keyId, createHash('sha256').update(site.recipient).digest('hex').slice(0, 16));
  assert.equal(siteKeyId(site.recipient.toUpperCase()), site.keyId, 'the id does not depend on the case the recipient was written in');
  assert.notEqual((await generateSiteIdentity()).keyId, site.keyId);
});

test('the identity file written is read back, and its recipient file names the same key', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const files = await writeSiteKeyPair(join(dir, 'site-a'));
  const [id] = await readIdentityFile(files.identityPath);
  assert.equal(id?.keyId, files.keyId);
  assert.equal(id?.recipient, files.recipient);
  assert.deepEqual(readRecipientFile(files.recipientPath), [{ recipient: files.recipient, keyId: files.keyId }]);
  await assert.rejects(writeSiteKeyPair(join(dir, 'site-a')), { reason: 'key-exists' });
});

test('an identity file is refused when missing, open to group or others, or not an identity', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const files = await writeSiteKeyPair(join(dir, 'site'));
  await assert.rejects(readIdentityFile(join(dir, 'none.identity')), (e: { kind: string; reason: string; message: string; hint: string }) => {
    assert.equal(e.kind, 'notFound');
    assert.equal(e.reason, 'identity-not-found');
    assert.match(e.message, /none\.identity does not exist/);
    assert.match(e.hint, /key generate --kind site/);
    return true;
  });
  for (const mode of [0o640, 0o604, 0o620, 0o644]) {
    await chmod(files.identityPath, mode);
    await assert.rejects(readIdentityFile(files.identityPath), (e: { reason: string; message: string; hint: string }) => {
      assert.equal(e.reason, 'key-too-open');
      assert.match(e.message, new RegExp(`site identity .*site\\.identity is open to others \\(mode 0${mode.toString(8)}\\)`));
      assert.match(e.hint, /chmod 600/);
      return true;
    });
  }
  await chmod(files.identityPath, 0o600);
  const bad = async (name: string, text: string, message: RegExp) => {
    const p = join(dir, name);
    await writeFile(p, text, { mode: 0o600 });
    await assert.rejects(readIdentityFile(p), (e: { kind: string; reason: string; message: string }) => {
      assert.equal(e.kind, 'config');
      assert.equal(e.reason, 'bad-identity-file');
      assert.match(e.message, message);
      return true;
    });
  };
  await bad('empty.identity', '# only a comment\n\n', /holds no identity/);
  await bad('pem.identity', '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n', /line 1 is not an age X25519 identity/);
  await bad('public.identity', `# oops\n${files.recipient}\n`, /line 2 is a recipient \(age1…\), the public half/);
  const [id] = await readIdentityFile(files.identityPath);
  const flipped = id!.identity.slice(0, -1) + (id!.identity.endsWith('Q') ? 'P' : 'Q');
  await bad('checksum.identity', `${flipped}\n`, /line 1 is not a valid age identity \(its checksum does not match\)$/);
  await bad('pq.identity', `AGE-SECRET-KEY-PQ-1${'Q'.repeat(58)}\n`, /line 1 is not an age X25519 identity/);
});

test('several identities are held at once, from files and folders, each once', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const folder = join(dir, 'site-keys');
  await mkdir(folder);
  const old = await writeSiteKeyPair(join(folder, 'old'));
  const current = await writeSiteKeyPair(join(folder, 'new'));
  await writeFile(join(folder, 'README'), 'rotation: new since 2026-01\n');
  const extra = await generateSiteIdentity();
  const two = join(dir, 'two.identity');
  await writeFile(two, `${extra.identity}\n# and the old one again\n${(await readIdentityFile(old.identityPath))[0]!.identity}\n`, { mode: 0o600 });
  const held = await readIdentities([folder, two]);
  assert.deepEqual(held.map((h) => h.keyId).sort(), [old.keyId, current.keyId, extra.keyId].sort());
  const empty = join(dir, 'empty');
  await mkdir(empty);
  await assert.rejects(readIdentities([empty]), { reason: 'no-identity', message: new RegExp(`${empty} holds no \\.identity file`) });
  // One open file in the folder refuses the whole set: a copy of it may exist.
  await chmod(old.identityPath, 0o644);
  await assert.rejects(readIdentities([folder]), { reason: 'key-too-open' });
});

test('recipient files: one age1… per line with comments; a secret identity or junk is refused by line', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const a = await generateSiteIdentity();
  const b = await generateSiteIdentity();
  const both = join(dir, 'sites.recipient');
  await writeFile(both, `# site a\n${a.recipient}\n\n  # site b\n${b.recipient}\n`);
  assert.deepEqual(readRecipientFile(both).map((r) => r.keyId), [a.keyId, b.keyId]);
  const onlyA = join(dir, 'a.recipient');
  await writeFile(onlyA, `${a.recipient}\n`);
  assert.deepEqual(readRecipients([onlyA, both]).map((r) => r.keyId), [a.keyId, b.keyId]);
  const bad = async (text: string, message: RegExp, hint?: RegExp) => {
    const p = join(dir, 'bad.recipient');
    await writeFile(p, text);
    assert.throws(() => readRecipientFile(p), (e: { reason: string; message: string; hint: string }) => {
      assert.equal(e.reason, 'bad-recipient-file');
      assert.match(e.message, message);
      if (hint) assert.match(e.hint, hint);
      return true;
    });
  };
  await bad(`${a.recipient}\n${a.identity}\n`, /line 2 is a secret identity, not a recipient/, /must never leave the site/);
  await bad('ssh-ed25519 AAAAC3Nza\n', /line 1 is not a valid recipient/);
  await bad(`${a.recipient.slice(0, -1)}${a.recipient.endsWith('q') ? 'p' : 'q'}\n`, /line 1 is not a valid recipient: invalid checksum/i);
  await bad('\n# nothing\n', /holds no recipient/);
  assert.throws(() => readRecipientFile(join(dir, 'none.recipient')), { kind: 'notFound' });
  assert.throws(() => readRecipientFile(dir), { reason: 'not-a-file' });
});
