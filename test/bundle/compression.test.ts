/**
 * Per-blob compression (issue 9): `--compress auto|gzip|zstd|none`.
 *
 * The test runner's Node 20 has no zstd, so everything zstd is done by the
 * real CLI on the packaged runtime (Node 24, from scripts/fetch-node), and
 * the Node 20 CLI shows what a runtime without zstd does with such bundles.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, type KeyObject } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { ExitCode } from '../../src/errors/index.js';
import { checkDeclaredSizes, DEFAULT_LIMITS } from '../../src/bundle/limits.js';
import { blobEntryName, type BlobRecord, type Manifest } from '../../src/bundle/manifest.js';
import { loadPrivateKey } from '../../src/trust/keys.js';
import { makeProject, makeSigner, REPO, runCli, tempDir, type CliResult, type Signer } from '../helpers/fixtures.js';
import { Bundle } from '../helpers/tamper.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
/** One build time for the whole run, so that builds can be compared byte for byte (and are not expired). */
const EPOCH = { SOURCE_DATE_EPOCH: String(Math.floor(Date.now() / 1000) - 3600) };

/** The packaged Node runtime, or the reason there is none (then the zstd tests are skipped). */
function packagedNode(): { node?: string; why?: string } {
  const r = spawnSync(join(REPO, 'scripts/fetch-node'), [], { encoding: 'utf8' });
  if (r.status !== 0) return { why: `scripts/fetch-node failed: ${r.stderr.trim()}` };
  const node = r.stdout.trim();
  const zstd = spawnSync(node, ['-p', 'typeof require("node:zlib").createZstdCompress'], { encoding: 'utf8' });
  return zstd.stdout.trim() === 'function' ? { node } : { why: `${node} has no zstd` };
}
const N24 = packagedNode();
const needsZstd = N24.node ? {} : { skip: N24.why! };

