/**
 * Delta bundle size and import time (issue 9).
 *
 *   npm run build && .runtime/node dist/bench/delta.js [--base-mib 256] [--app-mib 1,32] [--kind random,text]
 *       [--runs 3] [--zstd] [--out docs/benchmarks.md] [--work DIR] [--keep]
 *
 * For each app-layer size and content kind: writes release 1.0.0 of an app
 * (a shared base layer of --base-mib plus an app layer) and release 1.1.0,
 * in which only the app layer changed; builds both as full bundles and
 * 1.1.0 as a delta (`--since` the 1.0.0 bundle) through the real CLI, and
 * compares the delta's size with what it must carry at the least:
 *
 *   target: delta bytes <= 1.02 × (bytes of the changed layers + manifest.json)
 *
 * "Changed layers" counts the layer blobs the delta carries, as stored in it
 * (gzipped when --compress auto gzipped them), so compressible content is
 * not credited to the delta format. It then times `bundle import --no-load`
 * of the full 1.1.0 bundle into an empty store against the delta into a
 * store that holds 1.0.0 (median of --runs).
 *
 * --zstd also builds the 1.1.0 delta with `--compress zstd` on the packaged
 * runtime (scripts/fetch-node) and reports its size against the same target;
 * not its import time, since this runtime cannot read it.
 */
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import tar from 'tar-stream';
import YAML from 'yaml';
import { makeSigner, type Signer } from '../test/helpers/fixtures.js';
import { writeImageArchive, writeRandomLayer } from '../test/helpers/images.js';
import { writeTextLayer, type ContentKind } from './lib/corpus.js';
import { writeGeneratedBlock } from './lib/doc.js';
import { capture, syncAll, timed } from './lib/proc.js';
import { fmtBytes, fmtSec, mdTable, median, MiB } from './lib/stats.js';
import type { Manifest } from '../src/bundle/manifest.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(REPO, 'bin/airlock');
const TARGET = 1.02;

const { values } = parseArgs({
  options: {
    'base-mib': { type: 'string', default: '256' },
    'app-mib': { type: 'string', default: '1,32' },
    kind: { type: 'string', default: 'random,text' },
    runs: { type: 'string', default: '3' },
    out: { type: 'string' },
    work: { type: 'string' },
    keep: { type: 'boolean', default: false },
    zstd: { type: 'boolean', default: false },
  },
});
/** The packaged runtime, for --zstd. */
const node24 = values.zstd ? capture(join(REPO, 'scripts/fetch-node'), []) : undefined;
const baseBytes = Number(values['base-mib']) * MiB;
const appSizes = values['app-mib']!.split(',').map((s) => Number(s) * MiB);
const kinds = values.kind!.split(',') as ContentKind[];
const runs = Number(values.runs);

const layerOf = (kind: ContentKind, out: string, size: number, seed: number) =>
  kind === 'random' ? writeRandomLayer(out, size, `app-${seed}.bin`) : writeTextLayer(out, size, seed);

async function release(dir: string, version: string, base: { path: string; diffId: string }, kind: ContentKind, appSize: number, seed: number): Promise<string> {
  await mkdir(join(dir, 'images'), { recursive: true });
  const app = join(dir, 'images', 'app.tar');
  const appId = await layerOf(kind, app, appSize, seed);
  await writeImageArchive(join(dir, 'images', 'app.tar.docker'), [{ refs: [`bench/app:${version}`], layers: [base, { path: app, diffId: appId }] }], 'oci');
  await rm(app);
  await writeFile(join(dir, 'compose.yml'), YAML.stringify({ services: { app: { image: `bench/app:${version}` } } }));
  const def = join(dir, 'bundle.yaml');
  await writeFile(def, YAML.stringify({ name: 'bench', version, expires: null, stacks: [{ name: 'app', compose: 'compose.yml' }], image_archives: ['images/app.tar.docker'] }));
  return def;
}

async function build(signer: Signer, def: string, out: string, extra: string[] = [], node = process.execPath): Promise<string> {
  const stdout = capture(node, [CLI, 'bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', out, '--json', ...extra]);
  return (JSON.parse(stdout) as { path: string }).path;
}

async function manifestBytes(path: string): Promise<Buffer> {
  const extract = tar.extract();
  createReadStream(path).pipe(extract as unknown as NodeJS.WritableStream);
  for await (const e of extract) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    extract.destroy();
    return Buffer.concat(chunks);
  }
  throw new Error(`${path} is empty`);
}

