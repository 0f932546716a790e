/**
 * Receipts (issue 9): a site writes a signed list of what it holds
 * (`bundle receipt`), the vendor builds a delta against it
 * (`bundle build --since-receipt`). Real bundles on disk, the real CLI,
 * real SQLite, and a dockerd of this file's own for the image check.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { verify, type KeyObject } from 'node:crypto';
import { cp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { makeSigner, runCli, tempDir, type Signer } from '../helpers/fixtures.js';
import { PrivateDaemon } from '../helpers/dockerd.js';
import { sha256File } from '../helpers/images.js';
import { Bundle } from '../helpers/tamper.js';
import { DeltaBench, EPOCH, MiB, entries, journal, manifestOf, sha, storeListing } from '../helpers/delta.js';
import { canonicalBytes } from '../../src/bundle/canonical-json.js';
import { loadPrivateKey, loadPublicKey } from '../../src/trust/keys.js';
import { signReceipt, type Receipt } from '../../src/bundle/receipt.js';
import type { BundleBaseRef, Manifest, ReceiptRef } from '../../src/bundle/manifest.js';

const REPO_PREFIX = 'receipttest';
const SITE = 'site-a';

let work: { dir: string; cleanup: () => Promise<void> };
let daemon: PrivateDaemon;
let vendor: Signer;
let site: Signer;
let vendorKey: KeyObject;
let siteKey: KeyObject;
let bench: DeltaBench;
const p = { v1: '', v2: '' };
/** Bundles; `receipt` is site A's receipt after importing v1; `delta` is v2 built against it. */
const b = { full1: '', full2: '', sinceDelta: '', receipt: '', delta: '' };
/** Site A: v1 imported (stored only), then the receipt written. */
let stateA = '';

interface ReceiptFile {
  receipt: Receipt;
  signature: { algorithm: string; keyId: string; signature: string };
}

const readJson = async <T>(path: string): Promise<T> => JSON.parse(await readFile(path, 'utf8')) as T;

const receiptArgs = (state: string, out: string, ...extra: string[]) => ['bundle', 'receipt', '--state', state, '--key', site.keyPath, '-o', out, '--site', SITE, ...extra];

/**
 * Every file under `dir` with size, mtime and content hash: equal snapshots
 * mean nothing changed. SQLite's shared-memory index (`-shm`) and an empty
 * write-ahead log are left out: any reader of a WAL database, `status` as
 * much as `bundle receipt`, makes them, and they hold no data.
 */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const path = join(d, e.name);
      if (e.isDirectory()) await walk(path);
      else if (e.name.endsWith('.db-shm') || (e.name.endsWith('.db-wal') && (await stat(path)).size === 0)) continue;
      else {
        const s = await stat(path);
        out.set(relative(dir, path), `${s.size} ${s.mtimeMs} ${await sha256File(path)}`);
      }
    }
  };
  await walk(dir);
  return out;
}

/** The sha256 content of every blob in a state dir's store. */
async function storeDigests(state: string): Promise<string[]> {
  return [...(await storeListing(state)).keys()].map((hex) => `sha256:${hex}`).sort();
}

before(async () => {
  work = await tempDir('airlock-receipt-');
  daemon = new PrivateDaemon(join(work.dir, 'engine'));
  await daemon.start();
  vendor = await makeSigner(work.dir, 'vendor');
  site = await makeSigner(work.dir, 'site');
  vendorKey = await loadPrivateKey(vendor.keyPath);
  siteKey = await loadPrivateKey(site.keyPath);
  bench = new DeltaBench(work.dir, vendor, REPO_PREFIX);
  p.v1 = await bench.project('1.0.0');
  p.v2 = await bench.project('1.1.0');
  b.full1 = await bench.build(p.v1, 'full');
  b.full2 = await bench.build(p.v2, 'full');
  b.sinceDelta = await bench.build(p.v2, 'since', ['--since', b.full1]);

  stateA = join(work.dir, 'state-a');
  const v1 = await runCli(bench.importArgs(b.full1, stateA, '--no-load'));
  assert.equal(v1.code, 0, v1.stderr + v1.stdout);
  b.receipt = join(work.dir, 'site-a.receipt.json');
  const r = await runCli(receiptArgs(stateA, b.receipt));
  assert.equal(r.code, 0, r.stderr + r.stdout);
  b.delta = await bench.build(p.v2, 'delta', ['--since-receipt', b.receipt, '--receipt-key', site.pubPath]);
});

