/**
 * Split parts (issue 9): `bundle build --split SIZE` and `bundle split`
 * write NAME.airlock.part-NNNN files and a signed index NAME.airlock.parts,
 * which every command takes in place of the bundle. Real bundles on disk,
 * the real CLI and real SQLite; --no-load, so no engine is needed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readJournal } from '../helpers/journal-read.js';
import { makeProject, makeSigner, runCli, tempDir, type Signer } from '../helpers/fixtures.js';
import { loadPrivateKey } from '../../src/trust/keys.js';
import { canonicalJson } from '../../src/bundle/canonical-json.js';
import { isPartsIndex, partNameOf, signedIndexBytes, type PartsIndex } from '../../src/bundle/parts.js';

const EPOCH = { SOURCE_DATE_EPOCH: '1767225600' };
const MiB = 1024 * 1024;
const STEM = 'demo-1.0.0';
const part = (n: number) => `${STEM}.airlock.part-${String(n).padStart(4, '0')}`;
const INDEX = `${STEM}.airlock.parts`;

let work: { dir: string; cleanup: () => Promise<void> };
let signer: Signer;
let stranger: Signer;
/** The whole bundle, built once; and the folders holding build --split and bundle split output. */
let whole = '';
let builtSplit = '';
let splitDir = '';
let partNames: string[] = [];

