import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Metadata, MetadataKind, type Root, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import { BaseFetcher, Updater } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { releaseRolesOf } from '../../src/trust/root/release-roles.js';
import { acceptMetadata } from '../../src/trust/root/accept.js';
import { readMetadataFile, type MetadataFile } from '../../src/trust/root/metadata-file.js';
import { tufKeyIdOf } from '../../src/trust/root/tuf-keys.js';
import { sshString } from '../../src/trust/ssh-keys.js';
import { runCli, tempDir } from '../helpers/fixtures.js';

const readJson = async (path: string) => JSON.parse(await readFile(path, 'utf8')) as { signed: Record<string, unknown>; signatures: { keyid: string; sig: string }[] };
const root = async (path: string) => Metadata.fromJSON(MetadataKind.Root, (await readJson(path)) as never) as Metadata<Root>;
const targets = async (path: string) => Metadata.fromJSON(MetadataKind.Targets, (await readJson(path)) as never) as Metadata<Targets>;
const snapshot = async (path: string) => Metadata.fromJSON(MetadataKind.Snapshot, (await readJson(path)) as never) as Metadata<Snapshot>;
const timestamp = async (path: string) => Metadata.fromJSON(MetadataKind.Timestamp, (await readJson(path)) as never) as Metadata<Timestamp>;

/** The TUF keyid of a PEM public key file, as securesystemslib computes it. */
async function keyIdOfPem(path: string): Promise<string> {
  const raw = Buffer.from(createPublicKey(await readFile(path, 'utf8')).export({ format: 'jwk' }).x!, 'base64url');
  return tufKeyIdOf({ keytype: 'ed25519', scheme: 'ed25519', keyval: { public: raw.toString('hex') } });
}

async function keys(dir: string, ...names: string[]): Promise<void> {
  for (const n of names) {
    const r = await runCli(['key', 'generate', '--out', join(dir, 'keys', n)]);
    assert.equal(r.code, 0, r.stderr);
  }
}

const k = (dir: string, name: string) => join(dir, 'keys', name);

async function cli(args: string[]): Promise<Record<string, unknown>> {
  const r = await runCli([...args, '--json']);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** trust root v1: 2-of-3 root keys, one targets key, one timestamp key; signed by `sign`. */
const rootArgs = (dir: string, repo: string, sign: string[], rootKeys = ['r1', 'r2', 'r3']) => [
  'trust', 'root', '--repo', repo,
  ...rootKeys.flatMap((n) => ['--root-key', `${k(dir, n)}.pub`]),
  '--root-threshold', '2',
  '--targets-key', `${k(dir, 't1')}.pub`,
  '--timestamp-key', `${k(dir, 's1')}.pub`,
  ...sign.flatMap((n) => ['--sign', `${k(dir, n)}.key`]),
];

const SK_TYPE = 'sk-ssh-ed25519@openssh.com';

/** dave.pub: a hardware-backed sk-ssh-ed25519 key line (PROTOCOL.u2f blob; no token needed to write one). */
async function writeSkKey(dir: string): Promise<string> {
  const blob = Buffer.concat([sshString(SK_TYPE), sshString(Buffer.alloc(32, 7)), sshString('ssh:')]);
  const line = `${SK_TYPE} ${blob.toString('base64')}`;
  await writeFile(`${k(dir, 'dave')}.pub`, `${line} dave@example\n`);
  return line;
}

async function writeRoles(dir: string): Promise<string> {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'alice@example', '-f', k(dir, 'alice')]);
  await writeSkKey(dir);
  const path = join(dir, 'roles.yml');
  await writeFile(
    path,
    ['roles:', '  - name: stacks', '    paths: ["stacks/*"]', '    threshold: 2', '    keys: {alice: keys/alice.pub, bob: keys/bob.pub, carol: keys/carol.pub}', '  - name: engine', '    paths: ["engine/*"]', '    threshold: 1', '    keys: {bob: keys/bob.pub, dave: keys/dave.pub}', ''].join('\n'),
  );
  return path;
}

/** A whole repository: root v1 (2 of 3, signed by two), targets, snapshot, timestamp. */
async function fullRepo(dir: string): Promise<string> {
  await keys(dir, 'r1', 'r2', 'r3', 't1', 's1', 'bob', 'carol');
  const repo = join(dir, 'repo');
  await cli(rootArgs(dir, repo, ['r1', 'r2']));
  await cli(['trust', 'targets', '--repo', repo, '--roles', await writeRoles(dir), '--key', `${k(dir, 't1')}.key`]);
  await cli(['trust', 'timestamp', '--repo', repo, '--key', `${k(dir, 's1')}.key`, '--bundle', 'demo=1.0.0']);
  return repo;
}