after(async () => {
  await daemon?.destroy();
  await work?.cleanup();
});

test('bundle receipt lists the bundles and blobs the host holds, signed by the site key, and changes nothing', async () => {
  const state = join(work.dir, 'state-r');
  assert.equal((await runCli(bench.importArgs(b.full1, state, '--no-load'))).code, 0);
  const before = await snapshot(state);
  const out = join(work.dir, 'r1.json');
  const r = await runCli([...receiptArgs(state, out), '--json']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.deepEqual(await snapshot(state), before, 'the state dir is byte for byte as it was');

  const full1 = await manifestOf(b.full1);
  const file = await readJson<ReceiptFile>(out);
  const { receipt, signature } = file;
  assert.equal(receipt.format, 'airlock.receipt.v1');
  assert.equal(receipt.site, SITE);
  assert.match(receipt.created, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
  assert.deepEqual(receipt.bundles, [{ name: 'demo', version: '1.0.0', manifestDigest: sha(full1.bytes) }]);
  assert.deepEqual(receipt.blobs, full1.manifest.blobs.map((x) => ({ digest: x.digest, size: x.size })));
  // Canonical JSON and a newline; the site's Ed25519 signature over the body's canonical bytes.
  assert.equal(await readFile(out, 'utf8'), `${canonicalBytes(file).toString()}\n`);
  assert.deepEqual([signature.algorithm, signature.keyId], ['ed25519', site.keyId]);
  assert.ok(verify(null, canonicalBytes(receipt), await loadPublicKey(site.pubPath), Buffer.from(signature.signature, 'base64')));

  const summary = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.deepEqual(summary, {
    path: out,
    bytes: (await stat(out)).size,
    site: SITE,
    created: receipt.created,
    digest: sha(canonicalBytes(receipt)),
    keyId: site.keyId,
    bundles: 1,
    blobs: full1.manifest.blobs.length,
    blobBytes: full1.manifest.blobs.reduce((n, x) => n + x.size, 0),
    absent: 0,
  });
  // -o - writes the same receipt to stdout; the host name is the default site.
  const stdout = await runCli(['bundle', 'receipt', '--state', state, '--key', site.keyPath, '-o', '-']);
  assert.equal(stdout.code, 0, stdout.stderr);
  const printed = JSON.parse(stdout.stdout) as ReceiptFile;
  assert.deepEqual(printed.receipt.blobs, receipt.blobs);
  assert.equal(printed.receipt.site, (await import('node:os')).hostname());
  const human = await runCli(receiptArgs(state, join(work.dir, 'r2.json')));
  assert.match(human.stdout, new RegExp(`^wrote .*r2\\.json \\([\\d.]+ (B|KiB)\\), signed by ${site.keyId}$`, 'm'));
  assert.match(human.stdout, /^bundles   1 \(demo 1\.0\.0\)$/m);
  assert.deepEqual(await snapshot(state), before);
});

test('a receipt lists only blobs a bundle brought and the store holds at their size', async () => {
  const state = join(work.dir, 'state-s');
  await cp(stateA, state, { recursive: true });
  const m = (await manifestOf(b.full1)).manifest;
  const store = join(state, 'blobs', 'sha256');
  // Deployment data (a secret's bytes) lives in the store too; its digest must never leave the site.
  const secret = Buffer.from('s3cret-password\n');
  await writeFile(join(store, sha(secret).slice(7)), secret);
  const [gone, cut] = [m.blobs[0]!, m.blobs[1]!];
  await rm(join(store, gone.digest.slice(7)));
  await writeFile(join(store, cut.digest.slice(7)), Buffer.alloc(3));
  const out = join(work.dir, 'r-s.json');
  const r = await runCli([...receiptArgs(state, out), '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { absent: number }).absent, 2);
  const { receipt } = await readJson<ReceiptFile>(out);
  assert.deepEqual(receipt.blobs.map((x) => x.digest), m.blobs.slice(2).map((x) => x.digest));
  const human = await runCli(receiptArgs(state, out));
  assert.match(human.stdout, /^left out  2 blobs the journal names but the store lacks or holds at another size$/m);

  // A pruned bundle is not listed: it no longer holds its blobs.
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(join(state, 'journal.db'));
  db.prepare('DELETE FROM bundle_blobs').run();
  db.close();
  assert.equal((await runCli(receiptArgs(state, out))).code, 0);
  assert.deepEqual((await readJson<ReceiptFile>(out)).receipt, { ...receipt, created: (await readJson<ReceiptFile>(out)).receipt.created, bundles: [], blobs: [] });
});

test('bundle receipt refuses without a key, a journal, or a usable site name', async () => {
  const noKey = await runCli(['bundle', 'receipt', '--state', stateA]);
  assert.equal(noKey.code, 2);
  assert.match(noKey.stderr, /--key SITEKEY is required/);
  const empty = join(work.dir, 'state-empty');
  const noJournal = await runCli(receiptArgs(empty, join(work.dir, 'nope.json')));
  assert.equal(noJournal.code, 4, noJournal.stderr);
  assert.match(noJournal.stderr, /journal not found/);
  await assert.rejects(stat(empty), 'no state dir made');
  const badSite = await runCli(['bundle', 'receipt', '--state', stateA, '--key', site.keyPath, '--site', '../x']);
  assert.equal(badSite.code, 2);
  await assert.rejects(stat(join(work.dir, 'nope.json')));
});

test('a delta built from a receipt leaves out every blob the site holds and names the receipt as its base', async () => {
  const receiptFile = await readJson<ReceiptFile>(b.receipt);
  const m = (await manifestOf(b.delta)).manifest;
  const since = (await manifestOf(b.sinceDelta)).manifest;
  assert.equal(m.format, 'airlock.bundle.v2');
  assert.deepEqual(m.requires, ['delta', 'receipt']);
  const ref: ReceiptRef = { site: SITE, created: receiptFile.receipt.created, digest: sha(canonicalBytes(receiptFile.receipt)) };
  assert.deepEqual(m.base, { receipt: ref });
  // The site held exactly v1's blobs: the same blobs left out and carried as the --since v1 delta.
  assert.deepEqual({ ...m, requires: since.requires, base: since.base }, since);
  assert.deepEqual(
    (await entries(b.delta)).map((e) => e.name),
    (await entries(b.sinceDelta)).map((e) => e.name),
  );

  const human = await runCli(['bundle', 'inspect', b.delta, '--trust', vendor.trustDir]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, new RegExp(`^delta     against the receipt of ${SITE} \\(${ref.created}\\) \\(receipt ${ref.digest.slice(7, 19)}\\): relies on 4 blobs`, 'm'));
  const json = await runCli(['bundle', 'build', '-f', join(p.v2, 'bundle.yaml'), '--key', vendor.keyPath, '-o', join(work.dir, 'delta-json'), '--json', '--since-receipt', b.receipt, '--receipt-key', site.pubPath], EPOCH);
  const out = JSON.parse(json.stdout) as { delta: { base: unknown; baseRead: string; baseSignatureChecked: boolean; fromBase: { blobs: number } } };
  assert.deepEqual([out.delta.base, out.delta.baseRead, out.delta.baseSignatureChecked, out.delta.fromBase.blobs], [{ receipt: ref }, 'receipt', true, 4]);

  // Re-indented on its way (a mail client, an editor), the receipt reads the same and gives the same delta.
  const pretty = join(work.dir, 'pretty.receipt.json');
  await writeFile(pretty, JSON.stringify(receiptFile, null, 2));
  assert.equal(await sha256File(await bench.build(p.v2, 'delta-pretty', ['--since-receipt', pretty, '--receipt-key', site.pubPath])), await sha256File(b.delta));
  const verified = await runCli(['bundle', 'verify', b.delta, '--trust', vendor.trustDir]);
  assert.equal(verified.code, 0, verified.stderr);
});

test('imported where the receipt was written, the delta gives the same store and engine images as a full import', async () => {
  const docker = daemon.client();
  try {
    const state = join(work.dir, 'state-delta');
    await cp(stateA, state, { recursive: true });
    const before = await storeListing(state);
    const r = await runCli(bench.importArgs(b.delta, state), { DOCKER_HOST: daemon.dockerHost });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const out = JSON.parse(r.stdout) as { newBlobs: number; blobs: number; delta: { base: unknown; baseBlobs: number }; images: { loaded: string[] } };
    assert.deepEqual([out.newBlobs, out.blobs, out.delta.baseBlobs], [5, 9, 4]);
    assert.deepEqual(out.images.loaded.sort(), [`${REPO_PREFIX}/base:1`, `${REPO_PREFIX}/web:1.1.0`]);
    const after = await storeListing(state);
    for (const [hex, s] of before) assert.deepEqual(after.get(hex), s, 'the blobs the site held are untouched');
    const viaDelta = [await docker.images.inspect(`${REPO_PREFIX}/web:1.1.0`), await docker.images.inspect(`${REPO_PREFIX}/base:1`)];

    // The same releases as full bundles: the same blobs in the store, the same images in the engine.
    for (const ref of [`${REPO_PREFIX}/web:1.1.0`, `${REPO_PREFIX}/base:1`]) await docker.images.delete(ref, { force: true });
    const full = join(work.dir, 'state-full');
    assert.equal((await runCli(bench.importArgs(b.full1, full, '--no-load'))).code, 0);
    const r2 = await runCli(bench.importArgs(b.full2, full), { DOCKER_HOST: daemon.dockerHost });
    assert.equal(r2.code, 0, r2.stderr + r2.stdout);
    assert.deepEqual(await storeDigests(state), await storeDigests(full));
    for (const hex of after.keys()) {
      assert.equal(await sha256File(join(state, 'blobs', 'sha256', hex)), `sha256:${hex}`);
    }
    const viaFull = [await docker.images.inspect(`${REPO_PREFIX}/web:1.1.0`), await docker.images.inspect(`${REPO_PREFIX}/base:1`)];
    assert.deepEqual(
      viaFull.map((i) => [i.Id, i.RootFS.Layers]),
      viaDelta.map((i) => [i.Id, i.RootFS.Layers]),
    );
    // The delta's record links every blob it needs, so retention keeps what the receipt promised.
    const j = journal(state);
    try {
      const rows = j.bundles();
      assert.deepEqual(rows.map((x) => x.version), ['1.0.0', '1.1.0']);
      assert.deepEqual(j.links(rows[1]!.id), (await manifestOf(b.delta)).manifest.blobs.map((x) => x.digest));
    } finally {
      j.close();
    }
  } finally {
    await docker.close();
  }
});

test('a receipt delta on a host that lacks what the site held is refused, naming the site, the receipt and what is missing', async () => {
  const m = (await manifestOf(b.delta)).manifest;
  const ref = (m.base as { receipt: ReceiptRef }).receipt;
  const fromBase = m.blobs.filter((x) => x.carried === false);
  const total = fromBase.reduce((n, x) => n + x.size, 0);
  const state = join(work.dir, 'state-empty-host');
  const r = await runCli(bench.importArgs(b.delta, state), { DOCKER_HOST: daemon.dockerHost });
  assert.equal(r.code, 13, r.stderr + r.stdout);
  const err = JSON.parse(r.stdout) as { error: string; reason: string; message: string; subject: string; hint: string };
  assert.deepEqual([err.error, err.reason, err.subject], ['policy', 'missing-base', `receipt of ${SITE} (${ref.created})`]);
  assert.equal(
    err.message,
    `demo 1.1.0 is a delta built against what ${SITE} held at ${ref.created} (receipt ${ref.digest.slice(0, 19)}), ` +
      `and this host lacks 4 blobs (${(total / MiB).toFixed(1)} MiB) of the 4 it relies on from that receipt`,
  );
  assert.match(err.hint, /airlock bundle receipt/);
  assert.deepEqual(await storeListing(state), new Map());
  const j = journal(state);
  try {
    assert.deepEqual(j.bundles(), []);
    assert.deepEqual(j.events(), [{ outcome: 'refused', subject: 'demo 1.1.0', reason: 'missing-base' }]);
    assert.deepEqual(j.kinds(), ['bundle.import'], 'no image load was tried');
  } finally {
    j.close();
  }
});

test('bundle build refuses a tampered, damaged, foreign or unknown receipt, and writes nothing', async () => {
  const outDir = join(work.dir, 'refused');
  const run = (extra: string[]) => runCli(['bundle', 'build', '-f', join(p.v2, 'bundle.yaml'), '--key', vendor.keyPath, '-o', outDir, '--json', ...extra], EPOCH);
  const withReceipt = (file: string, key = site.pubPath) => run(['--since-receipt', file, '--receipt-key', key]);
  const error = (stdout: string) => JSON.parse(stdout) as { reason: string; message: string };
  const original = await readJson<ReceiptFile>(b.receipt);
  const write = async (name: string, data: string | Buffer) => {
    const path = join(work.dir, name);
    await writeFile(path, data);
    return path;
  };

  // One blob digest edited: the signature no longer covers the body.
  const edited = structuredClone(original);
  edited.receipt.blobs[0]!.digest = sha(Buffer.from('a blob the site never held'));
  const tampered = await withReceipt(await write('tampered.json', JSON.stringify(edited)));
  assert.equal(tampered.code, 10, tampered.stdout);
  assert.equal(error(tampered.stdout).reason, 'bad-signature');
  assert.match(error(tampered.stdout).message, new RegExp(`receipt .*tampered\\.json \\(site ${SITE}\\) does not match its signature: it was changed after the site signed it`));

  // Signed by another key than the site's (a receipt from another site, or a forgery).
  const other = await makeSigner(work.dir, 'other-site');
  const foreign = signReceipt(original.receipt, await loadPrivateKey(other.keyPath));
  const byOther = await withReceipt(await write('foreign.json', foreign.bytes));
  assert.equal(byOther.code, 10, byOther.stdout);
  assert.equal(error(byOther.stdout).reason, 'unknown-key');
  assert.match(error(byOther.stdout).message, new RegExp(`is signed by key ${other.keyId}, not by the site key ${site.keyId} in .*site\\.pub`));
  // The right receipt checked against another site's key is the same refusal.
  assert.equal((await withReceipt(b.receipt, other.pubPath)).code, 10);

  // Damaged in transit: cut short.
  const raw = await readFile(b.receipt);
  const cut = await withReceipt(await write('cut.json', raw.subarray(0, raw.length >> 1)));
  assert.equal(cut.code, 11, cut.stdout);
  assert.equal(error(cut.stdout).reason, 'receipt-malformed');
  assert.match(error(cut.stdout).message, /is not JSON/);

  // A format this airlock does not know, properly signed: named, before the schema.
  const newer = signReceipt({ ...original.receipt, format: 'airlock.receipt.v9' as Receipt['format'] }, siteKey);
  const unknown = await withReceipt(await write('newer.json', newer.bytes));
  assert.equal(unknown.code, 11, unknown.stdout);
  assert.equal(error(unknown.stdout).reason, 'receipt-invalid');
  assert.match(error(unknown.stdout).message, /is in format "airlock\.receipt\.v9", which this airlock does not read \(it reads airlock\.receipt\.v1\)/);

  // Signed, but out of order: one spelling per receipt.
  const reversed = signReceipt({ ...original.receipt, blobs: [...original.receipt.blobs].reverse() }, siteKey);
  const disorder = await withReceipt(await write('reversed.json', reversed.bytes));
  assert.equal(disorder.code, 11);
  assert.match(error(disorder.stdout).message, /lists its blobs out of order or twice/);

  // A bundle manifest given where a receipt belongs.
  const manifestFile = await write('manifest.json', (await manifestOf(b.full1)).bytes);
  const wrongKind = await withReceipt(manifestFile);
  assert.equal(wrongKind.code, 11);
  assert.match(error(wrongKind.stdout).message, /is a bundle manifest, not a receipt/);

  const missing = await withReceipt(join(work.dir, 'nope.receipt.json'));
  assert.equal(missing.code, 4);
  assert.equal(error(missing.stdout).reason, 'no-such-receipt');

  // Usage: the site key is required, and one base per delta.
  const noKey = await run(['--since-receipt', b.receipt]);
  assert.equal(noKey.code, 2);
  assert.match(error(noKey.stdout).message, /--since-receipt needs --receipt-key SITE\.pub/);
  const both = await run(['--since-receipt', b.receipt, '--receipt-key', site.pubPath, '--since', b.full1]);
  assert.equal(both.code, 2);
  assert.match(error(both.stdout).message, /a delta has one base/);
  assert.equal((await run(['--receipt-key', site.pubPath])).code, 2);

  await assert.rejects(stat(join(outDir, 'demo-1.1.0.airlock')));
  assert.deepEqual(await readdir(outDir).catch(() => []), [], 'nothing written, not even a partial file');
});

test('readers refuse a receipt base without the receipt requirement, and a receipt requirement on a bundle base', async () => {
  const good = await Bundle.from(await readFile(b.delta));
  const since = (await manifestOf(b.sinceDelta)).manifest.base as BundleBaseRef;
  const verifyResigned = async (change: (m: Manifest) => void) => {
    const m = good.manifest;
    change(m);
    const file = join(work.dir, 'tampered-delta.airlock');
    await writeFile(file, good.resign(m, vendorKey).pack());
    const r = await runCli(['bundle', 'verify', file, '--trust', vendor.trustDir, '--json']);
    return { code: r.code, err: JSON.parse(r.stdout) as { reason: string; message: string } };
  };
  const cases: [string, (m: Manifest) => void, RegExp][] = [
    ['receipt base, delta only', (m) => void (m.requires = ['delta']), /its base is a receipt, but it does not require receipt/],
    ['bundle base, receipt required', (m) => void (m.base = since), /requires receipt but its base is a bundle/],
    ['receipt without delta', (m) => void (m.requires = ['receipt']), /names a base but does not require delta/],
    ['a receipt base with a bad date', (m) => void ((m.base as { receipt: ReceiptRef }).receipt.created = '2026-13-45T00:00:00Z'), /base receipt created .* is not a valid date/],
    ['a receipt base with an extra field', (m) => void ((m.base as Record<string, unknown>).name = 'demo'), /does not match format airlock\.bundle\.v2: \/base/],
  ];
  for (const [name, change, message] of cases) {
    const { code, err } = await verifyResigned(change);
    assert.equal(code, 11, `${name}: ${JSON.stringify(err)}`);
    assert.equal(err.reason, 'manifest-invalid', name);
    assert.match(err.message, message, name);
  }
});
