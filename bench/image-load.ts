/**
 * Image loading: how long `airlock bundle import` takes to put a bundle's
 * images into a Docker Engine, against `docker load` of the same images.
 *
 *   .runtime/node dist/bench/image-load.js [--mib 500] [--runs 3] [--images 4] [--quiet-load 1.5] [--quiet-wait 60]
 *                                 [--airlock PATH] [--doc docs/benchmarks.md] [--json FILE] [--keep]
 *
 * It writes N images (a shared busybox base layer plus one app layer of
 * random bytes each, about --mib MiB in all) as a docker-save archive,
 * builds and signs a bundle of them with the real CLI, and starts a dockerd
 * of its own on a private socket. Each run then empties that engine (the
 * images deleted by ref, and the engine checked to hold no image and no
 * layer) before each timed step:
 *
 *  - baseline: `docker -H unix://SOCK load -i SAVED.tar`, where SAVED.tar is
 *    `docker save` of the same images from that engine; whole-process time;
 *  - airlock: `bin/airlock bundle import FILE --state FRESH --json`, whole
 *    process, split into its phases (below);
 *  - re-import: the same command again, same state dir, images present.
 *
 * The phases come from the real CLI process, instrumented from outside: the
 * child runs with `node --import` of a copy of this file, which (only when
 * AIRLOCK_BENCH_IMAGE_LOAD_HOOK names an output file) wraps Journal.open
 * (the first thing importBundle does) and the ImagesApi calls, records when
 * they start and end, and writes the marks out at exit. The images phase
 * starts with loadImages' first `images.find` and ends when its last engine
 * call returns; verify + store is everything from Journal.open to then.
 *
 * airlock is run from a copy of dist/src, bin and node_modules taken at start
 * (or from --airlock PATH), since the checkout may be rebuilt meanwhile.
 * --quiet-load L waits (at most --quiet-wait s) before each timed step until
 * the 1-minute load average is ≤ L: on a shared machine, the noise otherwise
 * exceeds the differences measured. --doc FILE replaces the figures between
 * this bench's markers, appending an "Image loading" section if they are missing.
 *
 * The docker CLI is used here only as the reference, as it is what operators
 * run today.
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const HOOK_ENV = 'AIRLOCK_BENCH_IMAGE_LOAD_HOOK';

/** Marks written by the hook: milliseconds since the child's performance.timeOrigin. */
interface HookMarks {
  timeOrigin: number;
  marks: Partial<Record<'journalOpen' | 'imagesStart' | 'loadAllStart' | 'loadAllEnd' | 'imagesEnd', number>>;
  calls: Record<string, number>;
}

/** Runs inside the airlock child (via --import): wraps a few methods to timestamp the import's phases. */
async function installHook(config: string): Promise<void> {
  // The modules of the airlock being measured (a snapshot, or --airlock), not this checkout's.
  const { out: outFile, root } = JSON.parse(config) as { out: string; root: string };
  const mod = (p: string) => pathToFileURL(`${root}/dist/src/${p}`).href;
  const { ImagesApi } = (await import(mod('docker/images.js'))) as typeof import('../src/docker/images.js');
  const { Journal } = (await import(mod('journal/journal.js'))) as typeof import('../src/journal/journal.js');
  const rec: HookMarks = { timeOrigin: performance.timeOrigin, marks: {}, calls: {} };
  const first = (k: keyof HookMarks['marks']) => void (rec.marks[k] ??= performance.now());
  const last = (k: keyof HookMarks['marks']) => void (rec.marks[k] = performance.now());
  const count = (k: string) => void (rec.calls[k] = (rec.calls[k] ?? 0) + 1);

  const open = Journal.open.bind(Journal);
  Journal.open = (...args: Parameters<typeof Journal.open>) => {
    first('journalOpen');
    return open(...args);
  };
  const proto = ImagesApi.prototype as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  for (const name of ['find', 'inspect', 'tag', 'loadAll']) {
    const orig = proto[name]!;
    proto[name] = async function (this: unknown, ...a: unknown[]) {
      count(name);
      if (name === 'find') first('imagesStart');
      if (name === 'loadAll') first('loadAllStart');
      try {
        return await orig.apply(this, a);
      } finally {
        if (name === 'loadAll') last('loadAllEnd');
        last('imagesEnd');
      }
    };
  }
  process.on('exit', () => writeFileSync(outFile, JSON.stringify(rec)));
}

