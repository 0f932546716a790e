/**
 * A yardstick, not a reader: the least a Node program does to walk a
 * bundle's tar entries and hash each one (`verify`), or also write each to
 * its own file and make it durable (`import`). Entries that start with the
 * gzip magic are also inflated, the decoded bytes hashed and (import)
 * written instead, as airlock does with gzip blobs. No signature, manifest
 * or safety checks, only enough tar (ustar headers, regular files) for
 * bundles the builder writes. Run as a child process, it shows what
 * airlock's verify and import could reach on this machine with the same
 * runtime.
 *
 *   node dist/bench/lib/tar-floor.js verify FILE
 *   node dist/bench/lib/tar-floor.js import FILE OUTDIR
 *
 * How: a ring of reused 1 MiB buffers (two for verify, three for import:
 * what measured fastest here), reads running ahead of the hashing; writes
 * from the same buffers, awaited only before a buffer is read into again;
 * gzip through zlib with 1 MiB output chunks; each finished file fsynced in
 * the background, one at a time, while the next streams; the folder fsynced
 * at the end.
 */
import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { createGunzip, type Gunzip } from 'node:zlib';

const CHUNK = 1 << 20;
const BLOCK = 512;

interface Slot {
  buf: Buffer;
  /** Writes that still read from `buf`. */
  busy: Promise<unknown>;
}

async function writeAll(fh: FileHandle, data: Buffer, at: number): Promise<void> {
  let done = 0;
  while (done < data.length) done += (await fh.write(data, done, data.length - done, at + done)).bytesWritten;
}

function octal(h: Buffer, start: number, len: number): number {
  const s = h.toString('latin1', start, start + len).replace(/\0.*$/s, '').trim();
  const n = parseInt(s, 8);
  if (!Number.isFinite(n)) throw new Error(`bad tar number "${s}"`);
  return n;
}

async function walk(file: string, outDir: string | undefined): Promise<number> {
  if (outDir) await mkdir(outDir, { recursive: true });
  const input = await open(file, 'r');
  const RING = Number(process.env.TAR_FLOOR_RING ?? (outDir ? 3 : 2));
  const ring: Slot[] = Array.from({ length: RING }, () => ({ buf: Buffer.allocUnsafe(CHUNK), busy: Promise.resolve() }));
  let readPos = 0;
  let issued = 0;
  const reads: Promise<{ slot: Slot; chunk: Buffer }>[] = [];
  const issue = () => {
    const slot = ring[issued++ % RING]!;
    const at = readPos;
    readPos += CHUNK;
    reads.push(slot.busy.then(() => input.read(slot.buf, 0, CHUNK, at)).then((r) => ({ slot, chunk: slot.buf.subarray(0, r.bytesRead) })));
  };
  for (let i = 0; i < RING - 1; i++) issue();

  const header = Buffer.alloc(BLOCK);
  let headerFill = 0;
  let left = 0;
  let pad = 0;
  let zeroBlocks = 0;
  let entries = 0;
  let hash: Hash | undefined;
  let out: FileHandle | undefined;
  let outPos = 0;
  let lastWrite: Promise<unknown> = Promise.resolve();
  let syncs: Promise<unknown> = Promise.resolve();
  /** The current entry's inflater and decoded-content hash, when it is gzip. */
  let gz: { stream: Gunzip; hash: Hash; ended: Promise<unknown> } | undefined;
  let first = false;
  const startGunzip = () => {
    const stream = createGunzip({ chunkSize: CHUNK });
    const contentHash = createHash('sha256');
    const fh = out;
    stream.on('data', (d: Buffer) => {
      contentHash.update(d);
      if (fh) {
        const at = outPos;
        outPos += d.length;
        lastWrite = lastWrite.then(() => writeAll(fh, d, at));
      }
    });
    const ended = new Promise((res, rej) => {
      stream.once('end', res);
      stream.once('error', rej);
    });
    gz = { stream, hash: contentHash, ended };
  };
  const finish = async () => {
    hash!.digest('hex');
    if (gz) {
      gz.stream.end();
      await gz.ended;
      gz.hash.digest('hex');
      gz = undefined;
    }
    entries++;
    if (out) {
      const fh = out;
      const written = lastWrite;
      syncs = syncs.then(() => written).then(() => fh.sync()).then(() => fh.close());
      out = undefined;
    }
  };
  let ended = false;
  try {
    while (!ended) {
      issue();
      const { slot, chunk } = await reads.shift()!;
      if (chunk.length === 0) throw new Error('file ends before the end-of-archive blocks');
      const writes: Promise<unknown>[] = [];
      let off = 0;
      while (off < chunk.length && !ended) {
        if (left > 0) {
          const n = Math.min(left, chunk.length - off);
          const part = chunk.subarray(off, off + n);
          hash!.update(part);
          if (first) {
            first = false;
            if (part.length >= 2 && part[0] === 0x1f && part[1] === 0x8b) startGunzip();
          }
          if (gz) {
            const stream = gz.stream;
            writes.push(new Promise<void>((res, rej) => stream.write(part, (e) => (e ? rej(e) : res()))));
          } else {
            if (out) {
              lastWrite = writeAll(out, part, outPos);
              writes.push(lastWrite);
            }
            outPos += n;
          }
          off += n;
          left -= n;
          if (left === 0) await finish();
        } else if (pad > 0) {
          const n = Math.min(pad, chunk.length - off);
          off += n;
          pad -= n;
        } else {
          const n = Math.min(BLOCK - headerFill, chunk.length - off);
          chunk.copy(header, headerFill, off, off + n);
          headerFill += n;
          off += n;
          if (headerFill < BLOCK) continue;
          headerFill = 0;
          if (header.every((b) => b === 0)) {
            ended = ++zeroBlocks === 2;
            continue;
          }
          const type = String.fromCharCode(header[156]!);
          if (type !== '0' && type !== '\0') throw new Error(`entry type "${type}" is not a regular file`);
          const size = octal(header, 124, 12);
          hash = createHash('sha256');
          left = size;
          pad = (BLOCK - (size % BLOCK)) % BLOCK;
          outPos = 0;
          first = true;
          lastWrite = Promise.resolve();
          if (outDir) out = await open(join(outDir, `entry-${entries}`), 'wx');
          if (size === 0) await finish();
        }
      }
      slot.busy = Promise.all(writes);
    }
  } finally {
    await Promise.allSettled(reads);
    await input.close();
  }
  await syncs;
  if (outDir) {
    const dir = await open(outDir, 'r');
    await dir.sync();
    await dir.close();
  }
  return entries;
}

const [mode, file, outDir] = process.argv.slice(2);
if (!file || (mode !== 'verify' && mode !== 'import') || (mode === 'import' && !outDir)) {
  process.stderr.write('usage: tar-floor verify FILE | tar-floor import FILE OUTDIR\n');
  process.exit(2);
}
walk(file, mode === 'import' ? outDir : undefined).then(
  (n) => process.stdout.write(`${n} entries\n`),
  (e: unknown) => {
    process.stderr.write(`tar-floor: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
