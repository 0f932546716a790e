/**
 * A host installed with a root of trust, driven through the real CLI: the vendor's commands
 * write the metadata, the host takes it with `trust update`, and `bundle verify` counts
 * signatures against the release roles and checks freshness against the timestamp. Every
 * refusal has its reason and exit code, is journaled, and leaves the held versions as they were.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chown, copyFile, lstat, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { writeWhole } from '../../src/store/durable.js';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeProject, runCli, tempDir } from '../helpers/fixtures.js';
import { readJournal } from '../helpers/journal-read.js';
import { makeTrustRepo, resign, roleKeyId, type TrustRepo } from '../helpers/trust-repo.js';
import { Bundle } from '../helpers/tamper.js';
import { parseSignatures, signatureEntryBytes } from '../../src/bundle/manifest.js';

interface Refusal {
  error: string;
  reason: string;
  message: string;
  exitCode: number;
}

const refusal = (stdout: string): Refusal => JSON.parse(stdout) as Refusal;

async function held(t: TrustRepo): Promise<Record<string, number | null>> {
  const s = JSON.parse((await t.cli(['trust', 'status', '--json'])).stdout) as Record<string, { version: number } | null>;
  return Object.fromEntries(['root', 'targets', 'snapshot', 'timestamp'].map((k) => [k, s[k]?.version ?? null]));
}

/** Builds bundle NAME VERSION signed by the first key, then signed by each further key with `bundle sign`. */
async function bundleBy(t: TrustRepo, dir: string, name: string, version: string, signers: (keyof TrustRepo['keys'])[]): Promise<string> {
  const project = join(dir, `${name}-${version}-${signers.join('-')}`);
  const def = await makeProject(project, { name, version });
  const built = await t.cli(['bundle', 'build', '-f', def, '--key', t.keys[signers[0]!].privatePath, '-o', join(project, 'out'), '--json']);
  const file = (JSON.parse(built.stdout) as { path: string }).path;
  for (const s of signers.slice(1)) await t.cli(['bundle', 'sign', file, '--key', t.keys[s].privatePath]);
  return file;
}

const verify = (t: TrustRepo, file: string) => runCli(['bundle', 'verify', file, '--json'], t.env);

test('a host with a root takes release keys from the metadata alone: a key only trusted.d lists is refused', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const t = await makeTrustRepo(dir);
    await t.targets();
    await t.timestamp({ demo: '1.0.0' });
    const took = JSON.parse((await t.cli(['trust', 'update', ...t.files('targets.json', 'snapshot.json', 'timestamp.json'), '--json'])).stdout) as { taken: string[] };
    assert.deepEqual(took.taken, ['targets v1', 'snapshot v1', 'timestamp v1']);
    assert.deepEqual(await held(t), { root: 1, targets: 1, snapshot: 1, timestamp: 1 });

    // A key dropped into trusted.d, the way the simple mode trusts keys, counts for nothing here.
    const local = await bundleBy(t, dir, 'demo', '1.0.0', ['root2']);
    await copyFile(t.keys.root2.publicPath, join(t.trustDir, 'local.pub'));
    const r = await verify(t, local);
    assert.equal(r.code, 10, r.stdout + r.stderr);
    assert.equal(refusal(r.stdout).reason, 'not-in-root');
    assert.match(refusal(r.stdout).message, /listed only in .*local\.pub/);

    const ok = await verify(t, await bundleBy(t, dir, 'demo', '1.0.0', ['alice', 'bob']));
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.deepEqual((JSON.parse(ok.stdout) as { signers: string[] }).signers.length, 2);
  } finally {
    await cleanup();
  }
});

