/**
 * The tamper table for a host installed with a root of trust: what a bundle's signatures and
 * its place in the vendor's timestamp must be for the release roles, and that each bad bundle
 * is refused by the real CLI with its exit code, error class and reason, and changes nothing in
 * the host's state dir (content store, bundle rows, held trust metadata) but one journal event.
 *
 * One good bundle (demo 1.1.0, signed by alice and bob) is built through `bundle build` and
 * `bundle sign`; each row rewrites its manifest.sig, or brings a bundle of its own, or gives the
 * host other trust metadata. The trust dir also lists a key in trusted.d (local.pub), which a
 * host with a root must not count.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, type KeyObject } from 'node:crypto';
import { copyFile, cp, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ExitCode, type ExitCodeName } from '../../src/errors/index.js';
import { parseSignatures, SIGNATURE_ENTRY, signatureEntryBytes, type SignatureRecord } from '../../src/bundle/manifest.js';
import { loadPrivateKey } from '../../src/trust/keys.js';
import { makeProject, runCli, tempDir, type CliResult } from '../helpers/fixtures.js';
import { readJournal } from '../helpers/journal-read.js';
import { Bundle, listOrEmpty, signatureFor } from '../helpers/tamper.js';
import { makeTrustRepo, type TrustRepo } from '../helpers/trust-repo.js';

type RefusalClass = Extract<ExitCodeName, 'signature' | 'policy' | 'trust'>;
type Signer = 'alice' | 'bob' | 'carol' | 'eve' | 'root2';

interface Ctx {
  dir: string;
  t: TrustRepo;
  /** demo 1.1.0 signed by alice and bob: what the timestamp names as current. */
  goodB: Bundle;
  /** demo 1.0.0, validly signed by alice and bob: a release the timestamp has moved past. */
  older: Buffer;
  /** tools 1.0.0, validly signed by alice and bob: a name the timestamp does not list. */
  unlisted: Buffer;
  keys: Record<Signer, KeyObject>;
  /** targets v2 (no role covers stacks/*), snapshot v2 and timestamp v2: another host's metadata. */
  narrow: string[];
}

interface Case {
  name: string;
  make: (c: Ctx) => Buffer;
  error: RefusalClass;
  reason: string;
  message: RegExp;
  /** Trust metadata the case's host takes before the bundle comes. */
  metadata?: (c: Ctx) => string[];
}

/* ---- manifest.sig records over the good manifest ---- */

const record = (c: Ctx, by: Signer): SignatureRecord => parseSignatures(signatureFor(c.goodB.manifestBytes, c.keys[by]))[0]!;
const signedBy = (c: Ctx, ...records: SignatureRecord[]): Buffer => c.goodB.withSignatureBytes(signatureEntryBytes(records)).pack();
const flipped = (r: SignatureRecord): SignatureRecord => {
  const raw = Buffer.from(r.signature, 'base64');
  raw[10]! ^= 0x40;
  return { ...r, signature: raw.toString('base64') };
};
/** An SSHSIG record said to be by `by`: its magic, then bytes that are no signature at all. */
const garbageSshsig = (c: Ctx, by: Signer): SignatureRecord => ({
  algorithm: 'sshsig',
  keyId: record(c, by).keyId,
  signature: Buffer.concat([Buffer.from('SSHSIG'), Buffer.from([0, 0, 0, 1]), Buffer.from('garbage'.repeat(12))]).toString('base64'),
});

const KEY_ID = '[0-9a-f]{16}';