test('trust root writes a 2-of-3 root TUF reads; one signature falls short until trust sign adds the second', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  await keys(dir, 'r1', 'r2', 'r3', 't1', 's1');
  const repo = join(dir, 'repo');
  const out = await cli(rootArgs(dir, repo, ['r1']));
  assert.equal(out.version, 1);
  assert.equal(out.complete, false);
  assert.deepEqual((await readdir(repo)).sort(), ['1.root.json', 'root.json']);
  assert.deepEqual(await readFile(join(repo, '1.root.json')), await readFile(join(repo, 'root.json')));

  const raw = await readJson(join(repo, 'root.json'));
  assert.equal(raw.signed._type, 'root');
  assert.equal(raw.signed.spec_version, '1.0.31');
  assert.equal(raw.signed.consistent_snapshot, false);
  assert.match(raw.signed.expires as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.match(raw.signatures[0]!.sig, /^[0-9a-f]{128}$/);

  const v1 = await root(join(repo, 'root.json'));
  const rootIds = await Promise.all(['r1', 'r2', 'r3'].map((n) => keyIdOfPem(`${k(dir, n)}.pub`)));
  assert.deepEqual(v1.signed.roles.root!.keyIDs, rootIds);
  assert.equal(v1.signed.roles.root!.threshold, 2);
  assert.deepEqual(v1.signed.roles.targets!.keyIDs, [await keyIdOfPem(`${k(dir, 't1')}.pub`)]);
  const s1 = await keyIdOfPem(`${k(dir, 's1')}.pub`);
  assert.deepEqual(v1.signed.roles.timestamp!.keyIDs, [s1]);
  assert.deepEqual(v1.signed.roles.snapshot!.keyIDs, [s1]);
  assert.equal(v1.signed.keys[rootIds[0]!]!.keyVal.public!.length, 64);
  assert.throws(() => v1.verifyDelegate('root', v1), /signed by 1\/2 keys/);

  const signed = await cli(['trust', 'sign', join(repo, '1.root.json'), '--key', `${k(dir, 'r2')}.key`]);
  assert.deepEqual(signed.files, [join(repo, '1.root.json'), join(repo, 'root.json')]);
  assert.deepEqual(await readFile(join(repo, '1.root.json')), await readFile(join(repo, 'root.json')));
  const after = await root(join(repo, 'root.json'));
  after.verifyDelegate('root', after);
  assert.equal(Object.keys(after.signatures).length, 2);

  // Signing again with the same key replaces its signature: still two.
  await cli(['trust', 'sign', join(repo, 'root.json'), '--key', `${k(dir, 'r2')}.key`]);
  assert.equal((await readJson(join(repo, '1.root.json'))).signatures.length, 2);
});

test('trust root refuses a --sign key that is no root key, and a threshold above its keys; nothing is written', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  await keys(dir, 'r1', 'r2', 'r3', 't1', 's1');
  const repo = join(dir, 'repo');
  const stray = await runCli([...rootArgs(dir, repo, ['t1']), '--json']);
  assert.equal(stray.code, 2, stray.stderr);
  assert.match(stray.stderr + stray.stdout, /not-a-root-key/);
  const high = await runCli(['trust', 'root', '--repo', repo, '--root-key', `${k(dir, 'r1')}.pub`, '--root-key', `${k(dir, 'r2')}.pub`, '--root-threshold', '3', '--targets-key', `${k(dir, 't1')}.pub`, '--timestamp-key', `${k(dir, 's1')}.pub`, '--sign', `${k(dir, 'r1')}.key`]);
  assert.equal(high.code, 2, high.stderr);
  assert.match(high.stderr, /--root-threshold 3/);
  await assert.rejects(readdir(repo), { code: 'ENOENT' });
  const notMetadata = join(dir, 'x.json');
  await writeFile(notMetadata, '{"signed": {"_type": "nonsense"}}');
  const sign = await runCli(['trust', 'sign', notMetadata, '--key', `${k(dir, 'r1')}.key`]);
  assert.equal(sign.code, 21, sign.stderr);
  assert.match(sign.stderr, /not TUF metadata/);
  // An sk key cannot hold a top-level role: TUF clients cannot check its signatures.
  await writeSkKey(dir);
  const sk = await runCli([...rootArgs(dir, repo, ['r1']), '--timestamp-key', `${k(dir, 'dave')}.pub`, '--json']);
  assert.equal(sk.code, 3, sk.stderr);
  assert.equal((JSON.parse(sk.stdout) as { reason: string }).reason, 'wrong-key-type');
  await assert.rejects(readdir(repo), { code: 'ENOENT' });
});