test('2 of 3 release engineers: one signature is refused naming who signed and who is missing; a second makes it; the same key twice counts once; a key of another role counts nothing', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const t = await makeTrustRepo(dir);
    await t.publish({ demo: '1.0.0' });

    const file = await bundleBy(t, dir, 'demo', '1.0.0', ['alice']);
    const one = await verify(t, file);
    assert.equal(one.code, 10, one.stdout + one.stderr);
    assert.equal(refusal(one.stdout).reason, 'below-threshold');
    assert.match(refusal(one.stdout).message, /needs 2 signatures of role stacks .*signed by alice \([0-9a-f]{16}\); missing 1 more of bob \([0-9a-f]{16}\), carol/);

    // alice's record twice: the format allows a list, the count does not double.
    const good = await Bundle.from(await readFile(file));
    const [record] = parseSignatures(good.entry('manifest.sig').data);
    const twice = join(dir, 'twice.airlock');
    await writeFile(twice, good.withSignatureBytes(signatureEntryBytes([record!, record!])).pack());
    const dup = await verify(t, twice);
    assert.equal(dup.code, 10, dup.stdout + dup.stderr);
    assert.equal(refusal(dup.stdout).reason, 'duplicate-signature');
    assert.match(refusal(dup.stdout).message, /alice \([0-9a-f]{16}\) signed twice, which counts once/);

    // eve signs engine bundles only.
    const byEve = join(dir, 'eve.airlock');
    await copyFile(file, byEve);
    await t.cli(['bundle', 'sign', byEve, '--key', t.keys.eve.privatePath]);
    const outside = await verify(t, byEve);
    assert.equal(outside.code, 10);
    assert.equal(refusal(outside.stdout).reason, 'key-not-delegated', outside.stdout);
    assert.match(refusal(outside.stdout).message, /is a release key of engine \(engine\/\*\) only/);

    await t.cli(['bundle', 'sign', file, '--key', t.keys.bob.privatePath]);
    const two = await verify(t, file);
    assert.equal(two.code, 0, two.stdout + two.stderr);
  } finally {
    await cleanup();
  }
});

test('freshness: a replayed older release and an unlisted name are refused by the timestamp; the current one passes; an expired timestamp stops every bundle', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const t = await makeTrustRepo(dir);
    await t.publish({ demo: '1.1.0' });

    const old = await verify(t, await bundleBy(t, dir, 'demo', '1.0.0', ['alice', 'bob']));
    assert.equal(old.code, 13, old.stdout + old.stderr);
    assert.equal(refusal(old.stdout).reason, 'superseded');
    assert.match(refusal(old.stdout).message, /demo 1\.0\.0 is older than 1\.1\.0, which timestamp v1 .* names as current/);

    const current = await bundleBy(t, dir, 'demo', '1.1.0', ['alice', 'carol']);
    assert.equal((await verify(t, current)).code, 0);

    const unlisted = await verify(t, await bundleBy(t, dir, 'tools', '1.0.0', ['alice', 'bob']));
    assert.equal(unlisted.code, 13, unlisted.stdout);
    assert.equal(refusal(unlisted.stdout).reason, 'not-in-timestamp');

    await t.timestamp({}, ['--expires', '2s']);
    await t.cli(['trust', 'update', ...t.files('timestamp.json')]);
    await sleep(2500);
    const expired = await verify(t, current);
    assert.equal(expired.code, 21, expired.stdout + expired.stderr);
    assert.equal(refusal(expired.stdout).reason, 'timestamp-expired');
  } finally {
    await cleanup();
  }
});