// ---------------------------------------------------------------------------
// The benchmark itself. Heavy modules are imported lazily so that the hook
// above costs the measured child nothing but this file's parse.

const MiB = 1024 * 1024;

interface Args {
  mib: number;
  runs: number;
  images: number;
  doc: string | undefined;
  json: string | undefined;
  keep: boolean;
  /** The airlock CLI to measure; by default a snapshot of this checkout's build, taken at start. */
  airlock: string | undefined;
  /** Before each timed step, wait until the 1-minute load average is at most this (0: don't wait)... */
  quietLoad: number;
  /** ...but no longer than this many seconds. */
  quietWait: number;
  /** The engine of the matrix to measure on (scripts/engines; docs/engines.md). */
  engine: string;
}

function parseCli(argv: string[]): Args {
  const args: Args = { mib: 500, runs: 3, images: 4, doc: undefined, json: undefined, keep: false, airlock: undefined, quietLoad: 0, quietWait: 60, engine: process.env.AIRLOCK_TEST_ENGINE ?? 'bookworm' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--mib') args.mib = Number(val());
    else if (a === '--runs') args.runs = Number(val());
    else if (a === '--images') args.images = Number(val());
    else if (a === '--doc') args.doc = val();
    else if (a === '--json') args.json = val();
    else if (a === '--keep') args.keep = true;
    else if (a === '--airlock') args.airlock = val();
    else if (a === '--quiet-load') args.quietLoad = Number(val());
    else if (a === '--quiet-wait') args.quietWait = Number(val());
    else if (a === '--engine') args.engine = val();
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: .runtime/node dist/bench/image-load.js [--mib 500] [--runs 3] [--images 4] [--airlock bin/airlock] [--quiet-load 1.5] [--quiet-wait 60] [--engine ROW] [--doc docs/benchmarks.md] [--json FILE] [--keep]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!(args.mib >= 8) || !(args.runs >= 1) || !(args.images >= 1)) throw new Error('--mib must be ≥ 8, --runs and --images ≥ 1');
  return args;
}

interface Timed {
  wallMs: number;
  /** User + system CPU of the child (GNU time), or null. */
  cpuMs: number | null;
  stdout: string;
  stderr: string;
  /** Each stderr line with its arrival time, ms after spawn. */
  lines: { atMs: number; text: string }[];
  /** Epoch ms (performance.timeOrigin-based) at spawn. */
  spawnEpoch: number;
}

let seq = 0;