const CASES: Case[] = [
  {
    name: 'signed below threshold: alice alone',
    make: (c) => signedBy(c, record(c, 'alice')),
    error: 'signature', reason: 'below-threshold',
    message: new RegExp(`bundle demo 1\\.1\\.0 needs 2 signatures of role stacks .*signed by alice \\(${KEY_ID}\\); missing 1 more of bob \\(${KEY_ID}\\), carol`),
  },
  {
    name: 'the same key twice: alice, alice',
    make: (c) => signedBy(c, record(c, 'alice'), record(c, 'alice')),
    error: 'signature', reason: 'duplicate-signature', message: new RegExp(`alice \\(${KEY_ID}\\) signed twice, which counts once`),
  },
  {
    name: 'a key outside its delegation: alice and eve, an engine signer',
    make: (c) => signedBy(c, record(c, 'alice'), record(c, 'eve')),
    error: 'signature', reason: 'key-not-delegated', message: new RegExp(`key ${KEY_ID} is a release key of engine \\(engine/\\*\\) only`),
  },
  {
    name: 'a key only in trusted.d: alice and the local key',
    make: (c) => signedBy(c, record(c, 'alice'), record(c, 'root2')),
    error: 'signature', reason: 'not-in-root', message: /is listed only in .*local\.pub, and a host with a root of trust takes release keys from its trust metadata alone/,
  },
  {
    name: "a flipped byte in bob's signature beside alice's valid one",
    make: (c) => signedBy(c, record(c, 'alice'), flipped(record(c, 'bob'))),
    // One valid signature counts: the refusal is the missing one, the bad one is named among what did not count.
    error: 'signature', reason: 'below-threshold', message: new RegExp(`signed by alice \\(${KEY_ID}\\); missing 1 more .*did not count: the signature said to be by bob \\(${KEY_ID}\\) does not match`),
  },
  {
    name: "a flipped byte in both alice's and bob's signatures: no valid one",
    make: (c) => signedBy(c, flipped(record(c, 'bob')), flipped(record(c, 'alice'))),
    error: 'signature', reason: 'bad-signature', message: new RegExp(`no valid signature by its keys; .*the signature said to be by bob \\(${KEY_ID}\\) does not match`),
  },
  {
    name: "an sshsig record of garbage said to be bob's, beside alice's valid one",
    make: (c) => signedBy(c, record(c, 'alice'), garbageSshsig(c, 'bob')),
    // The record is well formed (base64 within the size limit); what it holds is checked as a signature and does not match.
    error: 'signature', reason: 'below-threshold', message: new RegExp(`signed by alice \\(${KEY_ID}\\); .*the signature said to be by bob \\(${KEY_ID}\\) does not match`),
  },
  {
    name: 'an sshsig record whose blob is not base64',
    make: (c) => signedBy(c, record(c, 'alice'), { ...garbageSshsig(c, 'bob'), signature: 'SSHSIG: not base64 at all!' }),
    error: 'signature', reason: 'malformed-signature', message: /manifest\.sig is malformed: signature 2 is not/,
  },
  {
    name: 'a replayed release older than the timestamp names',
    make: (c) => c.older,
    error: 'policy', reason: 'superseded', message: /bundle demo 1\.0\.0 is older than 1\.1\.0, which timestamp v1 \(issued .*\) names as current/,
  },
  {
    name: 'a name the timestamp does not list',
    make: (c) => c.unlisted,
    error: 'policy', reason: 'not-in-timestamp', message: /bundle tools 1\.0\.0 is not listed by timestamp v1/,
  },
  {
    name: 'no delegation covers the bundle kind: the host holds targets whose roles sign engine bundles only',
    make: (c) => c.goodB.pack(),
    metadata: (c) => c.narrow,
    error: 'trust', reason: 'no-delegation', message: /no release role of targets v2 covers stacks\/demo: no key may sign bundle demo/,
  },
];

/* ---- what "nothing changed" means ---- */

interface Snapshot {
  store: string[];
  staging: string[];
  /** The held trust metadata: file names and content hashes under STATE/trust. */
  trust: string[];
  bundles: unknown[];
  blobs: unknown[];
  events: { kind: string; outcome: string; reason: string | null; message: string | null }[];
}