/** zstd-compresses on the packaged runtime (this one has no zstd). */
function zstd(data: Buffer): Buffer {
  const r = spawnSync(N24.node!, ['-e', 'process.stdout.write(require("node:zlib").zstdCompressSync(require("node:fs").readFileSync(0)))'], { input: data, maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, String(r.stderr));
  return r.stdout;
}

function jsonOut(r: CliResult): Record<string, unknown> {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return assert.fail(`expected JSON on stdout, got exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

/** Asserts a `--json` refusal: class, exit code, reason and message. */
function assertRefused(r: CliResult, error: keyof typeof ExitCode, reason: string, message: RegExp): void {
  const out = jsonOut(r);
  const seen = `exit ${r.code}: ${JSON.stringify(out)} ${r.stderr}`;
  assert.equal(out.error, error, seen);
  assert.equal(out.reason, reason, seen);
  assert.equal(r.code, ExitCode[error], seen);
  assert.match(String(out.message), message, seen);
}

/** What `auto` does: `codec` for the busybox layer and the log file, nothing for random bytes, configs and stack files. */
function assertAutoChose(m: Manifest, codec: 'gzip' | 'zstd'): void {
  const enc = (kind: string) => [...new Set(m.blobs.filter((b) => b.kind === kind).map((b) => b.encoding))].sort();
  assert.deepEqual(enc('image-config'), ['identity']);
  assert.deepEqual(enc('stack-file'), ['identity']);
  assert.deepEqual(enc('layer'), ['identity', codec].sort(), 'the random layer stays as it is, the others are compressed');
  assert.deepEqual(enc('file'), ['identity', codec].sort(), 'the log file is compressed, the small config file is not');
}

describe('per-blob compression', () => {
  let dir: string;
  let cleanup: () => Promise<void> = async () => {};
  let signer: Signer;
  let key: KeyObject;
  let def: string;

  async function build(compress: string, out: string, opts: { node?: string; extra?: string[] } = {}): Promise<{ path: string; bundle: Bundle; bytes: Buffer }> {
    const r = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(dir, out), '--compress', compress, '--json', ...(opts.extra ?? [])], EPOCH, opts.node);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const path = (JSON.parse(r.stdout) as { path: string }).path;
    const bytes = await readFile(path);
    return { path, bytes, bundle: await Bundle.from(bytes) };
  }
  const verify = (path: string, node?: string) => runCli(['bundle', 'verify', path, '--trust', signer.trustDir, '--json'], {}, node);
  const write = async (name: string, b: Bundle) => {
    const path = join(dir, name);
    await writeFile(path, b.pack());
    return path;
  };

  before(async () => {
    ({ dir, cleanup } = await tempDir('airlock-compress-'));
    signer = await makeSigner(dir);
    key = await loadPrivateKey(signer.keyPath);
    // A text file big enough for `auto` to sample and compress, beside busybox, a random layer and small files.
    const log = Buffer.from(Array.from({ length: 6000 }, (_, i) => `2024-01-01T00:00:${String(i % 60).padStart(2, '0')}Z worker ${i % 7} handled request ${i * 7919}\n`).join(''));
    def = await makeProject(join(dir, 'p'), { extraFiles: [{ dest: 'data/app.log', data: log }], bulkBytes: 300_000 });
  });
  after(() => cleanup());

  it('--compress zstd on a runtime without zstd is a usage error (exit 2) that writes nothing', async () => {
    const r = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(dir, 'no-zstd'), '--compress', 'zstd']);
    assert.equal(r.code, ExitCode.usage, r.stderr);
    assert.match(r.stderr, /--compress zstd needs a runtime with zstd, and this airlock runs on Node 20\.\d+\.\d+, which has none/);
    assert.match(r.stderr, /use --compress gzip/);
    assert.deepEqual(await readdir(join(dir, 'no-zstd')).catch(() => []), []);
    const bad = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(dir, 'bad'), '--compress', 'xz']);
    assert.equal(bad.code, ExitCode.usage);
    assert.match(bad.stderr, /--compress must be auto, gzip, zstd, none, not "xz"/);
  });

  it('none, gzip and auto make v1 bundles, as before, that this runtime verifies', async () => {
    const none = await build('none', 'none');
    const gzip = await build('gzip', 'gzip');
    const auto = await build('auto', 'auto');
    for (const { bundle, path } of [none, gzip, auto]) {
      const m = bundle.manifest;
      assert.equal(m.format, 'airlock.bundle.v1');
      assert.equal(m.requires, undefined);
      const r = await verify(path);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    assert.ok(none.bundle.manifest.blobs.every((b) => b.encoding === 'identity' && b.stored === undefined));
    assert.ok(gzip.bundle.manifest.blobs.every((b) => b.encoding === 'gzip'));
    for (const b of gzip.bundle.manifest.blobs) {
      const stored = gzip.bundle.entry(blobEntryName(b.digest)).data;
      assert.equal(sha(stored), b.stored!.digest);
      assert.equal(sha(gunzipSync(stored)), b.digest);
    }
    // auto, on a runtime without zstd: the busybox layer and the log file shrink, so they are gzipped;
    // the random layer, configs and stack files stay as they are.
    assertAutoChose(auto.bundle.manifest, 'gzip');
    assert.ok(auto.bytes.length < none.bytes.length);
  });

  it('auto on the packaged runtime picks zstd for what shrinks: a v2 bundle that requires zstd', needsZstd, async () => {
    const auto = await build('auto', 'auto-zstd', { node: N24.node! });
    const m = auto.bundle.manifest;
    assert.equal(m.format, 'airlock.bundle.v2');
    assert.deepEqual(m.requires, ['zstd']);
    assertAutoChose(m, 'zstd');
    const r = await verify(auto.path, N24.node!);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('zstd: every blob zstd-encoded in a v2 bundle that requires zstd, reproducible, verified on the packaged runtime', needsZstd, async () => {
    const z = await build('zstd', 'zstd', { node: N24.node! });
    const m = z.bundle.manifest;
    assert.equal(m.format, 'airlock.bundle.v2');
    assert.deepEqual(m.requires, ['zstd']);
    assert.equal(m.base, undefined);
    for (const b of m.blobs) {
      assert.equal(b.encoding, 'zstd');
      const stored = z.bundle.entry(blobEntryName(b.digest)).data;
      assert.equal(sha(stored), b.stored!.digest);
      assert.equal(stored.readUInt32LE(0), 0xfd2fb528, 'a zstd frame');
    }
    const r = await verify(z.path, N24.node!);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // Same inputs, same key, same SOURCE_DATE_EPOCH: the same bytes.
    const again = await build('zstd', 'zstd-again', { node: N24.node! });
    assert.ok(again.bytes.equals(z.bytes), 'two zstd builds differ');
    // Smaller than gzip for the same content.
    const gz = await build('gzip', 'gzip-for-size');
    assert.ok(z.bytes.length < gz.bytes.length, `zstd ${z.bytes.length} B, gzip ${gz.bytes.length} B`);
  });

  it('a zstd delta requires delta and zstd, sorted', needsZstd, async () => {
    const base = await build('auto', 'delta-base');
    const def2 = await makeProject(join(dir, 'p2'), { version: '1.1.0' });
    const r = await runCli(['bundle', 'build', '-f', def2, '--key', signer.keyPath, '-o', join(dir, 'delta'), '--since', base.path, '--compress', 'zstd', '--json'], EPOCH, N24.node!);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const delta = await Bundle.from(await readFile((JSON.parse(r.stdout) as { path: string }).path));
    const m = delta.manifest;
    assert.deepEqual(m.requires, ['delta', 'zstd']);
    assert.ok(m.blobs.some((b) => b.carried === false));
    assert.ok(m.blobs.filter((b) => b.carried !== false).every((b) => b.encoding === 'zstd'));
  });

  it('a runtime without zstd refuses a zstd bundle before reading any blob (exit 13); import stores nothing and journals why', needsZstd, async () => {
    const z = await build('zstd', 'zstd-refused', { node: N24.node! });
    const message = /this airlock runs on Node 20\.\d+\.\d+, which has no zstd, and the bundle demo 1\.0\.0 has zstd-compressed blobs/;
    const v = await verify(z.path);
    assertRefused(v, 'policy', 'zstd-unsupported', message);
    assert.match(String(jsonOut(v).hint), /rebuild the bundle with --compress gzip, or use the packaged airlock/);

    const state = join(dir, 'state-refused');
    const imp = await runCli(['bundle', 'import', z.path, '--state', state, '--trust', signer.trustDir, '--json', '--no-load']);
    assertRefused(imp, 'policy', 'zstd-unsupported', message);
    assert.deepEqual(await readdir(join(state, 'blobs', 'sha256')).catch(() => []), [], 'no blob stored');
    assert.deepEqual(await readdir(join(state, 'blobs', 'staging')).catch(() => []), [], 'nothing staged');
    const db = new Database(join(state, 'journal.db'), { readonly: true, fileMustExist: true });
    try {
      assert.equal((db.prepare('SELECT count(*) AS n FROM bundles').get() as { n: number }).n, 0);
      const ev = db.prepare('SELECT kind, outcome, reason FROM events ORDER BY id DESC LIMIT 1').get() as { kind: string; outcome: string; reason: string };
      assert.deepEqual({ ...ev }, { kind: 'bundle.import', outcome: 'refused', reason: 'zstd-unsupported' });
    } finally {
      db.close();
    }
  });

  it('zstd decompression bombs are refused: a blob that inflates past its declared size, a declared ratio beyond zstd', needsZstd, async () => {
    const z = await build('zstd', 'zstd-bomb', { node: N24.node! });
    const content = Buffer.alloc(1_000_000, 7);
    const stored = zstd(content);
    const rec: BlobRecord = { digest: sha(content), size: 100_000, kind: 'file', encoding: 'zstd', stored: { digest: sha(stored), size: stored.length } };
    const bomb = await write('bomb.airlock', z.bundle.addBlob(rec, stored, key));
    assertRefused(await verify(bomb, N24.node!), 'unsafeEntry', 'decompression-bomb', /inflates beyond its declared 100000 bytes/);

    // 64 MiB of zeros really is ~32000:1 in zstd, far past what gzip can do: within zstd's limit, and it verifies.
    const zeros = Buffer.alloc(64 << 20);
    const dense = zstd(zeros);
    assert.ok(zeros.length / dense.length > DEFAULT_LIMITS.maxInflateRatio.gzip);
    const ok = { digest: sha(zeros), size: zeros.length, kind: 'file' as const, encoding: 'zstd' as const, stored: { digest: sha(dense), size: dense.length } };
    const r = await verify(await write('dense.airlock', z.bundle.addBlob(ok, dense, key)), N24.node!);
    assert.equal(r.code, 0, r.stdout + r.stderr);

    // A declared ratio beyond zstd's densest block is refused from the manifest alone, on any runtime.
    const tiny = zstd(Buffer.alloc(100));
    const lie: BlobRecord = { digest: sha(Buffer.from('lie')), size: tiny.length * 40_000, kind: 'layer', encoding: 'zstd', stored: { digest: sha(tiny), size: tiny.length } };
    const liar = await write('liar.airlock', z.bundle.addBlob(lie, tiny, key));
    assertRefused(await verify(liar, N24.node!), 'unsafeEntry', 'decompression-bomb', /claims to inflate \d+ bytes to \d+, beyond what zstd can do/);
    assertRefused(await verify(liar), 'unsafeEntry', 'decompression-bomb', /beyond what zstd can do/);
  });

  it('zstd data that does not decode is refused as corrupt (exit 11), even with its stored digest re-signed', needsZstd, async () => {
    const z = await build('zstd', 'zstd-corrupt', { node: N24.node! });
    const target = z.bundle.manifest.blobs.find((b) => b.kind === 'layer' && b.size > 100_000)!;
    const name = blobEntryName(target.digest);
    const restored = (change: (s: Buffer) => Buffer) => {
      const m = z.bundle.manifest;
      const stored = change(z.bundle.entry(name).data);
      m.blobs.find((b) => b.digest === target.digest)!.stored = { digest: sha(stored), size: stored.length };
      return z.bundle.replace(name, (e) => ({ ...e, data: stored })).resign(m, key);
    };
    const garbage = await write('garbage.airlock', restored(() => Buffer.from('this is not a zstd frame at all\n'.repeat(200))));
    assertRefused(await verify(garbage, N24.node!), 'integrity', 'hash-mismatch', /is corrupt: its zstd data does not decode/);
    const cut = await write('cut.airlock', restored((s) => s.subarray(0, s.length - 50)));
    const r = await verify(cut, N24.node!);
    assert.equal(r.code, ExitCode.integrity, r.stdout + r.stderr);
    assert.match(String(jsonOut(r).message), /does not decode|decoded content is \d+ bytes/);
  });

  it('the manifest names zstd exactly when a blob uses it; v1 cannot', needsZstd, async () => {
    const z = await build('zstd', 'zstd-rules', { node: N24.node! });
    const variant = async (name: string, change: (m: Manifest) => void) => {
      const m = z.bundle.manifest;
      change(m);
      return write(name, z.bundle.resign(m, key));
    };
    const unrequired = await variant('unrequired.airlock', (m) => {
      m.requires = [];
    });
    assertRefused(await verify(unrequired), 'integrity', 'manifest-invalid', /has zstd-encoded blobs but does not require zstd/);
    const v1 = await variant('v1.airlock', (m) => {
      m.format = 'airlock.bundle.v1';
      delete m.requires;
    });
    assertRefused(await verify(v1), 'integrity', 'manifest-invalid', /\/blobs\/0\/encoding must be equal to one of the allowed values/);
    const none = await build('none', 'none-rules');
    const needless = none.bundle.manifest;
    needless.format = 'airlock.bundle.v2';
    needless.requires = ['zstd'];
    assertRefused(await verify(await write('needless.airlock', none.bundle.resign(needless, key))), 'integrity', 'manifest-invalid', /requires zstd but has no zstd-encoded blob/);
  });

  it('the declared-size check knows each encoding: gzip past 1100:1 is refused, zstd up to 32768:1 is not', () => {
    const m = (encoding: 'gzip' | 'zstd', size: number) =>
      ({ blobs: [{ digest: sha(Buffer.from('x')), size, kind: 'layer', encoding, stored: { digest: sha(Buffer.from('y')), size: 1000 } }] }) as unknown as Manifest;
    assert.throws(() => checkDeclaredSizes(m('gzip', 2_000_000), DEFAULT_LIMITS), /beyond what gzip can do/);
    assert.doesNotThrow(() => checkDeclaredSizes(m('zstd', 2_000_000), DEFAULT_LIMITS));
    assert.throws(() => checkDeclaredSizes(m('zstd', 40_000_000), DEFAULT_LIMITS), /beyond what zstd can do/);
  });
});