async function importMs(signer: Signer, file: string, state: string, prepare: string[]): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    await rm(state, { recursive: true, force: true });
    for (const f of prepare) capture(process.execPath, [CLI, 'bundle', 'import', f, '--state', state, '--trust', signer.trustDir, '--no-load']);
    syncAll();
    times.push((await timed(process.execPath, [CLI, 'bundle', 'import', file, '--state', state, '--trust', signer.trustDir, '--no-load'])).wallMs);
  }
  return median(times);
}

/** A delta's size against what it must carry at the least: its changed layers, as stored, and its manifest. */
async function deltaFigures(delta: string) {
  const mBytes = await manifestBytes(delta);
  const m = JSON.parse(mBytes.toString()) as Manifest;
  const changedLayers = m.blobs.filter((b) => b.kind === 'layer' && b.carried !== false).reduce((n, b) => n + (b.stored?.size ?? b.size), 0);
  const deltaBytes = (await stat(delta)).size;
  return { deltaBytes, changedLayers, mBytes, ratio: deltaBytes / (changedLayers + mBytes.length) };
}

const work = values.work ?? (await mkdtemp(join(tmpdir(), 'airlock-bench-delta-')));
const rows: string[][] = [];
let worst = 0;
let worstZstd = 0;
try {
  const signer = await makeSigner(work);
  for (const kind of kinds) {
    const base = { path: join(work, `base-${kind}.tar`), diffId: '' };
    base.diffId = kind === 'random' ? await writeRandomLayer(base.path, baseBytes, 'base.bin') : await writeTextLayer(base.path, baseBytes, 1);
    for (const appSize of appSizes) {
      const tag = `${kind}-${appSize / MiB}`;
      const v1 = await release(join(work, tag, 'v1'), '1.0.0', base, kind, appSize, 2);
      const v2 = await release(join(work, tag, 'v2'), '1.1.0', base, kind, appSize, 3);
      const full1 = await build(signer, v1, join(work, tag, 'full'));
      const full2 = await build(signer, v2, join(work, tag, 'full'));
      const delta = await build(signer, v2, join(work, tag, 'delta'), ['--since', full1]);
      const { deltaBytes, changedLayers, mBytes, ratio } = await deltaFigures(delta);
      worst = Math.max(worst, ratio);
      const z = node24 ? await deltaFigures(await build(signer, v2, join(work, tag, 'delta-zstd'), ['--since', full1, '--compress', 'zstd'], node24)) : undefined;
      if (z) worstZstd = Math.max(worstZstd, z.ratio);
      const tFull = await importMs(signer, full2, join(work, tag, 'state'), []);
      const tDelta = await importMs(signer, delta, join(work, tag, 'state'), [full1]);
      rows.push([
        kind,
        fmtBytes(baseBytes),
        fmtBytes(appSize),
        fmtBytes((await stat(full2)).size),
        `${deltaBytes} B (${fmtBytes(deltaBytes)})`,
        `${changedLayers} B + ${mBytes.length} B`,
        `${ratio.toFixed(4)}×`,
        `${fmtSec(tFull)} / ${fmtSec(tDelta)}`,
        ...(z ? [`${z.deltaBytes} B = ${z.changedLayers} B + ${z.mBytes.length} B + ${z.deltaBytes - z.changedLayers - z.mBytes.length} B; ${z.ratio.toFixed(4)}×`] : []),
      ]);
      process.stderr.write(`${tag}: delta ${deltaBytes} B, ratio ${ratio.toFixed(4)}\n`);
    }
  }
} finally {
  if (!values.keep && !values.work) await rm(work, { recursive: true, force: true });
}

const table = mdTable(
  [
    'content',
    'shared base layer',
    'changed app layer',
    'full 1.1.0 bundle',
    'delta 1.1.0 bundle',
    'changed layers (as stored) + manifest',
    'delta / (layers + manifest)',
    'import full / delta',
    ...(node24 ? ['zstd delta = layers + manifest + rest; ratio'] : []),
  ],
  rows,
);
const body = [
  `Target: delta ≤ ${TARGET}× (bytes of the changed layers + manifest). Worst here: **${worst.toFixed(4)}×** ${worst <= TARGET ? '(met)' : '(NOT met)'}` +
    (node24 ? `; with \`--compress zstd\`: **${worstZstd.toFixed(4)}×** ${worstZstd <= TARGET ? '(met)' : '(NOT met)'}.` : '.'),
  '',
  table,
  '',
  `Import times: \`bundle import --no-load\`, median of ${runs}; the delta into a store that holds 1.0.0.`,
].join('\n');
process.stdout.write(`${body}\n`);
if (values.out) await writeGeneratedBlock(values.out, 'delta', '## Delta bundles', body);
process.exit(worst <= TARGET ? 0 : 1);