test('trust targets writes the release roles: an OpenSSH ssh-ed25519 key as a plain ed25519 key, threshold and names for the host', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const repo = await fullRepo(dir);
  const md = await targets(join(repo, 'targets.json'));
  assert.equal(md.signed.version, 1);
  const v1 = await root(join(repo, 'root.json'));
  v1.verifyDelegate('targets', md);

  const sshLine = (await readFile(`${k(dir, 'alice')}.pub`, 'utf8')).split(' ');
  const blob = Buffer.from(sshLine[1]!, 'base64');
  const rawAlice = blob.subarray(blob.length - 32).toString('hex');
  const keysByName = new Map(Object.entries(md.signed.delegations!.keys).map(([id, key]) => [key.unrecognizedFields!['x-airlock-name'], { id, key }]));
  const alice = keysByName.get('alice')!;
  assert.equal(alice.key.keyType, 'ed25519');
  assert.equal(alice.key.scheme, 'ed25519');
  assert.equal(alice.key.keyVal.public, rawAlice);
  assert.equal(alice.id, tufKeyIdOf({ keytype: 'ed25519', scheme: 'ed25519', keyval: { public: rawAlice } }));
  assert.equal(keysByName.get('bob')!.id, await keyIdOfPem(`${k(dir, 'bob')}.pub`));
  assert.deepEqual(Object.keys(md.signed.delegations!.roles!), ['stacks', 'engine']);
  assert.equal(md.signed.delegations!.roles!.stacks!.terminating, true);

  const roles = releaseRolesOf(md, 'targets.json');
  const stacks = roles.roleFor({ kind: 'stacks', name: 'demo' });
  assert.equal(stacks.threshold, 2);
  assert.equal(stacks.keys.size, 3);
  assert.deepEqual([...stacks.keys.values()].map((m) => m.name).sort(), ['alice', 'bob', 'carol']);
  const engine = roles.roleFor({ kind: 'engine', name: 'docker-engine' });
  assert.equal(engine.threshold, 1);
  assert.equal(engine.keys.size, 2);
  // Only the sk key keeps the sshsig form; bob is one key in both roles.
  const dave = keysByName.get('dave')!;
  assert.equal(dave.key.keyType, SK_TYPE);
  assert.equal(dave.key.scheme, 'sshsig');
  assert.equal(dave.key.keyVal.public, (await readFile(`${k(dir, 'dave')}.pub`, 'utf8')).split(' ').slice(0, 2).join(' '));
  assert.equal(Object.keys(md.signed.delegations!.keys).length, 4);

  // A second run bumps the version.
  const again = await cli(['trust', 'targets', '--repo', repo, '--roles', join(dir, 'roles.yml'), '--key', `${k(dir, 't1')}.key`]);
  assert.equal(again.version, 2);
});

test('trust targets refuses a threshold above a role\'s keys (exit 3, bad-roles), writing nothing', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  await keys(dir, 'r1', 'r2', 'r3', 't1', 's1', 'bob', 'carol');
  const repo = join(dir, 'repo');
  await cli(rootArgs(dir, repo, ['r1', 'r2']));
  const rolesPath = await writeRoles(dir);
  await writeFile(rolesPath, (await readFile(rolesPath, 'utf8')).replace('threshold: 2', 'threshold: 4'));
  const r = await runCli(['trust', 'targets', '--repo', repo, '--roles', rolesPath, '--key', `${k(dir, 't1')}.key`, '--json']);
  assert.equal(r.code, 3, r.stderr);
  const err = JSON.parse(r.stdout) as { reason: string; message: string };
  assert.equal(err.reason, 'bad-roles');
  assert.match(err.message, /roles\.yml:2: role stacks: threshold 4/);
  assert.deepEqual((await readdir(repo)).sort(), ['1.root.json', 'root.json']);
});

