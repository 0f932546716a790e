/**
 * A seeded mutation fuzzer for the bundle reader, shared by
 * test/bundle/fuzz.test.ts (about 20 s) and bench/fuzz.ts (as long as you
 * like). Every case is reproducible from (seed, iteration): the case's own
 * PRNG is seeded from both, so `--seed S --iteration I` replays exactly it.
 *
 * A case passes when the reader either accepts the mutant or refuses it with
 * an AirlockError of class signature, integrity, unsafeEntry or policy. Any
 * other error, a crash, an unhandled rejection or a hang is a failure.
 */
import type { KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import YAML from 'yaml';
import { buildBundle } from '../../src/bundle/builder.js';
import { canonicalJson } from '../../src/bundle/canonical-json.js';
import { readBundle, sha256Hex } from '../../src/bundle/reader.js';
import { AirlockError } from '../../src/errors/index.js';
import { loadPrivateKey } from '../../src/trust/keys.js';
import { TrustStore } from '../../src/trust/trust-store.js';
import { makeSigner } from './fixtures.js';
import { writeImageArchive, writeLayer } from './images.js';
import { BLOCK, Bundle, fixChecksum, layout, signatureFor, type EntrySpan, type EntryType, type RawEntry } from './tamper.js';

/* ---------------- PRNG ---------------- */

/** sfc32 seeded through splitmix32: fast, 32-bit, and the same on every platform. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const mix = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = mix();
    this.b = mix();
    this.c = mix();
    this.d = mix();
    for (let i = 0; i < 12; i++) this.next();
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.next();
      out[i] = v & 0xff;
      if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff;
      if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff;
      if (i + 3 < n) out[i + 3] = v >>> 24;
    }
    return out;
  }
}

/** The seed of one case: the run's seed and the iteration, mixed. */
export function caseSeed(seed: number, iteration: number): number {
  let h = (seed ^ Math.imul(iteration + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  h = Math.imul(h ^ (h >>> 12), 0x297a2d39) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

/* ---------------- the corpus: small signed bundles ---------------- */

export interface FuzzBase {
  label: string;
  bytes: Buffer;
  bundle: Bundle;
  spans: EntrySpan[];
  manifestDigest: string;
}

export interface FuzzCorpus {
  bases: FuzzBase[];
  trust: TrustStore;
  /** The trusted signing key, for mutants that re-sign their manifest. */
  key: KeyObject;
}

/**
 * Builds two small bundles through the real builder, one with identity
 * blobs and one with every blob gzip-encoded: a stack, an env file, extra
 * files and a two-layer image, a few tens of KiB in all.
 */
export async function makeCorpus(dir: string): Promise<FuzzCorpus> {
  const signer = await makeSigner(dir, 'fuzz');
  const p = join(dir, 'project');
  await mkdir(join(p, 'images'), { recursive: true });
  const base = join(p, 'images', 'base.tar');
  const baseId = await writeLayer(base, [
    { path: 'bin/tool', data: Buffer.from('#!/bin/sh\necho tool\n'.repeat(40)), mode: 0o755 },
    { path: 'bin/sh', link: 'tool' },
  ]);
  const app = join(p, 'images', 'app.tar');
  const appId = await writeLayer(app, [{ path: 'www/index.html', data: Buffer.from('<h1>hello</h1>\n') }]);
  await writeImageArchive(
    join(p, 'images', 'demo.tar'),
    [{ refs: ['fuzz/web:1.0'], layers: [{ path: base, diffId: baseId }, { path: app, diffId: appId }], cmd: ['httpd'] }],
    'oci',
  );
  await writeFile(join(p, 'docker-compose.yml'), YAML.stringify({ services: { web: { image: 'fuzz/web:1.0', env_file: ['web.env'] } } }));
  await writeFile(join(p, 'web.env'), 'GREETING=hello\n');
  await writeFile(join(p, 'app.conf'), 'listen=8080\n');
  await writeFile(join(p, 'table.csv'), Array.from({ length: 300 }, (_, i) => `${i},row ${i},${(i * 7919) % 1000}\n`).join(''));
  await writeFile(
    join(p, 'bundle.yaml'),
    YAML.stringify({
      name: 'fuzz',
      version: '1.0.0',
      description: 'fuzz corpus',
      expires: 'never',
      stacks: [{ name: 'web', compose: 'docker-compose.yml', env_files: ['web.env'] }],
      image_archives: ['images/demo.tar'],
      files: [
        { src: 'app.conf', dest: 'conf/app.conf', mode: 0o640 },
        { src: 'table.csv', dest: 'data/table.csv' },
      ],
    }),
  );
  const key = await loadPrivateKey(signer.keyPath);
  const created = new Date('2025-01-01T00:00:00Z');
  const bases: FuzzBase[] = [];
  for (const compression of ['none', 'gzip'] as const) {
    const r = await buildBundle({ definitionFile: join(p, 'bundle.yaml'), key, outDir: join(dir, `out-${compression}`), compression, created });
    const bytes = await readFile(r.path);
    const bundle = await Bundle.from(bytes);
    bases.push({ label: compression === 'none' ? 'identity' : 'gzip', bytes, bundle, spans: layout(bytes), manifestDigest: `sha256:${sha256Hex(bundle.manifestBytes)}` });
  }
  return { bases, trust: await TrustStore.load(signer.trustDir), key };
}

/* ---------------- mutations ---------------- */

export interface Mutant {
  bytes: Buffer;
  ops: string[];
  /** True when the manifest was re-signed with the trusted key. */
  resigned: boolean;
}

const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x20, 0x30, 0x37, 0x2f, 0x2e, 0x0a, 0x22, 0x5c];
const TYPEFLAGS = ['0', '1', '2', '3', '4', '5', '6', '7', 'x', 'g', 'L', 'K', 'A', 'V', '\0'];
const NAMES = ['../../etc/passwd', '/etc/passwd', 'blobs/sha256/../x', 'manifest.json', 'manifest.sig', 'blobs/', 'a//b', './x', 'x\\y', ''];
const SIZES = [0, 1, 511, 512, 513, 1023, 1024, 4096, 16 * 1024 * 1024 + 1, 2 ** 33, 2 ** 40];
const NUMBERS = [0, -1, 1, 255, 511, 512, 1024, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53 + 2, 1.5, 1e300, 64 * 1024 ** 3 + 1, 512 * 1024 ** 3 + 1];
const STRINGS = ['', '../..', '/etc/passwd', 'sha256:' + '0'.repeat(64), 'sha256:' + 'f'.repeat(64), '1.0.0', '0.0.1', '99.0.0', '2000-01-01T00:00:00Z', '2999-01-01T00:00:00Z', '2024-13-45T25:61:61Z', 'gzip', 'identity', 'layer', 'x'.repeat(5000), '\u0000', 'é'];

function octalField(value: number, width: number): Buffer {
  const b = Buffer.alloc(width);
  b.write(value.toString(8).padStart(width - 1, '0').slice(-(width - 1)), 0, 'latin1');
  return b;
}

/** `spans` are the entries of `buf` as it stands (it may differ from the base after earlier operators). */
type ByteOp = (rng: Prng, buf: Buffer, spans: EntrySpan[]) => Buffer;

/** Byte-level operators: they never re-sign, so only padding changes may pass. */
const BYTE_OPS: Record<string, ByteOp> = {
  flipBits(rng, buf) {
    const out = Buffer.from(buf);
    for (let n = rng.range(1, 8); n > 0; n--) out[rng.int(out.length)]! ^= 1 << rng.int(8);
    return out;
  },
  setInteresting(rng, buf) {
    const out = Buffer.from(buf);
    for (let n = rng.range(1, 4); n > 0; n--) out[rng.int(out.length)] = rng.pick(INTERESTING_BYTES);
    return out;
  },
  overwriteRange(rng, buf) {
    const out = Buffer.from(buf);
    const len = rng.chance(0.8) ? rng.range(1, 64) : rng.range(65, 2048);
    const at = rng.int(out.length);
    rng.bytes(len).copy(out, at);
    return out;
  },
  truncate(rng, buf, spans) {
    // Half the time cut at or near a structural offset, where parsers are weakest.
    if (rng.chance(0.5)) {
      const s = rng.pick(spans);
      const at = rng.pick([s.headerOffset, s.dataOffset, s.end, s.dataOffset + s.size, s.headerOffset + rng.int(BLOCK)]);
      return Buffer.from(buf.subarray(0, Math.min(at + rng.range(-2, 2), buf.length)));
    }
    return Buffer.from(buf.subarray(0, rng.int(buf.length)));
  },
  duplicateRange(rng, buf) {
    const a = rng.int(buf.length);
    const len = rng.range(1, Math.min(4096, buf.length - a));
    const at = rng.int(buf.length);
    return Buffer.concat([buf.subarray(0, at), buf.subarray(a, a + len), buf.subarray(at)]);
  },
  insertRandom(rng, buf) {
    const at = rng.chance(0.5) ? Math.floor(rng.int(buf.length) / BLOCK) * BLOCK : rng.int(buf.length);
    const len = rng.chance(0.5) ? BLOCK * rng.range(1, 3) : rng.range(1, 700);
    return Buffer.concat([buf.subarray(0, at), rng.chance(0.3) ? Buffer.alloc(len) : rng.bytes(len), buf.subarray(at)]);
  },
  deleteRange(rng, buf) {
    const at = rng.int(buf.length);
    const len = rng.chance(0.5) ? BLOCK * rng.range(1, 2) : rng.range(1, 700);
    return Buffer.concat([buf.subarray(0, at), buf.subarray(Math.min(buf.length, at + len))]);
  },
  appendBytes(rng, buf) {
    return Buffer.concat([buf, rng.chance(0.5) ? rng.bytes(rng.range(1, 2000)) : Buffer.alloc(rng.range(1, 4) * BLOCK)]);
  },
  /** Copies a whole header block over, or in front of, another block. */
  spliceHeader(rng, buf, spans) {
    const from = rng.pick(spans);
    const header = buf.subarray(from.headerOffset, from.headerOffset + BLOCK);
    const to = rng.pick(spans);
    const at = rng.pick([to.headerOffset, to.dataOffset, to.end]);
    if (rng.chance(0.5)) return Buffer.concat([buf.subarray(0, at), header, buf.subarray(at)]);
    const out = Buffer.from(buf);
    header.copy(out, at);
    return out;
  },
  /** Changes one header field to a telling value and, mostly, fixes the checksum so the header is read. */
  headerField(rng, buf, spans) {
    const out = Buffer.from(buf);
    const s = rng.pick(spans);
    const h = s.headerOffset;
    if (h + BLOCK > out.length) return out;
    switch (rng.int(6)) {
      case 0: // size, in octal
        octalField(rng.chance(0.5) ? rng.pick(SIZES) : Math.max(0, s.size + rng.range(-600, 600)), 12).copy(out, h + 124);
        break;
      case 1: // size, base-256 (or a negative one)
        out[h + 124] = rng.chance(0.8) ? 0x80 : 0xff;
        rng.bytes(11).copy(out, h + 125);
        break;
      case 2:
        out.write(rng.pick(TYPEFLAGS), h + 156, 'latin1');
        break;
      case 3: {
        out.fill(0, h, h + 100);
        out.write(rng.pick(NAMES).slice(0, 100), h, 'utf8');
        break;
      }
      case 4:
        out.fill(0, h + 157, h + 257);
        out.write(rng.pick(NAMES).slice(0, 100), h + 157, 'utf8');
        break;
      default:
        rng.bytes(6).copy(out, h + 257); // magic
    }
    if (rng.chance(0.9)) fixChecksum(out, h);
    return out;
  },
};

type EntryOp = (rng: Prng, b: Bundle, key: KeyObject) => { bundle: Bundle; resigned: boolean };

/** Entry-level operators: they re-pack the tar, and some re-sign the manifest so deeper checks run. */
const ENTRY_OPS: Record<string, EntryOp> = {
  dropEntry(rng, b) {
    return { bundle: b.remove(rng.pick(b.names)), resigned: false };
  },
  duplicateEntry(rng, b) {
    const e = rng.pick(b.entries);
    return { bundle: b.insert(rng.int(b.entries.length + 1), e), resigned: false };
  },
  swapEntries(rng, b) {
    return { bundle: b.swap(rng.pick(b.names), rng.pick(b.names)), resigned: false };
  },
  insertSpecial(rng, b) {
    const type = rng.pick<EntryType>(['symlink', 'link', 'character-device', 'block-device', 'fifo', 'directory', 'contiguous-file', 'file']);
    const e: RawEntry = { name: rng.pick([...NAMES, ...b.names]) || 'x', type, data: type === 'file' ? rng.bytes(rng.int(100)) : Buffer.alloc(0), linkname: rng.pick(NAMES) || 'y' };
    return { bundle: b.insert(rng.int(b.entries.length + 1), e), resigned: false };
  },
  paxOverride(rng, b) {
    const name = rng.pick(b.names);
    const pax: Record<string, string> = rng.chance(0.5) ? { path: rng.pick([...NAMES, ...b.names]) } : { size: String(rng.pick(SIZES)) };
    return { bundle: b.replace(name, (e) => ({ ...e, pax })), resigned: false };
  },
  lieAboutSize(rng, b) {
    const name = rng.pick(b.names);
    return { bundle: b.replace(name, (e) => ({ ...e, data: e.data.subarray(0, rng.int(e.data.length + 1)), size: rng.chance(0.5) ? e.data.length : undefined })), resigned: false };
  },
  replaceBlobData(rng, b) {
    const name = rng.pick(b.blobNames);
    return { bundle: b.replace(name, (e) => ({ ...e, data: rng.bytes(e.data.length) })), resigned: false };
  },
  /** Mutates the manifest's bytes (often no longer JSON), then signs them. */
  manifestBytesResigned(rng, b, key) {
    let bytes = b.manifestBytes;
    for (let n = rng.range(1, 3); n > 0; n--) bytes = rng.pick(Object.values(BYTE_OPS).slice(0, 3))(rng, bytes, []);
    return { bundle: b.resign(bytes, key), resigned: true };
  },
  /** Sets one value somewhere in the manifest to a telling one, then signs it: reaches schema, reference, limit and policy checks. */
  manifestValueResigned(rng, b, key) {
    const m = b.manifest as unknown as Record<string, unknown>;
    for (let n = rng.range(1, 2); n > 0; n--) mutateJson(rng, m);
    let bytes: Buffer;
    try {
      bytes = Buffer.from(canonicalJson(m), 'utf8');
    } catch {
      bytes = Buffer.from(JSON.stringify(m), 'utf8'); // not a safe integer: written anyway
    }
    return { bundle: b.resign(bytes, key), resigned: true };
  },
  /** Re-signs a manifest whose blob list no longer matches the entries. */
  blobListResigned(rng, b, key) {
    const m = b.manifest;
    const i = rng.int(m.blobs.length);
    switch (rng.int(3)) {
      case 0:
        m.blobs.splice(i, 1);
        break;
      case 1:
        m.blobs.splice(i, 0, { ...m.blobs[i]! });
        break;
      default: {
        const j = rng.int(m.blobs.length);
        [m.blobs[i], m.blobs[j]] = [m.blobs[j]!, m.blobs[i]!];
      }
    }
    return { bundle: b.resign(m, key), resigned: true };
  },
  signatureField(rng, b, key) {
    const override: Record<string, unknown> = {};
    const field = rng.pick(['algorithm', 'keyId', 'signature', 'extra']);
    override[field] = rng.pick<unknown>([...STRINGS, 0, null, [], {}, '0123456789abcdef', 'A'.repeat(86) + '==']);
    return { bundle: b.withSignatureBytes(signatureFor(b.manifestBytes, key, override)), resigned: false };
  },
};

function mutateJson(rng: Prng, root: Record<string, unknown>): void {
  // Walk down a random path to a container, then change, add or delete one member.
  let node: unknown = root;
  for (let depth = 0; depth < 5; depth++) {
    const keys = containerKeys(node);
    if (keys.length === 0) break;
    const k = rng.pick(keys);
    const child = (node as Record<string | number, unknown>)[k];
    if (child === null || typeof child !== 'object' || rng.chance(0.3)) break;
    node = child;
  }
  const keys = containerKeys(node);
  if (keys.length === 0) return;
  const target = node as Record<string | number, unknown>;
  const k = rng.pick(keys);
  const value = (): unknown => rng.pick<() => unknown>([() => rng.pick(NUMBERS), () => rng.pick(STRINGS), () => null, () => true, () => [], () => ({}), () => structuredClone(target[k])])();
  switch (rng.int(4)) {
    case 0:
      if (Array.isArray(target)) target.splice(Number(k), 1);
      else delete target[k];
      break;
    case 1:
      if (Array.isArray(target)) target.push(structuredClone(target[Number(k)]));
      else target[rng.pick(['extra', 'size', 'stored', 'encoding', 'mode', 'path'])] = value();
      break;
    default:
      target[k] = value();
  }
}

const containerKeys = (node: unknown): (string | number)[] =>
  Array.isArray(node) ? node.map((_, i) => i) : node !== null && typeof node === 'object' ? Object.keys(node) : [];

/** Makes the mutant of one case. Deterministic in `rng`. */
export function mutate(rng: Prng, base: FuzzBase, key: KeyObject): Mutant {
  const ops: string[] = [];
  let resigned = false;
  let bytes: Buffer;
  if (rng.chance(0.4)) {
    const [name, op] = rng.pick(Object.entries(ENTRY_OPS));
    const r = op(rng, base.bundle, key);
    ops.push(name);
    resigned = r.resigned;
    bytes = r.bundle.pack({ trailer: rng.chance(0.95) });
  } else {
    bytes = base.bytes;
  }
  const byteOps = ops.length === 0 ? rng.range(1, 3) : rng.chance(0.3) ? 1 : 0;
  for (let n = 0; n < byteOps && bytes.length > 0; n++) {
    const [name, op] = rng.pick(Object.entries(BYTE_OPS));
    ops.push(name);
    const spans = layout(bytes).filter((x) => x.end <= bytes.length);
    bytes = op(rng, bytes, spans.length > 0 ? spans : [{ name: '', typeflag: '0', headerOffset: 0, dataOffset: 0, size: 0, end: 0 }]);
  }
  return { bytes, ops, resigned };
}

/* ---------------- running cases ---------------- */

const REFUSAL_KINDS = new Set(['signature', 'integrity', 'unsafeEntry', 'policy']);

export interface CaseResult {
  iteration: number;
  seed: number;
  base: string;
  ops: string[];
  bytes: number;
  /** `ok`, or `<class>/<reason>` of the refusal. */
  outcome: string;
  failure?: string;
}

/** Feeds bytes in chunks of a size the case chooses, to move chunk boundaries around. */
function chunked(rng: Prng, bytes: Buffer): Readable {
  const mode = rng.int(4);
  const size = mode === 0 ? bytes.length || 1 : mode === 1 ? BLOCK : mode === 2 ? rng.range(1, 2048) : rng.range(2048, 65536);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return Readable.from(chunks, { objectMode: false });
}

/** A sink that accepts and discards verified blob content (sometimes: null, the store has it). */
function sinkFor(rng: Prng) {
  const nullSink = rng.chance(0.3);
  return {
    open: async () =>
      nullSink
        ? null
        : new Writable({
            write(_chunk, _enc, cb) {
              cb();
            },
          }),
  };
}

const NOW = new Date('2025-06-01T00:00:00Z');

/** Runs one case: (seed, iteration) → mutant → readBundle, with a hang guard. `keep` receives the mutant's bytes. */
export async function runCase(corpus: FuzzCorpus, seed: number, iteration: number, timeoutMs: number, keep?: (bytes: Buffer) => void): Promise<CaseResult> {
  const cs = caseSeed(seed, iteration);
  const rng = new Prng(cs);
  const base = rng.pick(corpus.bases);
  const mutant = mutate(rng, base, corpus.key);
  keep?.(mutant.bytes);
  const input = chunked(rng, mutant.bytes);
  const result: CaseResult = { iteration, seed, base: base.label, ops: mutant.ops, bytes: mutant.bytes.length, outcome: '?' };
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<'hang'>((res) => {
    timer = setTimeout(() => res('hang'), timeoutMs);
  });
  try {
    const r = await Promise.race([readBundle(input, { trust: corpus.trust, now: NOW, sink: sinkFor(rng) }), hang]);
    if (r === 'hang') {
      result.outcome = 'hang';
      result.failure = `no outcome after ${timeoutMs} ms`;
      input.destroy();
    } else {
      result.outcome = mutant.resigned ? 'ok (re-signed)' : 'ok';
      // Unless it was re-signed, an accepted mutant must carry the very manifest that was signed.
      if (!mutant.resigned && r.manifestDigest !== base.manifestDigest) {
        result.failure = `accepted a byte-level mutant with manifest ${r.manifestDigest}, expected ${base.manifestDigest}`;
      }
    }
  } catch (e) {
    if (e instanceof AirlockError && REFUSAL_KINDS.has(e.kind)) {
      result.outcome = `${e.kind}/${e.reason}`;
    } else {
      result.outcome = e instanceof AirlockError ? `${e.kind}/${e.reason}` : `crash:${(e as Error)?.name ?? typeof e}`;
      result.failure = e instanceof Error ? (e.stack ?? e.message) : String(e);
    }
  } finally {
    clearTimeout(timer);
  }
  return result;
}

export interface FuzzOptions {
  seed: number;
  seconds: number;
  /** A case that takes longer than this is a hang. */
  caseTimeoutMs?: number;
  /** Stop after this many failures (default 5). */
  maxFailures?: number;
  /** Stop after this many cases, whatever the time. */
  maxCases?: number;
  onProgress?: (done: number, elapsedMs: number) => void;
}

export interface FuzzReport {
  seed: number;
  cases: number;
  elapsedMs: number;
  casesPerSecond: number;
  /** Count per outcome (`ok`, `ok (re-signed)`, `<class>/<reason>`). */
  outcomes: Record<string, number>;
  /** Count per first mutation operator. */
  ops: Record<string, number>;
  failures: CaseResult[];
}

/** The fuzz loop: runs cases until time or the failure budget runs out. */
export async function fuzz(corpus: FuzzCorpus, opts: FuzzOptions): Promise<FuzzReport> {
  const timeoutMs = opts.caseTimeoutMs ?? 10_000;
  const maxFailures = opts.maxFailures ?? 5;
  const outcomes: Record<string, number> = {};
  const ops: Record<string, number> = {};
  const failures: CaseResult[] = [];
  let current = -1;
  // Anything thrown outside the reader's promise chain is a failure of the case that runs now.
  const stray = (e: unknown) => {
    failures.push({ iteration: current, seed: opts.seed, base: '?', ops: [], bytes: 0, outcome: 'unhandled', failure: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  };
  process.on('unhandledRejection', stray);
  process.on('uncaughtException', stray);
  const start = performance.now();
  const deadline = start + opts.seconds * 1000;
  let cases = 0;
  try {
    for (let i = 0; performance.now() < deadline && failures.length < maxFailures && (opts.maxCases === undefined || i < opts.maxCases); i++) {
      current = i;
      const r = await runCase(corpus, opts.seed, i, timeoutMs);
      cases += 1;
      outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
      const op = r.ops[0] ?? 'none';
      ops[op] = (ops[op] ?? 0) + 1;
      if (r.failure) failures.push(r);
      if (opts.onProgress && i % 500 === 499) opts.onProgress(i + 1, performance.now() - start);
    }
    // Let stray rejections of the last case surface before judging.
    await new Promise((res) => setImmediate(res));
  } finally {
    process.off('unhandledRejection', stray);
    process.off('uncaughtException', stray);
  }
  const elapsedMs = performance.now() - start;
  return { seed: opts.seed, cases, elapsedMs, casesPerSecond: cases / (elapsedMs / 1000), outcomes, ops, failures };
}

export function formatReport(r: FuzzReport): string {
  const lines = [`seed ${r.seed}: ${r.cases} cases in ${(r.elapsedMs / 1000).toFixed(1)} s (${r.casesPerSecond.toFixed(0)} cases/s), ${r.failures.length} failures`];
  const rows = Object.entries(r.outcomes).sort((a, b) => b[1] - a[1]);
  for (const [k, n] of rows) lines.push(`  ${String(n).padStart(8)}  ${k}`);
  lines.push('  by first operator:');
  for (const [k, n] of Object.entries(r.ops).sort((a, b) => b[1] - a[1])) lines.push(`  ${String(n).padStart(8)}  ${k}`);
  for (const f of r.failures) {
    lines.push(`FAILURE seed=${f.seed} iteration=${f.iteration} base=${f.base} ops=${f.ops.join('+')} outcome=${f.outcome}`, `  ${f.failure?.split('\n').join('\n  ')}`);
  }
  return lines.join('\n');
}

