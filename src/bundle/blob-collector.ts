import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { deflateRawSync } from 'node:zlib';
import { createEncoder, type Codec } from './encodings.js';
import type { BlobKind, BlobRecord, CarriedBlob } from './manifest.js';

/**
 * `auto` compresses what shrinks by 10% or more, with zstd; `gzip` and `zstd`
 * encode every carried blob (`gzip` makes a v1 bundle that every airlock
 * release reads). docs/bundle-format.md section 5 says why.
 */
export type Compression = 'auto' | 'gzip' | 'zstd' | 'none';
export const COMPRESSIONS: readonly Compression[] = ['auto', 'gzip', 'zstd', 'none'];

const SAMPLE_BYTES = 1024 * 1024;
/** Enough leading bytes to recognise a format by its magic number. */
const HEAD_BYTES = 16;
/** An encoding must save at least this share of the bytes to be worth decoding on every host. */
const WORTHWHILE = 0.9;
const MIN_COMPRESSIBLE = 64 * 1024;

/**
 * The builder's scratch store: blobs gathered from compose files, image
 * archives and extra files, deduplicated by content digest, then encoded.
 */
export class BlobCollector {
  private readonly blobs = new Map<string, BlobRecord>();
  /** Sealed blobs, kept in memory only: nothing sealed is written anywhere but the bundle. */
  private readonly inMemory = new Map<string, Buffer>();
  private seq = 0;

  constructor(readonly dir: string) {}

  static async create(dir: string): Promise<BlobCollector> {
    await mkdir(dir, { recursive: true });
    return new BlobCollector(dir);
  }

  private contentPath = (digest: string) => join(this.dir, digest.slice(7));
  private storedPath = (b: BlobRecord) => (b.encoding === 'identity' ? this.contentPath(b.digest) : `${this.contentPath(b.digest)}.${b.encoding}`);

  /** Adds a blob from a stream; returns its digest, size and first bytes. */
  async add(kind: BlobKind, source: Readable | Buffer): Promise<{ digest: string; size: number; head: Buffer }> {
    const tmp = join(this.dir, `incoming-${this.seq++}`);
    const hash = createHash('sha256');
    let size = 0;
    const headChunks: Buffer[] = [];
    let headBytes = 0;
    await pipeline(
      Buffer.isBuffer(source) ? Readable.from([source]) : source,
      async function* (src: AsyncIterable<Buffer>) {
        for await (const chunk of src) {
          hash.update(chunk);
          size += chunk.length;
          if (headBytes < HEAD_BYTES) {
            headChunks.push(chunk.subarray(0, HEAD_BYTES - headBytes));
            headBytes += Math.min(chunk.length, HEAD_BYTES - headBytes);
          }
          yield chunk;
        }
      },
      createWriteStream(tmp),
    );
    const digest = `sha256:${hash.digest('hex')}`;
    if (this.blobs.has(digest)) {
      await rm(tmp);
    } else {
      await rename(tmp, this.contentPath(digest));
      this.blobs.set(digest, { digest, size, kind, encoding: 'identity' });
    }
    return { digest, size, head: Buffer.concat(headChunks) };
  }

  /**
   * Adds a sealed blob, held in memory and never encoded: ciphertext does
   * not compress, and a scratch copy would be one more place it rests.
   */
  addInMemory(kind: BlobKind, bytes: Uint8Array): { digest: string; size: number } {
    const data = Buffer.from(bytes);
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    if (!this.blobs.has(digest)) {
      this.inMemory.set(digest, data);
      this.blobs.set(digest, { digest, size: data.length, kind, encoding: 'identity' });
    }
    return { digest, size: data.length };
  }

  /**
   * Marks the blobs a delta's base already holds: they stay in the record
   * list (the manifest names them) but get no encoding and no tar entry.
   * Returns the records left out.
   */
  leaveOut(digests: ReadonlySet<string>): BlobRecord[] {
    const left: BlobRecord[] = [];
    for (const [digest, b] of this.blobs) {
      if (!digests.has(digest)) continue;
      const record: BlobRecord = { digest, size: b.size, kind: b.kind, carried: false };
      this.blobs.set(digest, record);
      left.push(record);
    }
    return left;
  }

  /** Chooses each carried blob's encoding; with `auto`, incompressible blobs stay as they are. */
  async encodeAll(compression: Compression): Promise<void> {
    if (compression === 'none') return;
    // Node's gzip makes bundles ~3% larger than `docker save | gzip` on binaries; zstd -9 ~20% smaller.
    const codec: Codec = compression === 'gzip' ? 'gzip' : 'zstd';
    for (const blob of this.blobs.values()) {
      if (blob.carried === false || this.inMemory.has(blob.digest)) continue;
      if (compression === 'auto' && !(await this.looksCompressible(blob))) continue;
      const out = `${this.contentPath(blob.digest)}.${codec}`;
      const hash = createHash('sha256');
      let size = 0;
      await pipeline(
        createReadStream(this.contentPath(blob.digest), { highWaterMark: 1024 * 1024 }),
        createEncoder(codec),
        async function* (src: AsyncIterable<Buffer>) {
          for await (const chunk of src) {
            hash.update(chunk);
            size += chunk.length;
            yield chunk;
          }
        },
        createWriteStream(out),
      );
      if (compression === 'auto' && size > blob.size * WORTHWHILE) {
        await rm(out);
        continue;
      }
      blob.encoding = codec;
      blob.stored = { digest: `sha256:${hash.digest('hex')}`, size };
    }
  }

  /** True when some carried blob is zstd-encoded: the manifest must then require zstd. */
  usesZstd(): boolean {
    return [...this.blobs.values()].some((b) => b.encoding === 'zstd');
  }

  /** Deflates a sample at the fastest level: cheap, and a fair predictor of gzip -6 (zstd -9 does better still). */
  private async looksCompressible(blob: BlobRecord): Promise<boolean> {
    if (blob.size < MIN_COMPRESSIBLE || !(blob.kind === 'layer' || blob.kind === 'file' || blob.kind === 'engine-file')) return false;
    const fd = await open(this.contentPath(blob.digest), 'r');
    try {
      const sample = Buffer.alloc(Math.min(SAMPLE_BYTES, blob.size));
      await fd.read(sample, 0, sample.length, 0);
      return deflateRawSync(sample, { level: 1 }).length <= sample.length * WORTHWHILE;
    } finally {
      await fd.close();
    }
  }

  /** Blob records in bundle order: ascending content digest. */
  records(): BlobRecord[] {
    return [...this.blobs.values()].sort((a, b) => (a.digest < b.digest ? -1 : 1));
  }

  openStored(blob: CarriedBlob): Readable {
    const held = this.inMemory.get(blob.digest);
    if (held) return Readable.from([held]);
    return createReadStream(this.storedPath(blob), { highWaterMark: 1024 * 1024 });
  }

  async storedSize(blob: CarriedBlob): Promise<number> {
    const held = this.inMemory.get(blob.digest);
    if (held) return held.length;
    return (await stat(this.storedPath(blob))).size;
  }

  async dispose(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