async function snapshot(state: string): Promise<Snapshot> {
  const blobDir = join(state, 'blobs', 'sha256');
  const store: string[] = [];
  for (const name of await listOrEmpty(blobDir, { recursive: true })) store.push(`${name} ${(await stat(join(blobDir, name))).size}`);
  const trustDir = join(state, 'trust');
  const trust: string[] = [];
  for (const name of await listOrEmpty(trustDir, { recursive: true })) {
    const p = join(trustDir, name);
    if ((await stat(p)).isFile()) trust.push(`${name} ${createHash('sha256').update(await readFile(p)).digest('hex')}`);
  }
  const staging = await listOrEmpty(join(state, 'blobs', 'staging'), { recursive: true });
  return readJournal(state, (j) => ({
    store,
    staging,
    trust,
    bundles: j.bundles(),
    blobs: j.blobs(),
    events: j.events().map(({ kind, outcome, reason, message }) => ({ kind, outcome, reason, message })),
  }));
}

function refusalOf(r: CliResult): { error: string; reason: string; message: string; exitCode: number } {
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { error: string; reason: string; message: string; exitCode: number };
  } catch {
    assert.fail(`expected a JSON line on stdout, got exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 60);

/** `bundle import --no-load`: stores only, no engine needed; the trust state is the one under `state`. */
const importInto = (c: Ctx, file: string, state: string) => runCli(['bundle', 'import', file, '--state', state, '--trust', c.t.trustDir, '--no-load', '--json']);

/** Builds NAME VERSION signed by alice, then by bob with `bundle sign`. */
async function buildSigned(t: TrustRepo, dir: string, name: string, version: string, appText: string): Promise<Buffer> {
  const project = join(dir, `p-${name}-${version}`);
  const def = await makeProject(project, { name, version, appText });
  const built = await t.cli(['bundle', 'build', '-f', def, '--key', t.keys.alice.privatePath, '-o', join(project, 'out'), '--json']);
  const file = (JSON.parse(built.stdout) as { path: string }).path;
  await t.cli(['bundle', 'sign', file, '--key', t.keys.bob.privatePath]);
  return readFile(file);
}

describe('tampered bundles on a host with a root of trust are refused and change nothing', { concurrency: 3 }, () => {
  let ctx: Ctx;
  let cleanup: () => Promise<void> = async () => {};

  before(async () => {
    const tmp = await tempDir('airlock-tamper-root-');
    cleanup = tmp.cleanup;
    const dir = tmp.dir;
    const t = await makeTrustRepo(dir);
    // The host's metadata: stacks 2 of alice, bob, carol; engine 1 of eve; demo 1.1.0 is current.
    await t.targets();
    await t.timestamp({ demo: '1.1.0' });
    await t.cli(['trust', 'update', ...t.files('targets.json', 'snapshot.json', 'timestamp.json')]);
    // What the vendor sends next, kept aside for the one case whose host takes it: no role covers stacks/*.
    await t.targets([{ name: 'engine', paths: ['engine/*'], threshold: 1, keys: ['eve'] }]);
    await t.timestamp({ demo: '1.1.0' });
    const narrow: string[] = [];
    for (const name of ['targets.json', 'snapshot.json', 'timestamp.json']) {
      const to = join(dir, `narrow.${name}`);
      await copyFile(join(t.repo, name), to);
      narrow.push(to);
    }
    await copyFile(t.keys.root2.publicPath, join(t.trustDir, 'local.pub'));

    const [good, older, unlisted] = await Promise.all([
      buildSigned(t, dir, 'demo', '1.1.0', 'the current app\n'),
      buildSigned(t, dir, 'demo', '1.0.0', 'the old app\n'),
      buildSigned(t, dir, 'tools', '1.0.0', 'tools\n'),
    ]);
    const keys = {} as Record<Signer, KeyObject>;
    for (const k of ['alice', 'bob', 'carol', 'eve', 'root2'] as const) keys[k] = await loadPrivateKey(t.keys[k].privatePath);
    ctx = { dir, t, goodB: await Bundle.from(good), older, unlisted, keys, narrow };
  });

  after(() => cleanup());

  it('the fixtures are what the rows assume', async () => {
    assert.equal(parseSignatures(ctx.goodB.entry(SIGNATURE_ENTRY).data).length, 2, 'the good bundle carries two signatures');
    const base = await snapshot(ctx.t.stateDir);
    assert.deepEqual(base.bundles, []);
    assert.deepEqual(base.store, []);
    assert.deepEqual(base.trust.map((l) => l.split(' ')[0]), ['snapshot.json', 'targets.json', 'timestamp.json']);
    const status = JSON.parse((await ctx.t.cli(['trust', 'status', '--json'])).stdout) as Record<string, { version: number }>;
    assert.deepEqual(['targets', 'snapshot', 'timestamp'].map((k) => status[k]!.version), [1, 1, 1]);
    assert.equal(CASES.length, new Set(CASES.map((c) => c.name)).size, 'row names are unique');
  });

  it('the good bundle, and the same bundle with its two records written again by the harness, import cleanly', async () => {
    const work = join(ctx.dir, 'cases', 'control');
    const state = join(work, 'state');
    await mkdir(work, { recursive: true });
    await cp(ctx.t.stateDir, state, { recursive: true });
    const rewritten = join(work, 'rewritten.airlock');
    await writeFile(rewritten, signedBy(ctx, record(ctx, 'bob'), record(ctx, 'alice')));
    const v = await runCli(['bundle', 'verify', rewritten, '--trust', ctx.t.trustDir, '--state', state, '--json']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const file = join(work, 'good.airlock');
    await writeFile(file, ctx.goodB.pack());
    const r = await importInto(ctx, file, state);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const after = await snapshot(state);
    assert.deepEqual(after.bundles.map((b) => (b as { version: string }).version), ['1.1.0']);
    assert.ok(after.store.length >= 4, 'the blobs went to the content store');
    assert.equal(after.events.at(-1)?.kind, 'bundle.import');
    assert.equal(after.events.at(-1)?.outcome, 'ok');
  });

  for (const tc of CASES) {
    it(`${tc.error}/${tc.reason}: ${tc.name}`, async () => {
      const work = join(ctx.dir, 'cases', slug(tc.name));
      const state = join(work, 'state');
      await mkdir(work, { recursive: true });
      await cp(ctx.t.stateDir, state, { recursive: true });
      const metadata = tc.metadata?.(ctx);
      if (metadata) {
        const took = await runCli(['trust', 'update', ...metadata, '--json'], { AIRLOCK_TRUST_DIR: ctx.t.trustDir, AIRLOCK_STATE_DIR: state });
        assert.equal(took.code, 0, took.stdout + took.stderr);
      }
      const file = join(work, 'bad.airlock');
      await writeFile(file, tc.make(ctx));

      const before = await snapshot(state);
      const r = await importInto(ctx, file, state);
      const out = refusalOf(r);
      const seen = `exit ${r.code}, ${JSON.stringify(out)}${r.stderr ? `\nstderr: ${r.stderr}` : ''}`;
      assert.equal(r.code, ExitCode[tc.error], seen);
      assert.equal(out.exitCode, ExitCode[tc.error], seen);
      assert.equal(out.error, tc.error, seen);
      assert.equal(out.reason, tc.reason, seen);
      assert.match(out.message, tc.message, seen);

      const after = await snapshot(state);
      assert.deepEqual(after.store, before.store, 'the content store changed');
      assert.deepEqual(after.staging, [], 'staging leftovers');
      assert.deepEqual(after.trust, before.trust, 'the held trust metadata changed');
      assert.deepEqual(after.bundles, before.bundles, 'bundles rows changed');
      assert.deepEqual(after.blobs, before.blobs, 'blobs rows changed');
      assert.deepEqual(after.events.slice(0, before.events.length), before.events, 'old events changed');
      assert.equal(after.events.length, before.events.length + 1, 'exactly one new event');
      const ev = after.events.at(-1)!;
      assert.equal(ev.kind, 'bundle.import');
      // A refusal is the bundle's fault; a missing delegation is the host's trust metadata (exit 21): failed.
      assert.equal(ev.outcome, tc.error === 'trust' ? 'failed' : 'refused');
      assert.equal(ev.reason, tc.reason);
      assert.match(ev.message ?? '', tc.message);
    });
  }
});
