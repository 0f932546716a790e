/**
 * Per-blob compression (issue 9): `--compress auto|gzip|zstd|none`.
 *
 * The real CLI builds, verifies and imports; tampered variants are written
 * with the tests' own tar helper and re-signed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, type KeyObject } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, zstdCompressSync } from 'node:zlib';
import { ExitCode } from '../../src/errors/index.js';
import { checkDeclaredSizes, DEFAULT_LIMITS } from '../../src/bundle/limits.js';
import { blobEntryName, type BlobRecord, type Manifest } from '../../src/bundle/manifest.js';
import { loadPrivateKey } from '../../src/trust/keys.js';
import { makeProject, makeSigner, runCli, tempDir, type CliResult, type Signer } from '../helpers/fixtures.js';
import { Bundle } from '../helpers/tamper.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
/** One build time for the whole run, so that builds can be compared byte for byte (and are not expired). */
const EPOCH = { SOURCE_DATE_EPOCH: String(Math.floor(Date.now() / 1000) - 3600) };

/** zstd at node's default level, for hand-made blobs. */
function zstd(data: Buffer): Buffer {
  return zstdCompressSync(data);
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

  async function build(compress: string, out: string, opts: { extra?: string[] } = {}): Promise<{ path: string; bundle: Bundle; bytes: Buffer }> {
    const r = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(dir, out), '--compress', compress, '--json', ...(opts.extra ?? [])], EPOCH);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const path = (JSON.parse(r.stdout) as { path: string }).path;
    const bytes = await readFile(path);
    return { path, bytes, bundle: await Bundle.from(bytes) };
  }
  const verify = (path: string) => runCli(['bundle', 'verify', path, '--trust', signer.trustDir, '--json']);
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

  it('an unknown --compress is a usage error (exit 2) that writes nothing', async () => {
    const bad = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(dir, 'bad'), '--compress', 'xz']);
    assert.equal(bad.code, ExitCode.usage);
    assert.match(bad.stderr, /--compress must be auto, gzip, zstd, none, not "xz"/);
    assert.deepEqual(await readdir(join(dir, 'bad')).catch(() => []), []);
  });

  it('none and gzip make v1 bundles, as before, that this runtime verifies', async () => {
    const none = await build('none', 'none');
    const gzip = await build('gzip', 'gzip');
    for (const { bundle, path } of [none, gzip]) {
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
    assert.ok(gzip.bytes.length < none.bytes.length);
  });

  it('auto zstd-compresses what shrinks (busybox, the log file), not random bytes or small files: a v2 bundle that requires zstd', async () => {
    const auto = await build('auto', 'auto-zstd');
    const m = auto.bundle.manifest;
    assert.equal(m.format, 'airlock.bundle.v2');
    assert.deepEqual(m.requires, ['zstd']);
    assertAutoChose(m, 'zstd');
    const r = await verify(auto.path);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const none = await build('none', 'none-for-auto');
    assert.ok(auto.bytes.length < none.bytes.length);
  });

  it('zstd: every blob zstd-encoded in a v2 bundle that requires zstd, reproducible, verified on the packaged runtime', async () => {
    const z = await build('zstd', 'zstd');
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
    const r = await verify(z.path);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // Same inputs, same key, same SOURCE_DATE_EPOCH: the same bytes.
    const again = await build('zstd', 'zstd-again');
    assert.ok(again.bytes.equals(z.bytes), 'two zstd builds differ');
    // Smaller than gzip for the same content.
    const gz = await build('gzip', 'gzip-for-size');
    assert.ok(z.bytes.length < gz.bytes.length, `zstd ${z.bytes.length} B, gzip ${gz.bytes.length} B`);
  });

  it('a zstd delta requires delta and zstd, sorted', async () => {
    const base = await build('auto', 'delta-base');
    const def2 = await makeProject(join(dir, 'p2'), { version: '1.1.0' });
    const r = await runCli(['bundle', 'build', '-f', def2, '--key', signer.keyPath, '-o', join(dir, 'delta'), '--since', base.path, '--compress', 'zstd', '--json'], EPOCH);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const delta = await Bundle.from(await readFile((JSON.parse(r.stdout) as { path: string }).path));
    const m = delta.manifest;
    assert.deepEqual(m.requires, ['delta', 'zstd']);
    assert.ok(m.blobs.some((b) => b.carried === false));
    assert.ok(m.blobs.filter((b) => b.carried !== false).every((b) => b.encoding === 'zstd'));
  });

  it('zstd decompression bombs are refused: a blob that inflates past its declared size, a declared ratio beyond zstd', async () => {
    const z = await build('zstd', 'zstd-bomb');
    const content = Buffer.alloc(1_000_000, 7);
    const stored = zstd(content);
    const rec: BlobRecord = { digest: sha(content), size: 100_000, kind: 'file', encoding: 'zstd', stored: { digest: sha(stored), size: stored.length } };
    const bomb = await write('bomb.airlock', z.bundle.addBlob(rec, stored, key));
    assertRefused(await verify(bomb), 'unsafeEntry', 'decompression-bomb', /inflates beyond its declared 100000 bytes/);

    // 64 MiB of zeros really is ~32000:1 in zstd, far past what gzip can do: within zstd's limit, and it verifies.
    const zeros = Buffer.alloc(64 << 20);
    const dense = zstd(zeros);
    assert.ok(zeros.length / dense.length > DEFAULT_LIMITS.maxInflateRatio.gzip);
    const ok = { digest: sha(zeros), size: zeros.length, kind: 'file' as const, encoding: 'zstd' as const, stored: { digest: sha(dense), size: dense.length } };
    const r = await verify(await write('dense.airlock', z.bundle.addBlob(ok, dense, key)));
    assert.equal(r.code, 0, r.stdout + r.stderr);

    // A declared ratio beyond zstd's densest block is refused from the manifest alone, on any runtime.
    const tiny = zstd(Buffer.alloc(100));
    const lie: BlobRecord = { digest: sha(Buffer.from('lie')), size: tiny.length * 40_000, kind: 'layer', encoding: 'zstd', stored: { digest: sha(tiny), size: tiny.length } };
    const liar = await write('liar.airlock', z.bundle.addBlob(lie, tiny, key));
    assertRefused(await verify(liar), 'unsafeEntry', 'decompression-bomb', /claims to inflate \d+ bytes to \d+, beyond what zstd can do/);
  });

  it('zstd data that does not decode is refused as corrupt (exit 11), even with its stored digest re-signed', async () => {
    const z = await build('zstd', 'zstd-corrupt');
    const target = z.bundle.manifest.blobs.find((b) => b.kind === 'layer' && b.size > 100_000)!;
    const name = blobEntryName(target.digest);
    const restored = (change: (s: Buffer) => Buffer) => {
      const m = z.bundle.manifest;
      const stored = change(z.bundle.entry(name).data);
      m.blobs.find((b) => b.digest === target.digest)!.stored = { digest: sha(stored), size: stored.length };
      return z.bundle.replace(name, (e) => ({ ...e, data: stored })).resign(m, key);
    };
    const garbage = await write('garbage.airlock', restored(() => Buffer.from('this is not a zstd frame at all\n'.repeat(200))));
    assertRefused(await verify(garbage), 'integrity', 'hash-mismatch', /is corrupt: its zstd data does not decode/);
    const cut = await write('cut.airlock', restored((s) => s.subarray(0, s.length - 50)));
    const r = await verify(cut);
    assert.equal(r.code, ExitCode.integrity, r.stdout + r.stderr);
    assert.match(String(jsonOut(r).message), /does not decode|decoded content is \d+ bytes/);
  });

  it('the manifest names zstd exactly when a blob uses it; v1 cannot', async () => {
    const z = await build('zstd', 'zstd-rules');
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
