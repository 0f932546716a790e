/**
 * Bundle I/O benchmark (issue "Speed and memory"; contract point 2).
 *
 *   npm run build && .runtime/node dist/bench/bundle-io.js [--size-mib 1024] [--small-mib 100]
 *       [--text-mib 1024] [--runs 3] [--out docs/benchmarks.md] [--work DIR] [--keep] [--reuse]
 *       [--airlock PATH]
 *
 * Builds signed bundles through the real CLI (`airlock bundle build` on a
 * docker-save archive written by the test helpers), then times, as whole
 * processes, each side by side with the limit the machine sets:
 *
 *   airlock bundle verify FILE          vs  openssl dgst -sha256 FILE
 *   airlock bundle import FILE --state  vs  cp FILE DEST && sync
 *
 * and records the import's peak RSS for a large and a small bundle. The
 * page cache cannot be dropped without root side effects, so before every
 * timed command the bench runs `sync` and reads the bundle once: every
 * command starts with the bundle cached and no dirty pages pending.
 * Tests never time anything; this is the only place that does.
 */
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeSigner, type Signer } from '../test/helpers/fixtures.js';
import { makeBenchProject, type ContentKind } from './lib/corpus.js';
import { writeGeneratedBlock } from './lib/doc.js';
import { machineFacts, type MachineFacts } from './lib/machine.js';
import { capture, hasGnuTime, syncAll, timed, type Timed } from './lib/proc.js';
import { fmtBytes, fmtMB, fmtRate, fmtRatio, fmtSec, mdTable, median, MiB } from './lib/stats.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FLOOR = join(REPO, 'dist/bench/lib/sha256-floor.js');
const TAR_FLOOR = join(REPO, 'dist/bench/lib/tar-floor.js');

const TARGET = { verify: 1.2, import: 1.25, rssBytes: 100e6, rssGrowth: 1.2 };

interface Args {
  sizeMiB: number;
  smallMiB: number;
  textMiB: number;
  runs: number;
  out: string | undefined;
  work: string | undefined;
  keep: boolean;
  reuse: boolean;
  airlock: string;
  quietLoad: number | undefined;
  quietWaitMin: number;
}

const USAGE = `Usage: .runtime/node dist/bench/bundle-io.js [options]
  --size-mib N    the large random bundle (default 1024)
  --small-mib N   the small random bundle, for the RSS growth check (default 100)
  --text-mib N    the compressible bundle (default: --size-mib)
  --runs N        timed runs of every command; the report gives medians (default 3)
  --out FILE      write the figures into FILE, between the bundle-io markers
  --work DIR      scratch folder (default: a new folder under $TMPDIR, deleted at the end)
  --keep          leave the scratch folder in place
  --reuse         reuse the bundles and key already built in --work (implies --keep)
  --airlock PATH  the airlock entry point to measure (default: this checkout's bin/airlock),
                  e.g. another checkout's bin/airlock, to compare a change against this one
  --quiet-load X  on a shared machine: before measuring each bundle, wait until the 1-minute
                  load average is below X (at most --quiet-wait minutes, default 10)
`;

