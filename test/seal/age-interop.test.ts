/**
 * airlock's sealing against Debian's `age` tool (package age), both ways: what
 * a site's security officer can check by hand is what airlock does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { seal, unseal, unsealWithIdentity } from '../../src/seal/seal.js';
import { generateSiteIdentity, readIdentityFile, readRecipientFile, writeSiteKeyPair } from '../../src/seal/site-keys.js';
import { tempDir } from '../helpers/fixtures.js';

/** Why age cannot be run here, or false. Under CI a missing age fails the test: CI must prove interop. */
function ageMissing(): string | false {
  const missing = ['age', 'age-keygen'].filter((bin) => spawnSync(bin, ['--version'], { stdio: 'ignore' }).error);
  if (missing.length === 0) return false;
  const why = `${missing.join(' and ')} not installed (Debian package age; scripts/install-deps installs it)`;
  if (process.env.CI === 'true') throw new Error(`${why}: CI must run the age interop tests`);
  return why;
}
const skip = ageMissing();

function run(bin: string, args: string[], input?: Uint8Array): Buffer {
  const r = spawnSync(bin, args, { input, maxBuffer: 16 << 20 });
  assert.equal(r.status, 0, `${bin} ${args.join(' ')}: ${r.stderr?.toString()}`);
  return r.stdout;
}

const value = new TextEncoder().encode('DB_PASSWORD=pä$$wörd 271828\n');

test('airlock seals, age -d -i opens it with the identity airlock made', { skip }, async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const site = await writeSiteKeyPair(join(dir, 'site'));
  const [recipient] = readRecipientFile(site.recipientPath);
  const sealedPath = join(dir, 'db.age');
  await writeFile(sealedPath, await seal(value, [recipient!.recipient]));
  assert.deepEqual(run('age', ['-d', '-i', site.identityPath, sealedPath]), Buffer.from(value));
  // age derives the same recipient from airlock's identity file.
  assert.equal(run('age-keygen', ['-y', site.identityPath]).toString().trim(), site.recipient);
});

test('age -r seals, airlock opens it with the identity age-keygen made', { skip }, async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const idPath = join(dir, 'site.identity');
  run('age-keygen', ['-o', idPath]);
  const [id] = await readIdentityFile(idPath);
  assert.equal(id!.recipient, run('age-keygen', ['-y', idPath]).toString().trim());
  const sealedPath = join(dir, 'db.age');
  run('age', ['-r', id!.recipient, '-o', sealedPath], value);
  assert.deepEqual(await unseal(await readFile(sealedPath), [id!]), value);
  // A value larger than one 64 KiB chunk of age's STREAM, too.
  const big = new Uint8Array(200_000).map((_, i) => i % 251);
  run('age', ['-r', id!.recipient, '-o', sealedPath], big);
  assert.deepEqual(await unseal(await readFile(sealedPath), [id!]), big);
});

test('sealed to three sites by airlock: age opens it with each site identity, not with a fourth', { skip }, async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const sites = await Promise.all(['a', 'b', 'c', 'd'].map((n) => writeSiteKeyPair(join(dir, n))));
  const sealedPath = join(dir, 'three.age');
  await writeFile(sealedPath, await seal(value, sites.slice(0, 3).map((s) => s.recipient)));
  for (const s of sites.slice(0, 3)) assert.deepEqual(run('age', ['-d', '-i', s.identityPath, sealedPath]), Buffer.from(value));
  const fourth = spawnSync('age', ['-d', '-i', sites[3]!.identityPath, sealedPath]);
  assert.notEqual(fourth.status, 0);
  assert.match(fourth.stderr.toString(), /no identity matched any of the recipients/);
});

test('sealed to three sites by age: airlock opens it with each site identity and refuses a fourth', { skip }, async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const ids = await Promise.all(Array.from({ length: 4 }, () => generateSiteIdentity()));
  const recipientsFile = join(dir, 'sites.recipient');
  await writeFile(recipientsFile, `# three sites\n${ids.slice(0, 3).map((i) => i.recipient).join('\n')}\n`);
  const sealed = run('age', ['-R', recipientsFile], value);
  for (const id of ids.slice(0, 3)) {
    const opened = await unsealWithIdentity(sealed, [id]);
    assert.deepEqual(opened.plaintext, value);
    assert.equal(opened.openedBy.keyId, id.keyId);
  }
  await assert.rejects(unseal(sealed, [ids[3]!]), { reason: 'sealed-elsewhere', message: /sealed to 3 site recipients, none of the 1 identity this host holds/ });
  // age's recipients file format is airlock's too.
  assert.deepEqual(readRecipientFile(recipientsFile).map((r) => r.keyId), ids.slice(0, 3).map((i) => i.keyId));
});
