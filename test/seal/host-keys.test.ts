import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { credentialIdentities, HostKeys, hostNamesKey } from '../../src/seal/host-keys.js';
import { keyedNameSuffix, namesKey } from '../../src/seal/names.js';
import { seal } from '../../src/seal/seal.js';
import { writeSiteKeyPair } from '../../src/seal/site-keys.js';
import { tempDir } from '../helpers/fixtures.js';

const text = (s: string) => new TextEncoder().encode(s);

test('a host without identities makes its own names key once, 0600, and every reader gets the same', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const state = join(dir, 'state');
  // Two makers at once (an agent and a command): one key wins, both read it.
  const [a, b] = await Promise.all([hostNamesKey(state), hostNamesKey(state)]);
  assert.equal(a.length, 32);
  assert.deepEqual(a, b);
  assert.equal((await stat(join(state, 'names.key'))).mode & 0o777, 0o600);
  assert.deepEqual(await hostNamesKey(state), a);
  const keys = new HostKeys({ given: [], fallback: join(dir, 'no-such-folder'), stateDir: state });
  const names = await keys.plainNames();
  assert.equal(names('app_pin', text('123456')), keyedNameSuffix('app_pin', text('123456'), a));
});

test('a names key file that is damaged or open to others is refused by name', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  await hostNamesKey(dir);
  const path = join(dir, 'names.key');
  await chmod(path, 0o644);
  await assert.rejects(hostNamesKey(dir), (e: Error & { reason?: string }) => e.reason === 'key-too-open' && e.message.includes(path));
  await chmod(path, 0o600);
  await writeFile(path, 'abcd\n');
  await assert.rejects(hostNamesKey(dir), { reason: 'bad-names-key' });
});

test('with identities, values in clear are named by the site key of the lowest key id, the same on every host', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  await mkdir(join(dir, 'keys'), { mode: 0o700 });
  const one = await writeSiteKeyPair(join(dir, 'keys', 'one'));
  const two = await writeSiteKeyPair(join(dir, 'keys', 'two'));
  const hostA = new HostKeys({ given: [join(dir, 'keys')], stateDir: join(dir, 'a') });
  const hostB = new HostKeys({ given: [two.identityPath, one.identityPath], stateDir: join(dir, 'b') });
  const held = await hostA.identities();
  const lowest = held.reduce((x, y) => (x.keyId < y.keyId ? x : y));
  assert.deepEqual(await hostA.plainNamesKey(), namesKey(lowest));
  assert.deepEqual(await hostB.plainNamesKey(), namesKey(lowest));
  // No host key is made where the site's is used.
  await assert.rejects(stat(join(dir, 'a', 'names.key')), { code: 'ENOENT' });
});

test('a sealed value opens in memory with the key of the identity that opened it', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const site = await writeSiteKeyPair(join(dir, 'site'));
  const keys = new HostKeys({ given: [site.identityPath], stateDir: dir });
  const opened = await keys.open(await seal(text('hunter2'), [site.recipient]), 'test blob');
  assert.equal(new TextDecoder().decode(opened.plaintext), 'hunter2');
  assert.deepEqual(opened.namesKey, namesKey((await keys.identities())[0]!));
});

test('the default folder counts only when it holds identities; a given path must exist', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const folder = join(dir, 'site-keys');
  await mkdir(folder, { mode: 0o700 });
  await writeFile(join(folder, 'README'), 'put NAME.identity here\n');
  assert.deepEqual(await new HostKeys({ given: [], fallback: folder, stateDir: dir }).identities(), []);
  const site = await writeSiteKeyPair(join(folder, 'site'));
  const held = await new HostKeys({ given: [], fallback: folder, stateDir: dir }).identities();
  assert.deepEqual(held.map((i) => i.keyId), [site.keyId]);
  await assert.rejects(new HostKeys({ given: [join(dir, 'missing.identity')], fallback: folder, stateDir: dir }).identities(), { reason: 'identity-not-found' });
});

test('systemd credentials: every site-identity_NAME is an identity; the bare fallback id is not', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const site = await writeSiteKeyPair(join(dir, 'site-a'));
  // Laid out as systemd does for LoadCredential=site-identity:/etc/airlock/site-keys, with the SetCredential= fallback.
  const creds = join(dir, 'credentials');
  await mkdir(creds, { mode: 0o700 });
  await copyFile(site.identityPath, join(creds, 'site-identity_site-a.identity'));
  // systemd 257 makes a credential 0440 root:root and lets the service's user read it through an ACL.
  await chmod(join(creds, 'site-identity_site-a.identity'), 0o440);
  await writeFile(join(creds, 'site-identity'), '\n', { mode: 0o400 });
  await writeFile(join(creds, 'swarm-join-token'), '\n', { mode: 0o400 });
  const paths = credentialIdentities({ CREDENTIALS_DIRECTORY: creds });
  assert.deepEqual(paths, [join(creds, 'site-identity_site-a.identity')]);
  process.env.CREDENTIALS_DIRECTORY = creds;
  t.after(() => delete process.env.CREDENTIALS_DIRECTORY);
  const held = await new HostKeys({ given: paths, stateDir: dir }).identities();
  assert.deepEqual(held.map((i) => i.keyId), [site.keyId]);
  assert.deepEqual(credentialIdentities({}), []);
  // Only there: the same 0440 file anywhere else is open to others, and a credential others may read is refused too.
  await copyFile(site.identityPath, join(dir, 'elsewhere.identity'));
  await chmod(join(dir, 'elsewhere.identity'), 0o440);
  await assert.rejects(new HostKeys({ given: [join(dir, 'elsewhere.identity')], stateDir: dir }).identities(), { reason: 'key-too-open' });
  await chmod(join(creds, 'site-identity_site-a.identity'), 0o444);
  await assert.rejects(new HostKeys({ given: paths, stateDir: dir }).identities(), { reason: 'key-too-open' });
});