test('bad trust metadata is refused with its own reason and exit code 21, journaled, and the held versions stay', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const t = await makeTrustRepo(dir);
    await t.publish({ demo: '1.0.0' });
    const oldTimestamp = join(dir, 'timestamp-v1.json');
    await copyFile(join(t.repo, 'timestamp.json'), oldTimestamp);
    await t.timestamp({ demo: '1.0.0' });
    await t.cli(['trust', 'update', ...t.files('timestamp.json')]);
    const before = await held(t);
    assert.deepEqual(before, { root: 1, targets: 1, snapshot: 1, timestamp: 2 });

    const timestampKey = await roleKeyId(t.repo, 'timestamp');
    const targetsKey = await roleKeyId(t.repo, 'targets');
    const future = join(dir, 'future.json');
    await resign(join(t.repo, 'timestamp.json'), t.keys.timestamp, timestampKey, (s) => {
      s.version = 3;
      (s['x-airlock'] as { issued: string }).issued = new Date(Date.now() + 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    }, future);
    const forged = join(dir, 'forged-targets.json');
    await resign(join(t.repo, 'targets.json'), t.keys.alice, targetsKey, (s) => void (s.version = 2), forged);
    const expiredTargets = join(dir, 'expired-targets.json');
    await resign(join(t.repo, 'targets.json'), t.keys.targets, targetsKey, (s) => {
      s.version = 2;
      s.expires = '2020-01-01T00:00:00Z';
    }, expiredTargets);
    // Root v2 hands the root role to root1 and root2, 2 of 2, but only root1 signs it.
    await t.cli(['trust', 'root', '--repo', t.repo, '--root-key', t.keys.root1.publicPath, '--root-key', t.keys.root2.publicPath, '--root-threshold', '2', '--targets-key', t.keys.targets.publicPath, '--timestamp-key', t.keys.timestamp.publicPath, '--sign', t.keys.root1.privatePath]);
    // Kept as first written: signed by root1 alone, below v2's own threshold of 2.
    const halfSignedRoot = join(dir, '2.root.json');
    await copyFile(join(t.repo, '2.root.json'), halfSignedRoot);
    // Root v3 signed by both (the threshold of v2 and its own), but v2 never reaches the host.
    await t.cli(['trust', 'sign', join(t.repo, '2.root.json'), '--key', t.keys.root2.privatePath]);
    await t.cli(['trust', 'root', '--repo', t.repo, '--root-key', t.keys.root1.publicPath, '--root-key', t.keys.root2.publicPath, '--root-threshold', '2', '--targets-key', t.keys.targets.publicPath, '--timestamp-key', t.keys.timestamp.publicPath, '--sign', t.keys.root1.privatePath, '--sign', t.keys.root2.privatePath]);

    const cases: { name: string; files: string[]; reason: string; message: RegExp }[] = [
      { name: 'a version that goes back', files: [oldTimestamp], reason: 'metadata-rollback', message: /timestamp v1 .*older than timestamp v2/ },
      { name: 'a timestamp from the future', files: [future], reason: 'timestamp-from-future', message: /issued at .* more than 300 s after this host's clock/ },
      { name: 'targets signed by a key that is not the targets role', files: [forged], reason: 'metadata-below-threshold', message: /signed by 0 of the 1 needed keys of role targets/ },
      { name: 'expired metadata', files: [expiredTargets], reason: 'metadata-expired', message: /expired at 2020-01-01T00:00:00Z/ },
      { name: 'a root signed below its own threshold', files: [halfSignedRoot], reason: 'root-below-threshold', message: /signed by 1 of the 2 needed keys of role root in root v2/ },
      { name: 'a broken rotation chain', files: t.files('3.root.json'), reason: 'broken-root-chain', message: /does not follow root v1.*root v2 is missing/ },
    ];
    for (const c of cases) {
      const r = await runCli(['trust', 'update', ...c.files, '--json'], t.env);
      assert.equal(r.code, 21, `${c.name}: ${r.stdout}${r.stderr}`);
      const e = refusal(r.stdout);
      assert.equal(e.reason, c.reason, `${c.name}: ${e.message}`);
      assert.match(e.message, c.message, c.name);
      assert.deepEqual(await held(t), before, `${c.name} changed nothing`);
    }
    readJournal(t.stateDir, (j) => {
      const refused = j.events().filter((e) => e.kind === 'trust.update' && e.outcome === 'refused').map((e) => e.reason);
      assert.deepEqual(refused, cases.map((c) => c.reason));
    });

    // The whole chain, v2 then v3, is taken in one batch.
    const chain = JSON.parse((await t.cli(['trust', 'update', ...t.files('2.root.json', '3.root.json'), '--json'])).stdout) as { taken: string[] };
    assert.deepEqual(chain.taken, ['root v2', 'root v3']);
  } finally {
    await cleanup();
  }
});

test('the trust state outlives the journal: with journal.db deleted, an older timestamp is still refused; a planted file in the trust state is refused, not believed', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const t = await makeTrustRepo(dir);
    await t.publish({ demo: '1.0.0' });
    const v1 = join(dir, 'timestamp-v1.json');
    await copyFile(join(t.repo, 'timestamp.json'), v1);
    await t.timestamp({ demo: '1.0.1' });
    await t.cli(['trust', 'update', ...t.files('timestamp.json')]);

    for (const f of ['journal.db', 'journal.db-wal', 'journal.db-shm']) await rm(join(t.stateDir, f), { force: true });
    const r = await runCli(['trust', 'update', v1, '--json'], t.env);
    assert.equal(r.code, 21, r.stdout + r.stderr);
    assert.equal(refusal(r.stdout).reason, 'metadata-rollback');
    readJournal(t.stateDir, (j) => assert.deepEqual(j.events().map((e) => [e.kind, e.outcome, e.reason]), [['trust.update', 'refused', 'metadata-rollback']]));

    // Someone with write access to the state dir plants targets signed by a release key.
    await resign(join(t.repo, 'targets.json'), t.keys.alice, await roleKeyId(t.repo, 'targets'), (s) => void (s.version = 9), join(t.stateDir, 'trust', 'targets.json'));
    const status = await runCli(['trust', 'status', '--json'], t.env);
    assert.equal(status.code, 21, status.stdout);
    assert.equal(refusal(status.stdout).reason, 'trust-state-corrupt');
    const bundle = await verify(t, await bundleBy(t, dir, 'demo', '1.0.1', ['alice', 'bob']));
    assert.equal(bundle.code, 21);
    assert.equal(refusal(bundle.stdout).reason, 'trust-state-corrupt');
  } finally {
    await cleanup();
  }
});