/** Runs a command to completion, measuring wall time from spawn to exit. */
async function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv, tmp: string): Promise<Timed> {
  const { existsSync } = await import('node:fs');
  const { readFile, rm } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const timeFile = join(tmp, `time-${seq++}`);
  const gnuTime = existsSync('/usr/bin/time');
  const [file, argv] = gnuTime ? ['/usr/bin/time', ['-f', '%U %S', '-o', timeFile, cmd, ...args]] : [cmd, args];
  const spawnEpoch = performance.timeOrigin + performance.now();
  const started = performance.now();
  const child = spawn(file, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let partial = '';
  const lines: Timed['lines'] = [];
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    const atMs = performance.now() - started;
    stderr += d.toString();
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const text of parts) lines.push({ atMs, text });
  });
  const code = await new Promise<number>((res, rej) => {
    child.on('error', rej);
    child.on('close', (c) => res(c ?? -1));
  });
  const wallMs = performance.now() - started;
  let cpuMs: number | null = null;
  if (gnuTime) {
    const m = /^([\d.]+) ([\d.]+)$/.exec((await readFile(timeFile, 'utf8').catch(() => '')).trim().split('\n').pop() ?? '');
    if (m) cpuMs = (Number(m[1]) + Number(m[2])) * 1000;
    await rm(timeFile, { force: true });
  }
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${code}\n${stderr}${stdout}`);
  return { wallMs, cpuMs, stdout, stderr, lines, spawnEpoch };
}

function capture(cmd: string, args: string[], env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: env ?? process.env });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
  return r.stdout.trim();
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const ratio = (r: number) => `${r.toFixed(2)}×`;
const rate = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
const table = (header: string[], rows: string[][]) =>
  [header, header.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');

/** CPU seconds dockerd and its reaped children (docker-untar re-execs) have used, from /proc. */
async function engineCpuMs(pidFile: string): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const pid = (await readFile(pidFile, 'utf8')).trim();
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14–17 (utime stime cutime cstime) are at 11–14 after the command name.
  const ticks = [11, 12, 13, 14].reduce((n, i) => n + Number(f[i]), 0);
  return (ticks * 1000) / Number(capture('getconf', ['CLK_TCK']));
}

interface ImportRun {
  /** 1-minute load average when the step started. */
  loadAvg: number;
  wallMs: number;
  cpuMs: number | null;
  engineCpuMs: number;
  /** Phase boundaries, ms after spawn. */
  journalOpen: number;
  imagesStart: number;
  loadAllStart: number | null;
  loadAllEnd: number | null;
  imagesEnd: number;
  /** When the "verify: 100%" line reached the parent, ms after spawn. */
  verifyLineAt: number | null;
  calls: Record<string, number>;
  result: { newBlobs: number; alreadyImported: boolean; images?: { loaded: string[]; present: string[]; tagged: string[] } };
}

interface Run {
  dockerLoad: { loadAvg: number; wallMs: number; cpuMs: number | null; engineCpuMs: number };
  first: ImportRun;
  again: ImportRun;
}

async function main(): Promise<void> {
  const args = parseCli(process.argv.slice(2));
  const { cp, mkdtemp, mkdir, readFile, readdir, rm, stat, writeFile } = await import('node:fs/promises');
  const { existsSync } = await import('node:fs');
  const { tmpdir, cpus, loadavg, totalmem, release } = await import('node:os');
  const { dirname, join, resolve } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const { setTimeout: sleep } = await import('node:timers/promises');
  const YAML = (await import('yaml')).default;
  const { writeBusyboxLayer, writeRandomLayer, writeImageArchive } = await import('../test/helpers/images.js');
  // The private dockerd and the reference CLI follow the row (test/helpers/engines.ts).
  process.env.AIRLOCK_TEST_ENGINE = args.engine;
  const { PrivateDaemon } = await import('../test/helpers/dockerd.js');
  const { dockerCliFor } = await import('../test/helpers/engines.js');
  const dockerCli = dockerCliFor();

  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const work = await mkdtemp(join(tmpdir(), 'airlock-bench-image-load-'));
  // The hook the measured children load: a copy of this file, which a rebuild of dist/ cannot touch mid-run.
  const hookFile = join(work, 'hook.mjs');
  await cp(fileURLToPath(import.meta.url), hookFile);
  const self = pathToFileURL(hookFile).href;
  // Others rebuild dist/ and reinstall modules while this runs; measure a copy taken now.
  let cli: string;
  if (args.airlock) cli = resolve(args.airlock);
  else {
    const { snapshotAirlock } = await import('./lib/snapshot.js');
    cli = await snapshotAirlock(repo, join(work, 'airlock'));
  }
  const airlockRoot = dirname(dirname(cli));
  const daemon = new PrivateDaemon(join(work, 'engine'));
  const log = (s: string) => process.stderr.write(`[image-load] ${s}\n`);
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await daemon.destroy().catch((e: unknown) => log(`daemon cleanup: ${String(e)}`));
    if (!args.keep) await rm(work, { recursive: true, force: true });
    else log(`kept ${work}`);
  };
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    // --- Images: a shared busybox base and one random app layer per image.
    log(`writing ${args.images} images of about ${args.mib} MiB in all under ${work}`);
    const layers = join(work, 'layers');
    await mkdir(layers, { recursive: true });
    const base = join(layers, 'base.tar');
    const baseId = await writeBusyboxLayer(base);
    const baseSize = (await stat(base)).size;
    const appSize = Math.max(MiB, Math.floor((args.mib * MiB - baseSize) / args.images / 512) * 512);
    const refs = Array.from({ length: args.images }, (_, i) => `bench-imgload/app${i + 1}:1`);
    const specs = [];
    let imageBytes = baseSize;
    for (const [i, ref] of refs.entries()) {
      const path = join(layers, `app${i + 1}.tar`);
      const diffId = await writeRandomLayer(path, appSize, `app${i + 1}.bin`);
      imageBytes += (await stat(path)).size;
      specs.push({ refs: [ref], layers: [{ path: base, diffId: baseId }, { path, diffId }], cmd: ['sh'] });
    }
    const project = join(work, 'project');
    await mkdir(project, { recursive: true });
    await writeImageArchive(join(project, 'images.tar'), specs, 'oci');
    await rm(layers, { recursive: true, force: true });

    // --- Engine of our own.
    await daemon.start();
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: daemon.dockerHost };
    delete env[HOOK_ENV];
    const docker = daemon.client();
    const info = (await docker.system.info()) as Awaited<ReturnType<typeof docker.system.info>> & { DriverStatus?: [string, string][] };
    const version = await docker.system.version();
    const pidFile = join(daemon.dir, 'docker.pid');

    // --- Key, trust dir, bundle: all through the real CLI.
    const keyOut = JSON.parse(capture(process.execPath, [cli, 'key', 'generate', '--out', join(work, 'keys', 'bench'), '--json'], env)) as { publicPath: string };
    const trust = join(work, 'trust');
    await mkdir(trust, { recursive: true });
    await writeFile(join(trust, 'bench.pub'), await readFile(keyOut.publicPath));
    await writeFile(
      join(project, 'bundle.yaml'),
      YAML.stringify({ name: 'bench-imgload', version: '1.0.0', description: 'image-load benchmark', expires: null, images: refs, image_archives: ['images.tar'] }),
    );
    log('building the bundle');
    const built = JSON.parse(
      capture(process.execPath, [cli, 'bundle', 'build', '-f', join(project, 'bundle.yaml'), '--key', join(work, 'keys', 'bench.key'), '-o', join(work, 'out'), '--compress', 'auto', '--json'], env),
    ) as { path: string; bytes: number };
    await rm(join(project, 'images.tar'), { force: true });

    // --- Helpers around the engine.
    const layerDb = join(daemon.dir, 'data', 'image', info.Driver, 'layerdb', 'sha256');
    const emptyEngine = async () => {
      for (const ref of refs) if (await docker.images.find(ref)) await docker.images.delete(ref);
      const left = await docker.images.list({ all: true });
      const layersLeft = existsSync(layerDb) ? await readdir(layerDb) : [];
      if (left.length > 0 || layersLeft.length > 0) {
        throw new Error(`engine not empty after deleting the images: ${left.length} images, ${layersLeft.length} layers`);
      }
      capture('sync', []);
    };
    const quiet = async (): Promise<number> => {
      const until = Date.now() + args.quietWait * 1000;
      while (args.quietLoad > 0 && loadavg()[0]! > args.quietLoad && Date.now() < until) await sleep(2000);
      return loadavg()[0]!;
    };
    const importOnce = async (state: string): Promise<ImportRun> => {
      const marksFile = join(work, `marks-${seq}.json`);
      const loadAvg = await quiet();
      const before = await engineCpuMs(pidFile);
      const t = await timed(
        process.execPath,
        ['--import', self, cli, 'bundle', 'import', built.path, '--state', state, '--trust', trust, '--json'],
        { ...env, [HOOK_ENV]: JSON.stringify({ out: marksFile, root: airlockRoot }) },
        work,
      );
      const engine = (await engineCpuMs(pidFile)) - before;
      const hook = JSON.parse(await readFile(marksFile, 'utf8')) as HookMarks;
      await rm(marksFile, { force: true });
      const at = (m: number | undefined) => (m === undefined ? null : hook.timeOrigin + m - t.spawnEpoch);
      const need = (m: number | undefined, what: string) => {
        const v = at(m);
        if (v === null) throw new Error(`the import did not reach ${what}:\n${t.stderr}`);
        return v;
      };
      return {
        loadAvg,
        wallMs: t.wallMs,
        cpuMs: t.cpuMs,
        engineCpuMs: engine,
        journalOpen: need(hook.marks.journalOpen, 'Journal.open'),
        imagesStart: need(hook.marks.imagesStart, 'the images phase'),
        loadAllStart: at(hook.marks.loadAllStart),
        loadAllEnd: at(hook.marks.loadAllEnd),
        imagesEnd: need(hook.marks.imagesEnd, 'the end of the images phase'),
        verifyLineAt: t.lines.find((l) => l.text.startsWith('verify: 100%'))?.atMs ?? null,
        calls: hook.calls,
        result: JSON.parse(t.stdout) as ImportRun['result'],
      };
    };

    // --- SAVED.tar: docker save of the same images from this engine (loaded by an untimed import).
    log('warm-up import and docker save');
    await emptyEngine();
    const warmState = join(work, 'state-warm');
    await importOnce(warmState);
    const saved = join(work, 'SAVED.tar');
    capture(dockerCli, ['-H', daemon.dockerHost, 'save', '-o', saved, ...refs], env);
    const savedBytes = (await stat(saved)).size;
    await rm(warmState, { recursive: true, force: true });

    // --- Timed runs. Odd runs time docker load first, even runs airlock first.
    const runs: Run[] = [];
    for (let r = 0; r < args.runs; r++) {
      const dockerLoad = async () => {
        await emptyEngine();
        const loadAvg = await quiet();
        const before = await engineCpuMs(pidFile);
        const t = await timed(dockerCli, ['-H', daemon.dockerHost, 'load', '-i', saved], env, work);
        const engine = (await engineCpuMs(pidFile)) - before;
        for (const ref of refs) if (!(await docker.images.find(ref))) throw new Error(`docker load did not load ${ref}`);
        return { loadAvg, wallMs: t.wallMs, cpuMs: t.cpuMs, engineCpuMs: engine };
      };
      const airlock = async () => {
        await emptyEngine();
        const state = join(work, `state-${r}`);
        const first = await importOnce(state);
        if (first.result.images?.loaded.length !== refs.length) throw new Error(`first import loaded ${JSON.stringify(first.result.images)}`);
        capture('sync', []);
        const again = await importOnce(state);
        if (again.result.images?.present.length !== refs.length) throw new Error(`re-import found ${JSON.stringify(again.result.images)}`);
        await rm(state, { recursive: true, force: true });
        return { first, again };
      };
      let d: Run['dockerLoad'];
      let a: { first: ImportRun; again: ImportRun };
      if (r % 2 === 0) {
        d = await dockerLoad();
        a = await airlock();
      } else {
        a = await airlock();
        d = await dockerLoad();
      }
      runs.push({ dockerLoad: d, ...a });
      const loadMs = a.first.imagesEnd - a.first.imagesStart;
      log(
        `run ${r + 1}/${args.runs}: docker load ${sec(d.wallMs)}; airlock import ${sec(a.first.wallMs)} ` +
          `(verify+store ${sec(a.first.imagesStart - a.first.journalOpen)}, load ${sec(loadMs)}); re-import ${sec(a.again.wallMs)}`,
      );
    }
    await emptyEngine();
    await docker.close();

    // --- Report.
    const m = (f: (r: Run) => number) => median(runs.map(f));
    const dockerMs = m((r) => r.dockerLoad.wallMs);
    const firstMs = m((r) => r.first.wallMs);
    const againMs = m((r) => r.again.wallMs);
    const verifyMs = m((r) => r.first.imagesStart - r.first.journalOpen);
    const loadMs = m((r) => r.first.imagesEnd - r.first.imagesStart);
    const startMs = m((r) => r.first.journalOpen);
    const preMs = m((r) => (r.first.loadAllStart ?? r.first.imagesEnd) - r.first.imagesStart);
    const postMs = m((r) => r.first.imagesEnd - (r.first.loadAllEnd ?? r.first.imagesEnd));
    const postAllMs = m((r) => (r.first.loadAllEnd ?? 0) - (r.first.loadAllStart ?? 0));
    const exitMs = m((r) => r.first.wallMs - r.first.imagesEnd);
    const againVerifyMs = m((r) => r.again.imagesStart - r.again.journalOpen);
    const againImagesMs = m((r) => r.again.imagesEnd - r.again.imagesStart);
    const againStartMs = m((r) => r.again.journalOpen);
    const loadRatio = loadMs / dockerMs;
    const wholeRatio = firstMs / dockerMs;
    const againRatio = againMs / firstMs;
    const perRun = (f: (r: Run) => number, fmt: (n: number) => string) => runs.map((r) => fmt(f(r))).join(', ');
    const pass = (ok: boolean) => (ok ? '**pass**' : '**FAIL**');
    const cpuOf = (f: (r: Run) => number | null) => {
      const xs = runs.map(f).filter((x): x is number => x !== null);
      return xs.length === runs.length ? sec(median(xs)) : 'n/a';
    };

    const results = table(
      ['Measure', `Median of ${runs.length}`, 'Runs', 'Target', 'Result'],
      [
        ['`docker load -i SAVED.tar` (whole process)', sec(dockerMs), perRun((r) => r.dockerLoad.wallMs, sec), 'reference', ''],
        ['airlock import: verify + store', sec(verifyMs), perRun((r) => r.first.imagesStart - r.first.journalOpen, sec), '', ''],
        ['airlock import: load step (images phase)', sec(loadMs), perRun((r) => r.first.imagesEnd - r.first.imagesStart, sec), '', ''],
        ['**load step ÷ docker load**', ratio(loadRatio), perRun((r) => (r.first.imagesEnd - r.first.imagesStart) / r.dockerLoad.wallMs, ratio), '≤ 1.10×', pass(loadRatio <= 1.1)],
        ['airlock import (whole process)', sec(firstMs), perRun((r) => r.first.wallMs, sec), '', ''],
        ['whole import ÷ docker load', ratio(wholeRatio), perRun((r) => r.first.wallMs / r.dockerLoad.wallMs, ratio), 'information', ''],
        ['re-import, images present (whole process)', sec(againMs), perRun((r) => r.again.wallMs, sec), '', ''],
        ['**re-import ÷ first import**', ratio(againRatio), perRun((r) => r.again.wallMs / r.first.wallMs, ratio), '≤ 0.20×', pass(againRatio <= 0.2)],
      ],
    );
    const breakdown = table(
      ['Where the time goes (medians)', 'First import', 'Re-import'],
      [
        ['node start-up, module load, trust store (spawn → Journal.open)', sec(startMs), sec(againStartMs)],
        ['verify + store (Journal.open → first images.find)', `${sec(verifyMs)} (${rate(built.bytes, verifyMs)})`, `${sec(againVerifyMs)} (${rate(built.bytes, againVerifyMs)})`],
        ['images phase: engine lookups and layer checks before the load', sec(preMs), sec(againImagesMs)],
        ['images phase: `POST /images/load` (stream the archive, engine registers layers)', `${sec(postAllMs)} (${rate(imageBytes, postAllMs)})`, '—'],
        ['images phase: id and layer checks after the load', sec(postMs), '—'],
        ['exit (journal close, docker client close, process exit)', sec(exitMs), sec(m((r) => r.again.wallMs - r.again.imagesEnd))],
        ['client CPU, user + sys (GNU time)', cpuOf((r) => r.first.cpuMs), cpuOf((r) => r.again.cpuMs)],
        ['engine CPU, dockerd + reaped children', sec(m((r) => r.first.engineCpuMs)), sec(m((r) => r.again.engineCpuMs))],
        ['`docker load`: client CPU / engine CPU', `${cpuOf((r) => r.dockerLoad.cpuMs)} / ${sec(m((r) => r.dockerLoad.engineCpuMs))}`, ''],
      ],
    );
    const cpuModel = cpus()[0]?.model ?? 'unknown';
    const loadAvgs = runs.flatMap((r) => [r.dockerLoad.loadAvg, r.first.loadAvg, r.again.loadAvg]);
    const fsType = capture('df', ['-T', '-P', work]).split('\n')[1]?.split(/\s+/)[1] ?? 'unknown';
    const facts = [
      `- Docker Engine ${version.Version} (API ${version.ApiVersion}), storage driver ${info.Driver}` +
        `${info.DriverStatus?.length ? ` (${info.DriverStatus.map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}; engine row ${args.engine}; docker CLI ${capture(dockerCli, ['version', '--format', '{{.Client.Version}}'], env)}`,
      `- CPU: ${cpuModel}, ${cpus().length} cores; ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM; Linux ${release()}; work dir on ${fsType}`,
      `- Shared machine: 1-minute load average at the start of each timed step ${loadAvgs.map((x) => x.toFixed(1)).join(', ')}` +
        ` (${args.quietLoad > 0 ? `each step waited up to ${args.quietWait} s for ≤ ${args.quietLoad}` : 'no waiting for quiet'})`,
      `- Node ${process.version}; airlock ${capture('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'])}` +
        `${capture('git', ['-C', repo, 'status', '--porcelain', '--untracked-files=no']) ? ' + uncommitted changes' : ''}`,
      `- Images: ${args.images} (busybox base ${mib(baseSize)} shared, plus one random ${mib(appSize)} app layer each): ${mib(imageBytes)} of layers; ` +
        `SAVED.tar ${mib(savedBytes)}; bundle ${mib(built.bytes)}`,
      `- Command: \`.runtime/node dist/bench/image-load.js --mib ${args.mib} --runs ${args.runs} --images ${args.images}${args.quietLoad > 0 ? ` --quiet-load ${args.quietLoad} --quiet-wait ${args.quietWait}` : ''}${args.airlock ? ` --airlock ${args.airlock}` : ''}${args.engine === 'bookworm' ? '' : ` --engine ${args.engine}`}\`, ${new Date().toISOString().slice(0, 10)}`,
    ].join('\n');
    const body = `${results}\n\n${breakdown}\n\n${facts}\n`;
    process.stdout.write(`${body}`);

    if (args.json) {
      await writeFile(args.json, JSON.stringify({ args, imageBytes, savedBytes, bundleBytes: built.bytes, runs }, null, 2));
    }
    if (args.doc) await writeDocBlock(args.doc, body, args.engine);
  } finally {
    await cleanup();
  }
}

