/**
 * Per-blob compression (issue 9): what each `bundle build --compress` choice
 * costs and saves, against `docker save IMAGES | gzip` of the same images.
 *
 *   npm run build && .runtime/node dist/bench/compression.js [--sys-mib 192] [--text-mib 96] [--random-mib 48]
 *       [--runs 3] [--levels 1,3,9,19] [--sample-mib 32] [--out docs/benchmarks.md] [--keep]
 *
 * Two images share a busybox base layer: bench/app:1 adds a layer of this
 * machine's own files (executables, libraries, /usr/share: real content) and
 * a layer of generated logs and binaries (bench/lib/corpus.ts); bench/data:1
 * adds a layer of random bytes (compressed or encrypted app data). They are
 * loaded into a dockerd of the bench's own (test/helpers/dockerd.ts), and:
 *
 *  - baseline: `docker -H SOCK save REFS | gzip > FILE` (GNU gzip -6), whole pipeline timed;
 *  - per --compress choice (none, auto, gzip, zstd): `airlock bundle build` from that
 *    engine (its export included, as in the baseline), then `airlock bundle verify`,
 *    which decodes and hashes every blob, as a host does on import.
 *
 * Target: the default bundle (auto) ≤ 1.0 × the baseline's size. Every airlock
 * command runs on the packaged runtime (scripts/fetch-node: Node 24, which has
 * zstd), from a copy of the build taken at start. Times are medians of --runs.
 * Then, on the first --sample-mib of the system and generated layers, gzip -6
 * against each zstd level in --levels: size and single-core speed, to choose
 * the level `--compress zstd` uses (src/bundle/encodings.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { makeSigner } from '../test/helpers/fixtures.js';
import { PrivateDaemon } from '../test/helpers/dockerd.js';
import { writeBusyboxLayer, writeImageArchive, writeRandomLayer } from '../test/helpers/images.js';
import { writeSystemLayer, writeTextLayer } from './lib/corpus.js';
import { writeGeneratedBlock } from './lib/doc.js';
import { capture, syncAll, timed } from './lib/proc.js';
import { snapshotAirlock } from './lib/snapshot.js';
import { fmtBytes, fmtRate, fmtSec, mdTable, median, MiB } from './lib/stats.js';
import { ZSTD_LEVEL } from '../src/bundle/encodings.js';
import type { Manifest } from '../src/bundle/manifest.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = 1.0;
const CHOICES = ['none', 'auto', 'gzip', 'zstd'] as const;

const { values } = parseArgs({
  options: {
    'sys-mib': { type: 'string', default: '192' },
    'text-mib': { type: 'string', default: '96' },
    'random-mib': { type: 'string', default: '48' },
    runs: { type: 'string', default: '3' },
    levels: { type: 'string', default: '1,3,9,19' },
    'sample-mib': { type: 'string', default: '32' },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const log = (s: string) => process.stderr.write(`[compression] ${s}\n`);

/** The packaged runtime: the one hosts run, and the one with zstd. */
function packagedNode(): string {
  const r = spawnSync(join(REPO, 'scripts/fetch-node'), [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error('scripts/fetch-node failed');
  return r.stdout.trim();
}

/**
 * Runs in the packaged runtime: gzip -6 and each zstd level on each sample
 * file, one pass each, on one core. Prints JSON rows.
 */
const LEVEL_PROBE = `
const z = require('node:zlib'), fs = require('node:fs');
const [levels, ...files] = process.argv.slice(1);
const rows = [];
const time = (f) => { const t = process.hrtime.bigint(); const r = f(); return [r, Number(process.hrtime.bigint() - t) / 1e6]; };
for (const file of files) {
  const data = fs.readFileSync(file);
  const [gz, gzMs] = time(() => z.gzipSync(data, { level: 6, memLevel: 9 }));
  const [, gunzipMs] = time(() => z.gunzipSync(gz));
  rows.push({ file, codec: 'gzip -6', in: data.length, out: gz.length, encodeMs: gzMs, decodeMs: gunzipMs });
  for (const level of levels.split(',').map(Number)) {
    const [c, cMs] = time(() => z.zstdCompressSync(data, { params: { [z.constants.ZSTD_c_compressionLevel]: level } }));
    const [, dMs] = time(() => z.zstdDecompressSync(c));
    rows.push({ file, codec: 'zstd -' + level, in: data.length, out: c.length, encodeMs: cMs, decodeMs: dMs });
  }
}
process.stdout.write(JSON.stringify(rows));
`;

interface ProbeRow {
  file: string;
  codec: string;
  in: number;
  out: number;
  encodeMs: number;
  decodeMs: number;
}

async function headOf(src: string, bytes: number, out: string): Promise<string> {
  capture('sh', ['-c', `head -c ${bytes} "$0" > "$1"`, src, out]);
  return out;
}

const work = await mkdtemp(join(tmpdir(), 'airlock-bench-compression-'));
const daemon = new PrivateDaemon(join(work, 'engine'));
let body = '';
let met = false;
try {
  const node = packagedNode();
  const nodeVersion = capture(node, ['--version']);
  const cli = await snapshotAirlock(REPO, join(work, 'airlock'));
  const airlock = (args: string[], env?: NodeJS.ProcessEnv) => timed(node, [cli, ...args], env ? { env } : {});
  const signer = await makeSigner(work);

  log('writing layers');
  const layers = join(work, 'layers');
  await mkdir(layers, { recursive: true });
  const base = { path: join(layers, 'busybox.tar'), diffId: '' };
  base.diffId = await writeBusyboxLayer(base.path);
  const sys = { path: join(layers, 'system.tar'), diffId: '' };
  sys.diffId = await writeSystemLayer(sys.path, Number(values['sys-mib']) * MiB);
  const text = { path: join(layers, 'generated.tar'), diffId: '' };
  text.diffId = await writeTextLayer(text.path, Number(values['text-mib']) * MiB, 7);
  const random = { path: join(layers, 'random.tar'), diffId: '' };
  random.diffId = await writeRandomLayer(random.path, Number(values['random-mib']) * MiB);
  const refs = ['bench/app:1', 'bench/data:1'];
  const archive = join(work, 'images.tar');
  await writeImageArchive(
    archive,
    [
      { refs: [refs[0]!], layers: [base, sys, text], cmd: ['sh'] },
      { refs: [refs[1]!], layers: [base, random], cmd: ['sh'] },
    ],
    'legacy',
  );
  let layerBytes = 0;
  for (const l of [base, sys, text, random]) layerBytes += (await stat(l.path)).size;

  log('starting a private dockerd and loading the images');
  await daemon.start();
  capture('docker', ['-H', daemon.dockerHost, 'load', '-i', archive]);
  const engineEnv = { ...process.env, DOCKER_HOST: daemon.dockerHost };

  // Baseline: what operators carry today.
  const saved = join(work, 'saved.tar');
  capture('docker', ['-H', daemon.dockerHost, 'save', '-o', saved, ...refs]);
  const savedBytes = (await stat(saved)).size;
  await rm(saved);
  const gzFile = join(work, 'saved.tar.gz');
  const baseTimes: number[] = [];
  for (let i = 0; i < runs; i++) {
    await rm(gzFile, { force: true });
    syncAll();
    baseTimes.push((await timed('sh', ['-c', 'docker -H "$0" save "$1" "$2" | gzip > "$3"', daemon.dockerHost, refs[0]!, refs[1]!, gzFile])).wallMs);
  }
  const baseBytes = (await stat(gzFile)).size;
  log(`docker save | gzip: ${baseBytes} B`);

  const def = join(work, 'bundle.yaml');
  await writeFile(def, YAML.stringify({ name: 'bench', version: '1.0.0', description: 'compression benchmark', expires: 'never', images: refs }));
  const results: { choice: string; bytes: number; buildMs: number; verifyMs: number; encodings: string; manifest?: Manifest }[] = [];
  for (const choice of CHOICES) {
    const buildTimes: number[] = [];
    const verifyTimes: number[] = [];
    let bytes = 0;
    let encodings = '';
    let manifest: Manifest | undefined;
    for (let i = 0; i < runs; i++) {
      const out = join(work, `out-${choice}`);
      await rm(out, { recursive: true, force: true });
      syncAll();
      const b = await airlock(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', out, '--compress', choice, '--json'], engineEnv);
      buildTimes.push(b.wallMs);
      const path = (JSON.parse(b.stdout) as { path: string }).path;
      bytes = (await stat(path)).size;
      syncAll();
      const v = await airlock(['bundle', 'verify', path, '--trust', signer.trustDir, '--json']);
      verifyTimes.push(v.wallMs);
      if (i === 0) {
        const m = (manifest = JSON.parse(capture(node, [cli, 'bundle', 'inspect', path, '--manifest'])) as Manifest);
        const layerEnc = m.blobs.filter((x) => x.kind === 'layer').map((x) => x.encoding ?? '?');
        encodings = [...new Set(layerEnc)].map((e) => `${layerEnc.filter((x) => x === e).length} ${e}`).join(', ');
      }
    }
    results.push({ choice, bytes, buildMs: median(buildTimes), verifyMs: median(verifyTimes), encodings, manifest });
    log(`${choice}: ${bytes} B, build ${fmtSec(median(buildTimes))}, verify ${fmtSec(median(verifyTimes))}`);
  }

  // Per layer, as each variant stores it, against GNU gzip -6 of that layer alone: where the totals come from.
  const named = [
    ['busybox (real binary)', base],
    ['system files (real)', sys],
    ['generated logs + binaries', text],
    ['random bytes', random],
  ] as const;
  const layerRows: string[][] = [];
  for (const [label, l] of named) {
    const raw = (await stat(l.path)).size;
    const gnu = Number(capture('sh', ['-c', 'gzip -6 -c "$0" | wc -c', l.path]));
    const storedIn = (choice: string) => {
      const b = results.find((r) => r.choice === choice)?.manifest?.blobs.find((x) => x.digest === l.diffId);
      return b ? (b.stored?.size ?? b.size) : NaN;
    };
    const cell = (choice: string) => `${fmtBytes(storedIn(choice))} (${(storedIn(choice) / gnu).toFixed(3)}×)`;
    layerRows.push([label, fmtBytes(raw), fmtBytes(gnu), cell('gzip'), cell('zstd'), cell('auto')]);
  }

  log('zstd levels on samples');
  const sampleBytes = Number(values['sample-mib']) * MiB;
  const samples = [await headOf(sys.path, sampleBytes, join(work, 'sample-system.tar')), await headOf(text.path, sampleBytes, join(work, 'sample-generated.tar'))];
  const probe = JSON.parse(capture(node, ['-e', LEVEL_PROBE, values.levels!, ...samples])) as ProbeRow[];

  const auto = results.find((r) => r.choice === 'auto')!;
  const autoRatio = auto.bytes / baseBytes;
  met = autoRatio <= TARGET;
  const rows = [
    ['`docker save | gzip` (baseline)', `${fmtBytes(baseBytes)} (${baseBytes} B)`, '1.000×', fmtSec(median(baseTimes)), '–', 'whole stream, GNU gzip -6'],
    ...results.map((r) => [
      `\`--compress ${r.choice}\`${r.choice === 'auto' ? ' (default)' : ''}`,
      `${fmtBytes(r.bytes)} (${r.bytes} B)`,
      `${(r.bytes / baseBytes).toFixed(3)}×`,
      fmtSec(r.buildMs),
      fmtSec(r.verifyMs),
      `layers: ${r.encodings}`,
    ]),
  ];
  const sampleName = (f: string) => (f.includes('system') ? 'system files' : 'generated logs + binaries');
  const levelRows = probe.map((p) => {
    const gz = probe.find((q) => q.file === p.file && q.codec === 'gzip -6')!;
    return [
      sampleName(p.file),
      p.codec + (p.codec === `zstd -${ZSTD_LEVEL}` ? ' (used)' : ''),
      `${(p.out / p.in).toFixed(3)}`,
      `${((p.out / gz.out) * 100).toFixed(1)}%`,
      fmtRate(p.in, p.encodeMs),
      fmtRate(p.in, p.decodeMs),
    ];
  });
  body = [
    `Target: the default full bundle ≤ ${TARGET.toFixed(1)}× \`docker save | gzip\` of the same images. Here: **${autoRatio.toFixed(3)}×** ${met ? '(met)' : '(NOT met)'}; with \`--compress zstd\`: **${(results.find((r) => r.choice === 'zstd')!.bytes / baseBytes).toFixed(3)}×**.`,
    '',
    `Images: bench/app:1 (busybox base, ${values['sys-mib']} MiB of this machine's /usr files, ${values['text-mib']} MiB of generated logs and binaries) and bench/data:1 (the same base, ${values['random-mib']} MiB of random bytes): ${fmtBytes(layerBytes)} of distinct layers, \`docker save\` ${fmtBytes(savedBytes)}. Built from a private dockerd (Docker's export included in both build columns). airlock runs on the packaged runtime, ${nodeVersion}; times are medians of ${runs}, wall clock of the whole process.`,
    '',
    mdTable(['what', 'size', 'vs baseline', 'build', 'verify (decode + hash all)', 'notes'], rows),
    '',
    'Per layer, as stored in each bundle, against GNU `gzip -6` of that layer alone:',
    '',
    mdTable(['layer', 'tar', 'GNU gzip -6', '`--compress gzip`', '`--compress zstd`', '`--compress auto`'], layerRows),
    '',
    `zstd levels, on the first ${fmtBytes(sampleBytes)} of two layers, one core, one pass each (ratio = compressed / original; "vs gzip" = compressed size against gzip -6's):`,
    '',
    mdTable(['content', 'codec', 'ratio', 'vs gzip -6', 'compress', 'decompress'], levelRows),
  ].join('\n');
  process.stdout.write(`${body}\n`);
  if (values.out) await writeGeneratedBlock(values.out, 'compression', '## Compression', body);
} finally {
  await daemon.destroy().catch((e: unknown) => log(`daemon cleanup: ${String(e)}`));
  if (!values.keep) await rm(work, { recursive: true, force: true });
  else log(`kept ${work}`);
}
process.exit(met ? 0 : 1);