test('rotation and revocation by metadata: targets v2 drops carol, and a bundle carol co-signed no longer passes; root v2 rotates the timestamp key and the old timestamp is let go', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const t = await makeTrustRepo(dir);
    await t.publish({ demo: '1.0.0' });
    const file = await bundleBy(t, dir, 'demo', '1.0.0', ['alice', 'carol']);
    assert.equal((await verify(t, file)).code, 0);

    await t.targets([
      { name: 'stacks', paths: ['stacks/*'], threshold: 2, keys: ['alice', 'bob'] },
      { name: 'engine', paths: ['engine/*'], threshold: 1, keys: ['eve'] },
    ]);
    await t.timestamp({ demo: '1.0.0' });
    await t.cli(['trust', 'update', ...t.files('targets.json', 'snapshot.json', 'timestamp.json')]);
    const revoked = await verify(t, file);
    assert.equal(revoked.code, 10, revoked.stdout);
    assert.equal(refusal(revoked.stdout).reason, 'below-threshold');
    assert.match(refusal(revoked.stdout).message, /key [0-9a-f]{16} is unknown/);

    // A new timestamp key: root v2, signed by root1 (the old threshold and its own).
    await t.cli(['trust', 'root', '--repo', t.repo, '--root-key', t.keys.root1.publicPath, '--targets-key', t.keys.targets.publicPath, '--timestamp-key', t.keys.bob.publicPath, '--sign', t.keys.root1.privatePath]);
    await t.cli(['trust', 'update', ...t.files('2.root.json')]);
    assert.equal((await held(t)).timestamp, null, 'the timestamp the old key signed is no longer trusted');
    await t.cli(['trust', 'timestamp', '--repo', t.repo, '--key', t.keys.bob.privatePath, '--bundle', 'demo=1.0.0']);
    await t.cli(['trust', 'update', ...t.files('snapshot.json', 'timestamp.json')]);
    assert.equal((await verify(t, await bundleBy(t, dir, 'demo', '1.0.0', ['alice', 'bob']))).code, 0);
  } finally {
    await cleanup();
  }
});

test('mix-and-match: a timestamp that names a snapshot this host does not hold stops every bundle until the rest arrives', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const t = await makeTrustRepo(dir);
    await t.publish({ demo: '1.0.0' });
    const file = await bundleBy(t, dir, 'demo', '1.0.0', ['alice', 'bob']);
    assert.equal((await verify(t, file)).code, 0);

    await t.targets();
    await t.timestamp({ demo: '1.0.0' });
    await t.cli(['trust', 'update', ...t.files('timestamp.json')]);
    const partial = await verify(t, file);
    assert.equal(partial.code, 21, partial.stdout);
    assert.equal(refusal(partial.stdout).reason, 'metadata-incomplete');
    assert.match(refusal(partial.stdout).message, /timestamp v2 names snapshot v2, this host holds snapshot v1/);

    await t.cli(['trust', 'update', ...t.files('snapshot.json')]);
    const stillPartial = await verify(t, file);
    assert.equal(refusal(stillPartial.stdout).reason, 'metadata-incomplete');
    assert.match(refusal(stillPartial.stdout).message, /snapshot v2 names targets v2, this host holds targets v1/);

    await t.cli(['trust', 'update', ...t.files('targets.json')]);
    assert.equal((await verify(t, file)).code, 0);
  } finally {
    await cleanup();
  }
});

test("a root command's trust update leaves the trust state to the state dir's owner (the agent's user)", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const t = await makeTrustRepo(dir);
    await chown(t.stateDir, 65534, 65534);
    await t.publish({ demo: '1.0.0' });
    for (const f of ['', 'roots', 'targets.json', 'snapshot.json', 'timestamp.json']) {
      const st = await lstat(join(t.stateDir, 'trust', f));
      assert.deepEqual([st.uid, st.gid], [65534, 65534], f || 'trust/');
    }
  } finally {
    await cleanup();
  }
});

test('a whole-file write goes through no link planted where its temporary file goes', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const victim = join(dir, 'victim');
    await writeFile(victim, 'keep');
    await symlink(victim, join(dir, `.timestamp.json.${process.pid}.partial`));
    await writeWhole(join(dir, 'timestamp.json'), 'new');
    assert.equal(await readFile(victim, 'utf8'), 'keep');
    assert.equal(await readFile(join(dir, 'timestamp.json'), 'utf8'), 'new');
  } finally {
    await cleanup();
  }
});