/** One block of figures per engine row: `image-load` on bookworm, `image-load-ROW` on the others. */
const markers = (row: string) => {
  const name = row === 'bookworm' ? 'image-load' : `image-load-${row}`;
  return { begin: `<!-- ${name}:begin (generated by bench/image-load.ts; edit outside these markers) -->`, end: `<!-- ${name}:end -->` };
};

/**
 * Puts the figures between this bench's markers in `file`. The file is read
 * right before it is written, so sections others edit meanwhile survive;
 * without the markers, an "Image loading" section holding them is appended.
 */
async function writeDocBlock(file: string, body: string, row: string): Promise<void> {
  const { existsSync } = await import('node:fs');
  const { readFile, writeFile } = await import('node:fs/promises');
  const { begin, end } = markers(row);
  const block = `${begin}\n${body.trim()}\n${end}`;
  const text = existsSync(file) ? await readFile(file, 'utf8') : '# Benchmarks\n';
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  const title = row === 'bookworm' ? 'Image loading' : `Image loading on ${row}`;
  const next = a >= 0 && b > a ? text.slice(0, a) + block + text.slice(b + end.length) : `${text.trimEnd()}\n\n## ${title}\n\n${block}\n`;
  await writeFile(file, next);
}

const hookOut = process.env[HOOK_ENV];
if (hookOut) {
  await installHook(hookOut);
} else if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    await main();
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  }
}