test('trust timestamp writes snapshot and timestamp; run again it bumps only the timestamp, merging bundle versions', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const repo = await fullRepo(dir);
  const v1 = await root(join(repo, 'root.json'));
  const snap1 = await snapshot(join(repo, 'snapshot.json'));
  const ts1 = await timestamp(join(repo, 'timestamp.json'));
  v1.verifyDelegate('snapshot', snap1);
  v1.verifyDelegate('timestamp', ts1);
  assert.equal(snap1.signed.meta['targets.json']!.version, 1);
  assert.equal(ts1.signed.snapshotMeta.version, 1);
  const x1 = ts1.signed.unrecognizedFields['x-airlock'] as { issued: string; bundles: Record<string, string> };
  assert.match(x1.issued, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.deepEqual(x1.bundles, { demo: '1.0.0' });

  const snapBytes = await readFile(join(repo, 'snapshot.json'));
  const again = await cli(['trust', 'timestamp', '--repo', repo, '--key', `${k(dir, 's1')}.key`, '--bundle', 'web=2.1.0', '--bundle', 'demo=1.1.0']);
  assert.deepEqual(again.files, [join(repo, 'timestamp.json')]);
  assert.deepEqual(await readFile(join(repo, 'snapshot.json')), snapBytes);
  const ts2 = await timestamp(join(repo, 'timestamp.json'));
  assert.equal(ts2.signed.version, 2);
  assert.deepEqual((ts2.signed.unrecognizedFields['x-airlock'] as { bundles: object }).bundles, { demo: '1.1.0', web: '2.1.0' });
  const plain = await cli(['trust', 'timestamp', '--repo', repo, '--key', `${k(dir, 's1')}.key`]);
  assert.equal(plain.timestamp, 3);
  assert.deepEqual(plain.bundles, { demo: '1.1.0', web: '2.1.0' });

  // New targets: the snapshot follows.
  await cli(['trust', 'targets', '--repo', repo, '--roles', join(dir, 'roles.yml'), '--key', `${k(dir, 't1')}.key`]);
  const next = await cli(['trust', 'timestamp', '--repo', repo, '--key', `${k(dir, 's1')}.key`]);
  assert.equal(next.snapshot, 2);
  assert.equal((await snapshot(join(repo, 'snapshot.json'))).signed.meta['targets.json']!.version, 2);

  for (const given of ['demo=latest', 'demo', '=1.0.0', 'demo=v1.0.0']) {
    const bad = await runCli(['trust', 'timestamp', '--repo', repo, '--key', `${k(dir, 's1')}.key`, '--bundle', given]);
    assert.equal(bad.code, 2, `${given}: ${bad.stderr}`);
  }
  assert.equal((await timestamp(join(repo, 'timestamp.json'))).signed.version, 4);
});

test('the host takes what the vendor wrote (acceptMetadata on root v1)', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const repo = await fullRepo(dir);
  const rootFile = readMetadataFile(join(repo, 'root.json')) as MetadataFile<Extract<MetadataFile['meta'], { kind: 'root' }>>;
  const files = ['targets.json', 'snapshot.json', 'timestamp.json'].map((n) => readMetadataFile(join(repo, n)));
  const accepted = acceptMetadata({ root: rootFile, roots: [rootFile] }, files, { now: new Date(), futureToleranceMs: 60_000 }, (f) => void releaseRolesOf(f.meta.md, f.source));
  assert.equal(accepted.taken.length, 3);
});

/** tuf-js's fetcher reading the repository folder; a missing file is an HTTP 404, as a web server says. */
class FolderFetcher extends BaseFetcher {
  constructor(private readonly repo: string) {
    super();
  }
  override async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.repo, basename(new URL(url).pathname)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new DownloadHTTPError('not found', 404);
      throw e;
    }
    return new Response(new Uint8Array(bytes)).body as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
}

test('interop: the standard TUF client tuf-js refreshes from the repository, follows a root rotation, and refuses edited targets', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const repo = await fullRepo(dir);
  const metadataDir = join(dir, 'client');
  await mkdir(metadataDir);
  await copyFile(join(repo, '1.root.json'), join(metadataDir, 'root.json'));
  const updater = () => new Updater({ metadataDir, metadataBaseUrl: 'https://vendor.invalid/metadata', fetcher: new FolderFetcher(repo) });
  await updater().refresh();
  assert.equal((await readJson(join(metadataDir, 'timestamp.json'))).signed.version, 1);

  // Root v2 rotates r3 out for r4: signed by two keys of v1 and two of v2.
  await keys(dir, 'r4');
  const v2 = await cli(rootArgs(dir, repo, ['r1', 'r2', 'r4'], ['r1', 'r2', 'r4']));
  assert.equal(v2.version, 2);
  assert.equal(v2.complete, true);
  await cli(['trust', 'timestamp', '--repo', repo, '--key', `${k(dir, 's1')}.key`]);
  await updater().refresh();
  const held = await root(join(metadataDir, 'root.json'));
  assert.equal(held.signed.version, 2);
  assert.ok(held.signed.roles.root!.keyIDs.includes(await keyIdOfPem(`${k(dir, 'r4')}.pub`)));

  // A byte changed in targets' signed part: its signature no longer holds.
  const targetsPath = join(repo, 'targets.json');
  await writeFile(targetsPath, (await readFile(targetsPath, 'utf8')).replace('"stacks/*"', '"stackz/*"'));
  await rm(join(metadataDir, 'targets.json'));
  await assert.rejects(updater().refresh(), /targets was signed by 0\/1 keys/);
});
