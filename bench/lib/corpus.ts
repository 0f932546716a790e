/**
 * Bundle projects for benchmarks: layer tars, a docker-save archive and a
 * bundle.yaml, written with the same helpers the tests use. Two kinds of
 * content: random bytes (incompressible, so `--compress auto` keeps them as
 * they are) and text plus busybox-like binaries (gzip shrinks them ~3×).
 */
import { createReadStream, createWriteStream, readdirSync, readFileSync, type Dirent } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import YAML from 'yaml';
import { BUSYBOX, sha256File, writeImageArchive, writeRandomLayer, type ImageSpec } from '../../test/helpers/images.js';

export type ContentKind = 'random' | 'text';

export interface Project {
  definition: string;
  /** Sum of the distinct layer tars' sizes: what the images weigh. */
  layerBytes: number;
  layers: number;
  images: number;
}

const MTIME = new Date('2024-01-01T00:00:00Z');

/**
 * Layer sizes for a bundle of about `total` bytes: eight images share one
 * base layer (1/8 of the total); each has its own app layer, of unequal
 * sizes (1/32 to 7/32 of the total), and a 256 KiB config layer. So the
 * bundle holds a mix of large, middling and small blobs, like a real release.
 */
export function layerPlan(total: number): { base: number; apps: number[]; small: number } {
  const small = 256 * 1024;
  const base = Math.round(total / 8);
  const rest = total - base - 8 * small;
  const weights = [1.75, 1.5, 1.25, 1, 1, 0.75, 0.5, 0.25];
  return { base, apps: weights.map((w) => Math.round((rest * w) / 8)), small };
}

/** xorshift32: fast, seedable, good enough to make text that is not repetitive. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** A pool of log-like lines: long enough (~700 KiB) that gzip's 32 KiB window rarely sees a line twice. */
function linePool(rand: () => number): Buffer[] {
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  const words: string[] = [];
  for (let i = 0; i < 3000; i++) {
    let w = '';
    const n = 2 + (rand() % 9);
    for (let j = 0; j < n; j++) w += letters[Math.min(rand() % 26, rand() % 26)];
    words.push(w);
  }
  const lines: Buffer[] = [];
  for (let i = 0; i < 8192; i++) {
    const n = 4 + (rand() % 14);
    const parts = [`2024-01-${String(1 + (rand() % 28)).padStart(2, '0')}T${String(rand() % 24).padStart(2, '0')}:${String(rand() % 60).padStart(2, '0')}:${String(rand() % 60).padStart(2, '0')}Z`];
    for (let j = 0; j < n; j++) parts.push(words[rand() % words.length]!);
    parts.push(`id=${(rand() % 100000).toString(16)}`);
    lines.push(Buffer.from(`${parts.join(' ')}\n`));
  }
  return lines;
}

let busybox: Buffer | undefined;

/** `size` bytes of file content: text lines, or (`binary`) slices of /bin/busybox from a random offset. */
function contentStream(size: number, rand: () => number, pool: Buffer[], binary: boolean): Readable {
  let left = size;
  const CHUNK = 1 << 20;
  return new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const n = Math.min(left, CHUNK);
      const buf = Buffer.allocUnsafe(n);
      let at = 0;
      if (binary) {
        busybox ??= readFileSync(BUSYBOX);
        let off = rand() % busybox.length;
        while (at < n) {
          at += busybox.copy(buf, at, off, Math.min(busybox.length, off + (n - at)));
          off = 0;
        }
      } else {
        while (at < n) at += pool[rand() & 8191]!.copy(buf, at);
      }
      left -= n;
      this.push(buf);
    },
  });
}

/** A layer tar of about `size` bytes of compressible files (3 text : 1 binary), streamed to disk. Returns its diff id. */
export async function writeTextLayer(out: string, size: number, seed: number): Promise<string> {
  const rand = prng(seed);
  const pool = linePool(rand);
  const pack = tar.pack();
  const done = pipeline(pack as unknown as Readable, createWriteStream(out, { highWaterMark: 1 << 20 }));
  const FILE = 8 * 1024 * 1024;
  let left = size;
  for (let i = 0; left > 0; i++) {
    const n = Math.min(left, FILE);
    const binary = i % 4 === 3;
    const entry = pack.entry({ name: binary ? `usr/lib/app/lib${i}.so` : `var/log/app/part-${i}.log`, size: n, mtime: MTIME, mode: 0o644 });
    await pipeline(contentStream(n, rand, pool, binary), entry as unknown as NodeJS.WritableStream);
    left -= n;
  }
  pack.finalize();
  await done;
  return sha256File(out);
}