interface CliError {
  error: string;
  reason: string;
  message: string;
  subject?: string;
  exitCode: number;
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const errorOf = (stdout: string) => JSON.parse(stdout) as CliError;
const importArgs = (file: string, state: string) => ['bundle', 'import', file, '--state', state, '--trust', signer.trustDir, '--no-load', '--json'];

async function storeListing(state: string): Promise<string[]> {
  return (await readdir(join(state, 'blobs', 'sha256')).catch(() => [] as string[])).sort();
}

function journal(state: string) {
  return readJournal(state, (j) => ({
    bundles: j.bundles().map((b) => ({ name: b.name, version: b.version, digest: b.manifest_digest })),
    imports: j.events({ kind: 'bundle.import' }).map(({ outcome, reason }) => ({ outcome, reason })),
  }));
}

/** A folder holding the index and the chosen parts, copied in the given order with distinct, shuffled mtimes. */
async function deliver(name: string, parts: number[]): Promise<string> {
  const dir = join(work.dir, name);
  await mkdir(dir, { recursive: true });
  const base = Date.now() / 1000 - 86_400 * 3;
  for (const [i, n] of parts.entries()) {
    await copyFile(join(builtSplit, part(n)), join(dir, part(n)));
    // Over several days, and not in part order.
    await utimes(join(dir, part(n)), base + (parts.length - i) * 3600, base + (parts.length - i) * 3600);
  }
  await copyFile(join(builtSplit, INDEX), join(dir, INDEX));
  return dir;
}

/** Where each tar entry's data starts and how long it is, from the ustar headers. */
function tarEntries(bundle: Buffer): { name: string; offset: number; size: number }[] {
  const out = [];
  let at = 0;
  while (at + 512 <= bundle.length && bundle[at] !== 0) {
    const name = bundle.subarray(at, at + 100).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(bundle.subarray(at + 124, at + 136).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
    out.push({ name, offset: at + 512, size });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

before(async () => {
  work = await tempDir('airlock-parts-');
  signer = await makeSigner(work.dir);
  stranger = await makeSigner(work.dir, 'stranger');
  const project = join(work.dir, 'project');
  await mkdir(project, { recursive: true });
  // Random bytes do not compress: the bundle is a little over 3.5 MiB, four parts of 1 MiB.
  const def = await makeProject(project, { expires: null, bulkBytes: 3.5 * MiB });
  const build = async (out: string, extra: string[]) => {
    const r = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(work.dir, out), '--json', ...extra], EPOCH);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    return JSON.parse(r.stdout) as { path: string; split?: { parts: { name: string }[] } };
  };
  whole = (await build('whole', [])).path;
  const split = await build('split', ['--split', '1M']);
  builtSplit = join(work.dir, 'split');
  assert.equal(split.path, join(builtSplit, INDEX));
  partNames = split.split!.parts.map((p) => p.name);
  splitDir = join(work.dir, 'split-later');
  const r = await runCli(['bundle', 'split', whole, '--size', '1M', '--key', signer.keyPath, '-o', splitDir, '--json']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
});

after(async () => {
  await work?.cleanup();
});

test('build --split writes numbered parts and a signed canonical index instead of the bundle; the parts join into it', async () => {
  assert.ok(partNames.length >= 3, `${partNames.length} parts`);
  assert.deepEqual(partNames, partNames.map((_, i) => part(i + 1)));
  assert.deepEqual((await readdir(builtSplit)).sort(), [INDEX, ...partNames].sort(), 'no whole bundle, no temporary files');
  const bundle = await readFile(whole);
  const joined = Buffer.concat(await Promise.all(partNames.map((n) => readFile(join(builtSplit, n)))));
  assert.ok(joined.equals(bundle), 'the parts, in order, are the bundle byte for byte');
  for (const n of partNames.slice(0, -1)) assert.equal((await stat(join(builtSplit, n))).size, MiB);

  const text = await readFile(join(builtSplit, INDEX), 'utf8');
  const idx = JSON.parse(text) as PartsIndex;
  assert.equal(canonicalJson(idx), text, 'canonical JSON');
  assert.equal(idx.index.format, 'airlock.parts.v1');
  assert.equal(idx.index.file, `${STEM}.airlock`);
  assert.deepEqual([idx.index.name, idx.index.version], ['demo', '1.0.0']);
  assert.equal(idx.index.size, bundle.length);
  assert.equal(idx.index.sha256, sha(bundle));
  const manifestEntry = tarEntries(bundle)[0]!;
  assert.equal(idx.index.manifestDigest, `sha256:${sha(bundle.subarray(manifestEntry.offset, manifestEntry.offset + manifestEntry.size))}`);
  for (const [i, p] of idx.index.parts.entries()) {
    const data = await readFile(join(builtSplit, p.name));
    assert.deepEqual(p, { name: part(i + 1), size: data.length, sha256: sha(data) });
  }
  assert.equal(idx.signature.keyId, signer.keyId);

  assert.ok(isPartsIndex(join(builtSplit, INDEX)));
  assert.deepEqual(partNameOf(join(builtSplit, part(3))), { number: 3, stem: STEM, index: join(builtSplit, INDEX) });
  assert.equal(partNameOf(whole), null);
});

test('bundle split of the finished bundle gives the same parts and index, byte for byte', async () => {
  assert.deepEqual((await readdir(splitDir)).sort(), (await readdir(builtSplit)).sort());
  for (const name of await readdir(builtSplit)) {
    assert.ok((await readFile(join(splitDir, name))).equals(await readFile(join(builtSplit, name))), name);
  }
  // An index is not split again, and the key must be the one that signed the bundle.
  const again = await runCli(['bundle', 'split', join(splitDir, INDEX), '--size', '1M', '--key', signer.keyPath, '--json']);
  assert.equal(again.code, 2, again.stdout);
  const otherKey = await runCli(['bundle', 'split', whole, '--size', '1M', '--key', stranger.keyPath, '-o', join(work.dir, 'nope'), '--json']);
  assert.equal(otherKey.code, 2, otherKey.stdout);
  assert.match(errorOf(otherKey.stdout).message, new RegExp(`signed by key ${signer.keyId}, not by --key ${stranger.keyId}`));
});

test('--split and --size take 100M-style sizes of at least 1M; anything else is a usage error', async () => {
  for (const size of ['512K', '1000000', 'ten', '1.5G', '0']) {
    const r = await runCli(['bundle', 'split', whole, '--size', size, '--key', signer.keyPath, '-o', join(work.dir, 'bad-size'), '--json']);
    assert.equal(r.code, 2, `${size}: ${r.stdout}`);
    assert.equal(errorOf(r.stdout).reason, 'usage');
  }
  const r = await runCli(['bundle', 'build', '-f', join(work.dir, 'project', 'bundle.yaml'), '--key', signer.keyPath, '-o', join(work.dir, 'bad-build'), '--split', '2X', '--json']);
  assert.equal(r.code, 2, r.stdout);
  assert.match(errorOf(r.stdout).message, /--split takes a size such as 100M/);
});

test('import from the index stores exactly what importing the whole bundle stores; verify and inspect take the index too', async () => {
  const fromWhole = join(work.dir, 'state-whole');
  const fromParts = join(work.dir, 'state-parts');
  const a = await runCli(importArgs(whole, fromWhole));
  assert.equal(a.code, 0, a.stdout + a.stderr);
  const b = await runCli(importArgs(join(builtSplit, INDEX), fromParts));
  assert.equal(b.code, 0, b.stdout + b.stderr);
  const ra = JSON.parse(a.stdout) as Record<string, unknown>;
  const rb = JSON.parse(b.stdout) as Record<string, unknown>;
  for (const k of ['name', 'version', 'manifestDigest', 'keyId', 'blobs', 'newBlobs', 'newBytes']) assert.deepEqual(rb[k], ra[k], k);
  assert.deepEqual(await storeListing(fromParts), await storeListing(fromWhole));
  for (const hex of await storeListing(fromParts)) {
    assert.ok((await readFile(join(fromParts, 'blobs', 'sha256', hex))).equals(await readFile(join(fromWhole, 'blobs', 'sha256', hex))));
  }
  assert.deepEqual(journal(fromParts).bundles, journal(fromWhole).bundles);

  const verify = await runCli(['bundle', 'verify', join(splitDir, INDEX), '--trust', signer.trustDir, '--json']);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  assert.equal((JSON.parse(verify.stdout) as { manifestDigest: string }).manifestDigest, ra.manifestDigest);

  const inspect = await runCli(['bundle', 'inspect', join(splitDir, INDEX), '--trust', signer.trustDir, '--json']);
  assert.equal(inspect.code, 0, inspect.stderr);
  const shown = JSON.parse(inspect.stdout) as { signature: { status: string }; parts: { complete: boolean; signature: { status: string } }; manifest: { name: string } };
  assert.deepEqual([shown.signature.status, shown.parts.signature.status, shown.parts.complete, shown.manifest.name], ['valid', 'valid', true, 'demo']);

  const manifest = await runCli(['bundle', 'inspect', join(splitDir, INDEX), '--manifest']);
  const direct = await runCli(['bundle', 'inspect', whole, '--manifest']);
  assert.equal(manifest.stdout, direct.stdout);
});

test('build --since takes the index of a split base, and makes the same delta as from the whole bundle', async () => {
  const project = join(work.dir, 'project-1.1.0');
  await mkdir(project, { recursive: true });
  const def = await makeProject(project, { version: '1.1.0', expires: null });
  const delta = async (since: string, out: string) => {
    const r = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(work.dir, out), '--since', since, '--trust', signer.trustDir, '--json'], EPOCH);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    return readFile((JSON.parse(r.stdout) as { path: string }).path);
  };
  assert.ok((await delta(join(builtSplit, INDEX), 'delta-from-parts')).equals(await delta(whole, 'delta-from-whole')));
});

test('parts that arrive out of order, one missing, are refused by name and change nothing; once the part arrives, the import goes through', async () => {
  const state = join(work.dir, 'state-late');
  const missing = 3;
  // Every part but one, last first.
  const inbox = await deliver('inbox-late', partNames.map((_, k) => k + 1).filter((n) => n !== missing).reverse());
  const before = await storeListing(state);

  const refused = await runCli(importArgs(join(inbox, INDEX), state));
  assert.equal(refused.code, 11, refused.stdout + refused.stderr);
  const err = errorOf(refused.stdout);
  assert.equal(err.reason, 'missing-part');
  assert.equal(err.subject, part(missing));
  assert.match(err.message, new RegExp(`1 of ${partNames.length} parts missing \\(${MiB} bytes\\): ${part(missing)}`));
  assert.deepEqual(await storeListing(state), before, 'no blob stored');
  const j = journal(state);
  assert.deepEqual(j.bundles, [], 'no bundle recorded');
  assert.deepEqual(j.imports, [{ outcome: 'refused', reason: 'missing-part' }], 'only the refusal is journaled');

  // Inspect says which part is not there yet, and does not fail.
  const inspect = await runCli(['bundle', 'inspect', join(inbox, INDEX), '--trust', signer.trustDir]);
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.match(inspect.stdout, new RegExp(`1 of ${partNames.length} not ready: ${part(missing)}`));

  // The missing part arrives half-way first: still incomplete, named, nothing stored.
  const half = join(inbox, part(missing));
  await writeFile(half, (await readFile(join(builtSplit, part(missing)))).subarray(0, MiB / 2));
  const short = await runCli(importArgs(join(inbox, INDEX), state));
  assert.equal(short.code, 11, short.stdout);
  assert.deepEqual([errorOf(short.stdout).reason, errorOf(short.stdout).subject], ['truncated', part(missing)]);
  assert.deepEqual(await storeListing(state), before);

  await copyFile(join(builtSplit, part(missing)), half);
  const done = await runCli(importArgs(join(inbox, INDEX), state));
  assert.equal(done.code, 0, done.stdout + done.stderr);
  assert.deepEqual(journal(state).bundles.map((b) => `${b.name} ${b.version}`), ['demo 1.0.0']);
  assert.deepEqual(await storeListing(state), await storeListing(join(work.dir, 'state-whole')));
});

test('a damaged part is refused by name and nothing is stored, also when the damage is first seen by a blob check', async () => {
  const bundle = await readFile(whole);
  const entries = tarEntries(bundle);
  const conf = entries.find((e) => e.name === `blobs/sha256/${sha(Buffer.from('listen=8080\n'))}`)!;
  // Flip a byte in the middle of part 2, in a small blob (the blob's own hash may fail before
  // the part ends) and in the manifest (its signature check comes first).
  const spots = [
    { at: MiB + MiB / 2, why: 'in the middle of part 2' },
    { at: conf.offset + 3, why: 'inside the small app.conf blob' },
    { at: entries[0]!.offset + 10, why: 'inside manifest.json' },
  ];
  for (const [i, spot] of spots.entries()) {
    const n = Math.floor(spot.at / MiB) + 1;
    const dir = await deliver(`inbox-damaged-${i}`, partNames.map((_, k) => k + 1));
    const file = join(dir, part(n));
    const data = await readFile(file);
    data[spot.at % MiB] = data[spot.at % MiB]! ^ 0x20;
    await writeFile(file, data);
    const state = join(work.dir, `state-damaged-${i}`);
    const r = await runCli(importArgs(join(dir, INDEX), state));
    assert.equal(r.code, 11, `${spot.why}: ${r.stdout}${r.stderr}`);
    const err = errorOf(r.stdout);
    assert.deepEqual([err.reason, err.subject], ['hash-mismatch', part(n)], spot.why);
    assert.match(err.message, new RegExp(`part ${part(n)} is damaged`));
    assert.deepEqual(await storeListing(state), [], spot.why);
    assert.deepEqual(journal(state).bundles, []);
  }

  // Parts much larger than the reader's read-ahead: the manifest's signature fails long before
  // part 1 ends, and the part is hashed to its end to name it.
  const big = join(work.dir, 'inbox-big-parts');
  const split = await runCli(['bundle', 'split', whole, '--size', '3M', '--key', signer.keyPath, '-o', big]);
  assert.equal(split.code, 0, split.stderr);
  const first = join(big, part(1));
  const data = await readFile(first);
  data[entries[0]!.offset + 10] = data[entries[0]!.offset + 10]! ^ 0x20;
  await writeFile(first, data);
  const early = await runCli(['bundle', 'verify', join(big, INDEX), '--trust', signer.trustDir, '--json']);
  assert.equal(early.code, 11, early.stdout);
  assert.deepEqual([errorOf(early.stdout).reason, errorOf(early.stdout).subject], ['hash-mismatch', part(1)]);

  // A part longer than the index says is damaged too, not incomplete.
  const dir = await deliver('inbox-long', partNames.map((_, k) => k + 1));
  await writeFile(join(dir, part(2)), Buffer.concat([await readFile(join(dir, part(2))), Buffer.from('x')]));
  const r = await runCli(['bundle', 'verify', join(dir, INDEX), '--trust', signer.trustDir, '--json']);
  assert.equal(r.code, 11, r.stdout);
  assert.deepEqual([errorOf(r.stdout).reason, errorOf(r.stdout).subject], ['size-mismatch', part(2)]);
});

test('an index signed by a key the host does not trust is refused; a cut index is incomplete; a lone part is not a bundle', async () => {
  const dir = await deliver('inbox-forged', partNames.map((_, k) => k + 1));
  const idx = JSON.parse(await readFile(join(dir, INDEX), 'utf8')) as PartsIndex;
  const key = await loadPrivateKey(stranger.keyPath);
  await writeFile(join(dir, INDEX), signedIndexBytes(idx.index, key));
  const state = join(work.dir, 'state-forged');
  const r = await runCli(importArgs(join(dir, INDEX), state));
  assert.equal(r.code, 10, r.stdout);
  const err = errorOf(r.stdout);
  assert.deepEqual([err.reason, err.subject], ['unknown-key', join(dir, INDEX)]);
  assert.match(err.message, new RegExp(`parts index ${INDEX}: signed by unknown key ${stranger.keyId}`));
  assert.deepEqual(await storeListing(state), []);

  // The index edited after signing (a part's hash swapped): bad signature.
  const edited = { ...idx, index: { ...idx.index, parts: idx.index.parts.map((p, i) => (i === 0 ? { ...p, sha256: '0'.repeat(64) } : p)) } };
  await writeFile(join(dir, INDEX), canonicalJson(edited));
  const bad = await runCli(['bundle', 'verify', join(dir, INDEX), '--trust', signer.trustDir, '--json']);
  assert.equal(bad.code, 10, bad.stdout);
  assert.equal(errorOf(bad.stdout).reason, 'bad-signature');

  // An index whose upload was cut short.
  await copyFile(join(builtSplit, INDEX), join(dir, INDEX));
  await truncate(join(dir, INDEX), 100);
  for (const cutAt of [100, 101, 102, 103]) {
    await copyFile(join(builtSplit, INDEX), join(dir, INDEX));
    await truncate(join(dir, INDEX), cutAt);
    const r = await runCli(['bundle', 'verify', join(dir, INDEX), '--trust', signer.trustDir, '--json']);
    assert.equal(errorOf(r.stdout).reason, 'truncated', `cut at ${cutAt}: ${r.stdout}`);
  }
  const cut = await runCli(importArgs(join(dir, INDEX), state));
  assert.equal(cut.code, 11, cut.stdout);
  assert.equal(errorOf(cut.stdout).reason, 'truncated');

  const lone = await runCli(['bundle', 'verify', join(builtSplit, part(1)), '--trust', signer.trustDir, '--json']);
  assert.equal(lone.code, 2, lone.stdout);
  assert.match(errorOf(lone.stdout).message, new RegExp(`part 1 of a split bundle; give its index ${join(builtSplit, INDEX)}`));
  await rm(dir, { recursive: true });
});