function parse(): Args {
  const { values } = parseArgs({
    options: {
      'size-mib': { type: 'string', default: '1024' },
      'small-mib': { type: 'string', default: '100' },
      'text-mib': { type: 'string' },
      runs: { type: 'string', default: '3' },
      out: { type: 'string' },
      work: { type: 'string' },
      keep: { type: 'boolean', default: false },
      reuse: { type: 'boolean', default: false },
      airlock: { type: 'string' },
      'quiet-load': { type: 'string' },
      'quiet-wait': { type: 'string', default: '10' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const num = (v: string | undefined, name: string, min: number) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number ≥ ${min}`);
    return n;
  };
  const sizeMiB = num(values['size-mib'], 'size-mib', 1);
  return {
    sizeMiB,
    smallMiB: num(values['small-mib'], 'small-mib', 1),
    textMiB: values['text-mib'] === undefined ? sizeMiB : num(values['text-mib'], 'text-mib', 1),
    runs: Math.round(num(values.runs, 'runs', 1)),
    out: values.out,
    work: values.work,
    keep: values.keep || values.reuse,
    reuse: values.reuse,
    airlock: resolve(values.airlock ?? join(REPO, 'bin/airlock')),
    quietLoad: values['quiet-load'] === undefined ? undefined : num(values['quiet-load'], 'quiet-load', 0),
    quietWaitMin: num(values['quiet-wait'], 'quiet-wait', 0),
  };
}

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

interface BundleCase {
  id: string;
  label: string;
  kind: ContentKind;
  bytes: number;
}

interface Built {
  path: string;
  bytes: number;
  layerBytes: number;
  layers: number;
  images: number;
  blobs: number;
  gzipBlobs: number;
  contentBytes: number;
  buildMs: number;
  buildRss: number | null;
}

interface Samples {
  wall: number[];
  cpu: number[];
  rss: number[];
}

interface Measured {
  built: Built;
  verify: Samples;
  openssl: Samples;
  floor: Samples;
  tarVerify: Samples;
  import: Samples;
  cp: Samples;
  tarImport: Samples;
}

const newSamples = (): Samples => ({ wall: [], cpu: [], rss: [] });
const add = (s: Samples, t: Timed) => {
  s.wall.push(t.wallMs);
  if (t.cpuMs !== null) s.cpu.push(t.cpuMs);
  if (t.peakRssBytes !== null) s.rss.push(t.peakRssBytes);
};

/** Reads `file` once into a reused buffer, so it sits in the page cache. */
function warm(file: string): void {
  const fd = openSync(file, 'r');
  const buf = Buffer.allocUnsafe(4 << 20);
  try {
    while (readSync(fd, buf, 0, buf.length, null) > 0);
  } finally {
    closeSync(fd);
  }
}

/** Starts a timed command from the same state each time: no dirty pages, the bundle cached. */
function settle(file: string): void {
  syncAll();
  warm(file);
}

/**
 * How the CLI runs: the entry point under test, no NODE_OPTIONS, and a
 * DOCKER_HOST that leads nowhere, so that no run can load benchmark images
 * into a real engine.
 */
const cli = { entry: '', env: { ...process.env, NODE_OPTIONS: '' } as NodeJS.ProcessEnv, importFlags: [] as string[] };
const airlock = (args: string[]) => timed(process.execPath, [cli.entry, ...args], { env: cli.env });

/** `--no-load` when this airlock's import also loads images into Docker: the bench measures verify-and-store only. */
function importFlags(): string[] {
  const help = capture(process.execPath, [cli.entry, 'bundle', 'import', '--help']);
  return help.includes('--no-load') ? ['--no-load'] : [];
}

async function buildCase(c: BundleCase, work: string, signer: Signer, reuse: boolean): Promise<Built> {
  const infoFile = join(work, 'bundles', `${c.id}.json`);
  if (reuse && existsSync(infoFile)) {
    const info = JSON.parse(await readFile(infoFile, 'utf8')) as Built;
    if (existsSync(info.path)) {
      log(`${c.label}: reusing ${info.path}`);
      return info;
    }
  }
  const project = join(work, 'projects', c.id);
  await rm(project, { recursive: true, force: true });
  log(`${c.label}: writing layers and a docker-save archive (${fmtBytes(c.bytes)}, ${c.kind})`);
  const p = await makeBenchProject(project, { name: c.id, totalBytes: c.bytes, kind: c.kind });
  syncAll();
  log(`${c.label}: airlock bundle build`);
  const outDir = join(work, 'bundles');
  const t = await airlock(['bundle', 'build', '-f', p.definition, '--key', signer.keyPath, '-o', outDir, '--compress', 'auto', '--json']);
  const r = JSON.parse(t.stdout) as { path: string; bytes: number };
  await rm(project, { recursive: true, force: true });
  const inspect = JSON.parse(capture(process.execPath, [cli.entry, 'bundle', 'inspect', r.path, '--trust', signer.trustDir, '--json'])) as {
    manifest: { blobs: { size: number; encoding: string }[] };
  };
  const blobs = inspect.manifest.blobs;
  const built: Built = {
    path: r.path,
    bytes: r.bytes,
    layerBytes: p.layerBytes,
    layers: p.layers,
    images: p.images,
    blobs: blobs.length,
    gzipBlobs: blobs.filter((b) => b.encoding !== 'identity').length,
    contentBytes: blobs.reduce((n, b) => n + b.size, 0),
    buildMs: t.wallMs,
    buildRss: t.peakRssBytes,
  };
  await writeFile(infoFile, JSON.stringify(built, null, 2));
  log(`${c.label}: ${fmtBytes(built.bytes)} bundle, ${built.blobs} blobs (${built.gzipBlobs} gzip), built in ${fmtSec(built.buildMs)}`);
  return built;
}

/** Waits (up to `maxMin` minutes) for the 1-minute load average to fall below `max`; returns the load average it stopped waiting at. */
async function waitForQuiet(max: number | undefined, maxMin: number): Promise<number> {
  const deadline = Date.now() + maxMin * 60_000;
  let load = loadavg()[0]!;
  if (max === undefined || load < max) return load;
  log(`load average ${load.toFixed(2)} ≥ ${max}: waiting up to ${maxMin} min for a quieter machine`);
  while (load >= max && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10_000));
    load = loadavg()[0]!;
  }
  if (load >= max) log(`still ${load.toFixed(2)}; measuring anyway`);
  return load;
}

async function countFiles(dir: string): Promise<number> {
  try {
    return (await readdir(dir)).length;
  } catch {
    return 0;
  }
}

async function measureCase(c: BundleCase, built: Built, work: string, signer: Signer, runs: number): Promise<Measured> {
  const file = built.path;
  const m: Measured = {
    built,
    verify: newSamples(),
    openssl: newSamples(),
    floor: newSamples(),
    tarVerify: newSamples(),
    import: newSamples(),
    cp: newSamples(),
    tarImport: newSamples(),
  };
  const entries = `${built.blobs + 2} entries`;
  const noState = join(work, 'no-state');
  const expected = capture('openssl', ['dgst', '-sha256', '-r', file]).split(' ')[0];
  const dest = join(work, 'cp-dest.airlock');
  const state = join(work, 'state');
  const floorDir = join(work, 'tar-floor-out');
  for (let run = 0; run < runs; run++) {
    // Verify side by side; the order rotates from run to run.
    const verifySteps: (() => Promise<void>)[] = [
      async () => add(m.openssl, await timed('openssl', ['dgst', '-sha256', file])),
      async () => {
        const t = await airlock(['bundle', 'verify', file, '--trust', signer.trustDir, '--state', noState, '--json']);
        if (!(JSON.parse(t.stdout) as { valid: boolean }).valid) throw new Error(`verify did not say valid: ${t.stdout}`);
        add(m.verify, t);
      },
      async () => {
        const t = await timed(process.execPath, [FLOOR, file]);
        if (t.stdout.trim() !== expected) throw new Error('the sha256 floor disagrees with openssl');
        add(m.floor, t);
      },
      async () => {
        const t = await timed(process.execPath, [TAR_FLOOR, 'verify', file]);
        if (t.stdout.trim() !== entries) throw new Error(`tar floor saw ${t.stdout.trim()}, expected ${entries}`);
        add(m.tarVerify, t);
      },
    ];
    for (let i = 0; i < verifySteps.length; i++) {
      settle(file);
      await verifySteps[(i + run) % verifySteps.length]!();
    }
    // Import side by side, each into a fresh, empty place on the same file system.
    const importSteps: (() => Promise<void>)[] = [
      async () => {
        await rm(dest, { force: true });
        settle(file);
        add(m.cp, await timed('sh', ['-c', 'cp "$1" "$2" && sync', 'sh', file, dest]));
        await rm(dest, { force: true });
      },
      async () => {
        await rm(state, { recursive: true, force: true });
        await mkdir(state);
        settle(file);
        // The operator's form (no --json): a one-line summary, and progress lines on stderr when it is not a TTY.
        const t = await airlock(['bundle', 'import', file, '--state', state, '--trust', signer.trustDir, ...cli.importFlags]);
        const stored = await countFiles(join(state, 'blobs', 'sha256'));
        if (!/^imported /m.test(t.stdout) || stored !== built.blobs) throw new Error(`import stored ${stored} blobs, expected ${built.blobs}: ${t.stdout}`);
        add(m.import, t);
        await rm(state, { recursive: true, force: true });
      },
      async () => {
        await rm(floorDir, { recursive: true, force: true });
        settle(file);
        const t = await timed(process.execPath, [TAR_FLOOR, 'import', file, floorDir]);
        if (t.stdout.trim() !== entries) throw new Error(`tar floor stored ${t.stdout.trim()}, expected ${entries}`);
        add(m.tarImport, t);
        await rm(floorDir, { recursive: true, force: true });
      },
    ];
    for (let i = 0; i < importSteps.length; i++) await importSteps[(i + run) % importSteps.length]!();
    log(
      `${c.label} run ${run + 1}/${runs}: verify ${fmtSec(m.verify.wall.at(-1)!)} vs openssl ${fmtSec(m.openssl.wall.at(-1)!)} ` +
        `(floors ${fmtSec(m.floor.wall.at(-1)!)}, ${fmtSec(m.tarVerify.wall.at(-1)!)}); ` +
        `import ${fmtSec(m.import.wall.at(-1)!)} vs cp+sync ${fmtSec(m.cp.wall.at(-1)!)} (floor ${fmtSec(m.tarImport.wall.at(-1)!)}); ` +
        `import RSS ${fmtMB(m.import.rss.at(-1) ?? NaN)}`,
    );
  }
  syncAll();
  return m;
}

/** The CLI's fixed cost: `airlock bundle verify --help` (loads what a bundle command loads, reads no bundle) next to an empty Node. */
async function measureStartup(runs: number): Promise<{ airlock: Samples; node: Samples }> {
  const r = { airlock: newSamples(), node: newSamples() };
  for (let i = 0; i < Math.max(5, runs); i++) {
    add(r.node, await timed(process.execPath, ['-e', '0']));
    add(r.airlock, await airlock(['bundle', 'verify', '--help']));
  }
  return r;
}

const verdict = (ok: boolean) => (ok ? '**pass**' : '**FAIL**');
const med = (s: Samples) => median(s.wall);
const medCpu = (s: Samples) => median(s.cpu);
const maxRss = (s: Samples) => (s.rss.length ? Math.max(...s.rss) : NaN);
const wallCpu = (s: Samples) => (s.cpu.length ? `${fmtSec(med(s))} (cpu ${fmtSec(medCpu(s))})` : fmtSec(med(s)));

interface Context {
  args: Args;
  facts: MachineFacts;
  cases: BundleCase[];
  results: Map<string, Measured>;
  startup: { airlock: Samples; node: Samples };
  load: { before: string; cases: string[]; after: string };
  totalMs: number;
}

function report(x: Context): string {
  const { args, facts, cases, results, startup } = x;
  const [big, small, text] = cases.map((c) => results.get(c.id)!) as [Measured, Measured, Measured];
  const [bigCase, smallCase, textCase] = cases as [BundleCase, BundleCase, BundleCase];
  const rows: string[][] = [];
  const ratioRow = (c: BundleCase, m: Measured, side: 'verify' | 'import', target: number | string) => {
    const mine = med(m[side]);
    const base = side === 'verify' ? med(m.openssl) : med(m.cp);
    const r = mine / base;
    rows.push([
      side,
      c.label,
      fmtSec(mine),
      `${side === 'verify' ? '`openssl dgst -sha256`' : '`cp && sync`'} ${fmtSec(base)}`,
      fmtRatio(r),
      typeof target === 'string' ? `— (${target})` : `≤ ${fmtRatio(target)}`,
      typeof target === 'string' ? 'info' : verdict(r <= target),
    ]);
  };
  ratioRow(bigCase, big, 'verify', TARGET.verify);
  ratioRow(bigCase, big, 'import', TARGET.import);
  // At 100 MiB the baselines take well under 0.2 s, so start-up (an empty Node alone, ~0.05 s) dominates: shown, not judged.
  ratioRow(smallCase, small, 'verify', 'start-up dominates');
  ratioRow(smallCase, small, 'import', 'start-up dominates');
  const bigRss = maxRss(big.import);
  const smallRss = maxRss(small.import);
  rows.push(['import peak RSS', bigCase.label, fmtMB(bigRss), '', '', `≤ ${fmtMB(TARGET.rssBytes)}`, verdict(bigRss <= TARGET.rssBytes)]);
  rows.push(['import peak RSS', smallCase.label, fmtMB(smallRss), '', '', `≤ ${fmtMB(TARGET.rssBytes)}`, verdict(smallRss <= TARGET.rssBytes)]);
  rows.push([
    'import peak RSS growth',
    `${bigCase.label} ÷ ${smallCase.label}`,
    fmtMB(bigRss),
    fmtMB(smallRss),
    fmtRatio(bigRss / smallRss),
    `≤ ${fmtRatio(TARGET.rssGrowth)}`,
    verdict(bigRss / smallRss <= TARGET.rssGrowth),
  ]);
  ratioRow(textCase, text, 'verify', 'shows the cost of gzip');
  ratioRow(textCase, text, 'import', 'shows the cost of gzip');

  const info = cases.map((c) => {
    const b = results.get(c.id)!.built;
    return [
      c.label,
      `${b.images} images, ${b.layers} layers, ${b.blobs} blobs (${b.gzipBlobs} gzip)`,
      fmtBytes(b.layerBytes),
      fmtBytes(b.contentBytes),
      `${fmtBytes(b.bytes)} (${fmtRatio(b.bytes / b.layerBytes)})`,
      `${fmtSec(b.buildMs)} (${fmtRate(b.layerBytes, b.buildMs)})`,
      b.buildRss === null ? '?' : fmtMB(b.buildRss),
    ];
  });

  const vs = (x: Samples, base: Samples) => `${wallCpu(x)}, ${fmtRatio(med(x) / med(base))}`;
  const verifySpeed = cases.map((c) => {
    const m = results.get(c.id)!;
    return [
      c.label,
      `${wallCpu(m.openssl)}, ${fmtRate(m.built.bytes, med(m.openssl))}`,
      vs(m.floor, m.openssl),
      vs(m.tarVerify, m.openssl),
      `${vs(m.verify, m.openssl)}, ${fmtRate(m.built.bytes, med(m.verify))}`,
      `${fmtMB(maxRss(m.tarVerify))} / ${fmtMB(maxRss(m.verify))}`,
    ];
  });
  const importSpeed = cases.map((c) => {
    const m = results.get(c.id)!;
    return [
      c.label,
      `${wallCpu(m.cp)}, ${fmtRate(m.built.bytes, med(m.cp))}`,
      vs(m.tarImport, m.cp),
      `${vs(m.import, m.cp)}, ${fmtRate(m.built.bytes, med(m.import))}`,
      `${fmtMB(maxRss(m.tarImport))} / ${fmtMB(maxRss(m.import))}`,
    ];
  });

  const samples = cases.flatMap((c) => {
    const m = results.get(c.id)!;
    const s = (x: Samples) => x.wall.map((w, i) => `${(w / 1000).toFixed(2)}${x.cpu[i] === undefined ? '' : ` (${(x.cpu[i]! / 1000).toFixed(2)})`}`).join(', ');
    return [
      [c.label, '`openssl dgst -sha256`', s(m.openssl)],
      [c.label, 'node sha256 floor', s(m.floor)],
      [c.label, 'node tar-walk floor, verify', s(m.tarVerify)],
      [c.label, '`airlock bundle verify`', s(m.verify)],
      [c.label, '`cp && sync`', s(m.cp)],
      [c.label, 'node tar-walk floor, import', s(m.tarImport)],
      [c.label, '`airlock bundle import`', s(m.import)],
    ];
  });

  const command =
    `.runtime/node dist/bench/bundle-io.js --size-mib ${args.sizeMiB} --small-mib ${args.smallMiB} --text-mib ${args.textMiB} --runs ${args.runs}` +
    (args.airlock === resolve(REPO, 'bin/airlock') ? '' : ` --airlock ${args.airlock}`) +
    (args.quietLoad === undefined ? '' : ` --quiet-load ${args.quietLoad}`) +
    (args.reuse ? ' --work DIR --reuse' : '');
  return [
    `Run on ${new Date().toISOString().slice(0, 10)} with \`${command}\`: ${args.runs} runs of every command, medians, ` +
      `whole bench ${(x.totalMs / 60000).toFixed(1)} min` +
      (args.reuse ? ' (bundles, and their build figures, from an earlier run in the same folder).' : '.'),
    '',
    mdTable(
      ['Machine', ''],
      [
        ['CPU', `${facts.cpu}, ${facts.cores} cores (${facts.cpuFlags})`],
        ['Memory', facts.memory],
        ['Kernel', facts.kernel],
        ['File system (bundles, `cp` target, state dir)', facts.fileSystem],
        ['Node', `${facts.node} (its OpenSSL ${facts.nodeOpenssl})`],
        ['openssl', facts.openssl],
        ['airlock', `${facts.commit}${cli.importFlags.length ? `; import run with ${cli.importFlags.join(' ')}` : ''}`],
        [
          'Load average (1 min): at start; as each bundle\'s measurements began; at end',
          `${x.load.before}; ${x.load.cases.join(', ')}; ${x.load.after}${args.quietLoad === undefined ? '' : ` (waited for < ${args.quietLoad})`}`,
        ],
        ['Peak RSS and CPU from', hasGnuTime() ? 'GNU time `%M %U %S`; every command runs under it' : 'VmHWM polled from /proc every 10 ms'],
      ],
    ),
    '',
    '#### Targets',
    '',
    mdTable(['Measure', 'Bundle', 'airlock', 'Baseline', 'Ratio', 'Target', 'Result'], rows),
    '',
    '#### Bundles',
    '',
    mdTable(['Bundle', 'Contents', 'Layer bytes', 'Content bytes', 'Bundle file (÷ layers)', 'Build time (layer MiB/s)', 'Build peak RSS'], info),
    '',
    '#### Times, CPU and throughput',
    '',
    'Medians of wall time, user + system CPU time in brackets, then the ratio to the baseline; rates are bundle-file bytes',
    'per second. The *floors* are what a Node program reaches on this machine: `bench/lib/sha256-floor.ts` hashes the file',
    'with one reused buffer (it does not inflate); `bench/lib/tar-floor.ts` walks the tar entries, hashes each, inflates',
    'and hashes gzip ones, and (import) writes and fsyncs each to its own file, with reused buffers and no checks.',
    'They show what a leaner airlock could reach on this machine.',
    '',
    mdTable(['Verify', '`openssl dgst -sha256`', 'node sha256 floor', 'node tar-walk floor', 'airlock verify', 'Peak RSS tar-walk / airlock'], verifySpeed),
    '',
    mdTable(['Import', '`cp && sync`', 'node tar-walk floor', 'airlock import', 'Peak RSS tar-walk / airlock'], importSpeed),
    '',
    `Fixed start-up cost: \`airlock bundle verify --help\` takes ${wallCpu(startup.airlock)} and ${fmtMB(maxRss(startup.airlock))} peak RSS; ` +
      `an empty \`node -e 0\` takes ${wallCpu(startup.node)} and ${fmtMB(maxRss(startup.node))}.`,
    '',
    '<details><summary>Every run: wall seconds (CPU seconds)</summary>',
    '',
    mdTable(['Bundle', 'Command', 'Runs'], samples),
    '',
    '</details>',
  ].join('\n');
}

async function main(): Promise<void> {
  const args = parse();
  cli.entry = args.airlock;
  if (!existsSync(cli.entry)) throw new Error(`no airlock at ${cli.entry}`);
  if (!existsSync(join(REPO, 'dist/src/cli/main.js')) || !existsSync(FLOOR) || !existsSync(TAR_FLOOR)) throw new Error('run `npm run build` first');
  const started = Date.now();
  const loadBefore = loadavg()[0]!.toFixed(2);
  const work = args.work ? resolve(args.work) : await mkdtemp(join(tmpdir(), 'airlock-bench-'));
  await mkdir(join(work, 'bundles'), { recursive: true });
  log(`scratch folder ${work}${args.keep ? ' (kept)' : ''}; measuring ${cli.entry}`);
  const facts = machineFacts(work, dirname(dirname(cli.entry)));
  cli.env = { ...cli.env, DOCKER_HOST: `unix://${join(work, 'no-docker.sock')}` };
  cli.importFlags = importFlags();
  const cases: BundleCase[] = [
    { id: `random-${args.sizeMiB}m`, label: `${fmtBytes(args.sizeMiB * MiB)} random`, kind: 'random', bytes: args.sizeMiB * MiB },
    { id: `random-${args.smallMiB}m`, label: `${fmtBytes(args.smallMiB * MiB)} random`, kind: 'random', bytes: args.smallMiB * MiB },
    { id: `text-${args.textMiB}m`, label: `${fmtBytes(args.textMiB * MiB)} compressible`, kind: 'text', bytes: args.textMiB * MiB },
  ];
  try {
    const signerFile = join(work, 'signer.json');
    let signer: Signer;
    if (args.reuse && existsSync(signerFile)) signer = JSON.parse(await readFile(signerFile, 'utf8')) as Signer;
    else {
      const keyDir = join(work, 'signer');
      await rm(keyDir, { recursive: true, force: true });
      await mkdir(keyDir, { recursive: true });
      signer = await makeSigner(keyDir, 'bench');
      await writeFile(signerFile, JSON.stringify(signer));
    }
    const built = new Map<string, Built>();
    for (const c of cases) built.set(c.id, await buildCase(c, work, signer, args.reuse));
    const startup = await measureStartup(args.runs);
    const results = new Map<string, Measured>();
    const loads: string[] = [];
    for (const c of cases) {
      loads.push((await waitForQuiet(args.quietLoad, args.quietWaitMin)).toFixed(2));
      log(`${c.label}: measuring, ${args.runs} runs (load average ${loads.at(-1)})`);
      results.set(c.id, await measureCase(c, built.get(c.id)!, work, signer, args.runs));
    }
    const md = report({ args, facts, cases, results, startup, load: { before: loadBefore, cases: loads, after: loadavg()[0]!.toFixed(2) }, totalMs: Date.now() - started });
    process.stdout.write(`${md}\n`);
    if (args.out) {
      await writeGeneratedBlock(args.out, 'bundle-io', '## Bundle verify and import', md);
      log(`wrote the figures into ${args.out}`);
    }
  } finally {
    if (args.keep) log(`left ${work} in place`);
    else {
      await rm(work, { recursive: true, force: true });
      log(`removed ${work}`);
    }
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bundle-io: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