async function writeLayerOf(kind: ContentKind, out: string, size: number, seed: number): Promise<string> {
  return kind === 'random' ? writeRandomLayer(out, size, `blob-${seed}.bin`) : writeTextLayer(out, size, seed);
}

/**
 * Writes a bundle project of about `totalBytes` of layers into `dir`:
 * layer tars, an OCI-layout docker-save archive of eight images, and
 * bundle.yaml. The layer tars are deleted once the archive holds them.
 */
export async function makeBenchProject(dir: string, opts: { name: string; totalBytes: number; kind: ContentKind }): Promise<Project> {
  await mkdir(join(dir, 'layers'), { recursive: true });
  const plan = layerPlan(opts.totalBytes);
  const layer = async (file: string, size: number, seed: number) => {
    const path = join(dir, 'layers', file);
    const diffId = await writeLayerOf(opts.kind, path, size, seed);
    return { path, diffId };
  };
  const base = await layer('base.tar', plan.base, 1);
  const specs: ImageSpec[] = [];
  const refs: string[] = [];
  for (const [i, appSize] of plan.apps.entries()) {
    const app = await layer(`app-${i}.tar`, appSize, 100 + i);
    const conf = await layer(`conf-${i}.tar`, plan.small, 200 + i);
    const ref = `bench/${opts.name}-${i}:1.0.0`;
    refs.push(ref);
    specs.push({ refs: [ref], layers: [base, app, conf], cmd: ['sh'] });
  }
  const distinct = new Map(specs.flatMap((s) => s.layers).map((l) => [l.diffId, l.path]));
  let layerBytes = 0;
  for (const path of distinct.values()) layerBytes += (await stat(path)).size;
  await writeImageArchive(join(dir, 'images.tar'), specs, 'oci');
  await rm(join(dir, 'layers'), { recursive: true, force: true });
  const definition = join(dir, 'bundle.yaml');
  await writeFile(
    definition,
    YAML.stringify({
      name: opts.name,
      version: '1.0.0',
      description: `benchmark bundle: ${opts.kind} layers`,
      expires: 'never',
      images: refs,
      image_archives: ['images.tar'],
    }),
  );
  return { definition, layerBytes, layers: distinct.size, images: specs.length };
}

/**
 * A layer tar of about `size` bytes of this machine's own files, as a Debian
 * image holds them: executables, shared libraries and /usr/share (docs,
 * locales, data), in equal parts, each walked in name order. Real content
 * for compression figures, where generated content could flatter one codec.
 * Returns its diff id.
 */
export async function writeSystemLayer(out: string, size: number, roots = ['/usr/bin', '/usr/lib/x86_64-linux-gnu', '/usr/share']): Promise<string> {
  const pack = tar.pack();
  const done = pipeline(pack as unknown as Readable, createWriteStream(out, { highWaterMark: 1 << 20 }));
  for (const root of roots) {
    let left = Math.floor(size / roots.length);
    for (const path of walkFiles(root)) {
      const st = await stat(path).catch(() => null);
      if (!st || !st.isFile() || st.size > left) continue;
      const entry = pack.entry({ name: path.slice(1), size: st.size, mtime: MTIME, mode: st.mode & 0o777 });
      await pipeline(createReadStream(path), entry as unknown as NodeJS.WritableStream);
      left -= st.size;
      if (left < 4096) break;
    }
  }
  pack.finalize();
  await done;
  return sha256File(out);
}

/** Regular files and links under `dir`, depth first, in name order; unreadable folders are skipped. */
function* walkFiles(dir: string): Generator<string> {
  let names: Dirent[];
  try {
    names = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch {
    return;
  }
  for (const d of names) {
    const path = join(dir, d.name);
    if (d.isDirectory()) yield* walkFiles(path);
    else if (d.isFile()) yield path;
  }
}
