/**
 * Stack deploy: whole-process wall time of `airlock stack deploy` against
 * `docker stack deploy` on the same compose files, the same engine, in the
 * same run.
 *
 *   .runtime/node dist/bench/stack-deploy.js [--runs 3] [--airlock PATH] [--quiet-load 1.5] [--quiet-wait 30]
 *                                   [--no-default-wait] [--doc docs/benchmarks.md] [--json FILE] [--keep]
 *
 * It starts a dockerd of its own (a private socket in a network namespace of
 * its own, test/helpers/dockerd.ts), makes it a single-node swarm, loads a
 * busybox image written from code (test/helpers/images.ts) and generates two
 * compose files: 20 services with `deploy.replicas: 1` and 200 services with
 * `deploy.replicas: 0` (200 containers on a 2-core machine would take minutes
 * to start and would still be starting while the next command is timed; the
 * deploy commands' own work, creating the service objects, is the same). Each
 * service: the busybox image, a long sleep (`sh -c "trap 'exit 0' TERM;
 * sleep 86400 & wait"`, so a removal does not wait out the 10 s stop grace),
 * two environment variables, a container label, a deploy label, one shared
 * overlay network.
 *
 * Every run, for each file and each command (the order rotates run by run):
 * the engine is emptied (no service, task, container or stack network left),
 * then
 *  - first deploy, not waiting (timed);
 *  - untimed: wait until every desired task runs;
 *  - re-deploy of the unchanged stack, same command (timed); checked to have
 *    restarted no task;
 * and then, for the 20-service file, a first deploy that waits until the
 * services converged (timed), with the moment the last task started read
 * from the engine afterwards.
 *
 * Commands (DOCKER_HOST names the private daemon for all of them):
 *  - airlock:   bin/airlock stack deploy -c FILE [--detach] STACK
 *  - reference: docker stack deploy -c FILE --resolve-image never --detach=true|false STACK
 *  - default:   docker stack deploy -c FILE [--detach=false] STACK  (resolve-image always)
 *
 * Besides the timed runs, untimed passes show where the time goes: airlock
 * run with `node --import HOOK`, a generated file that timestamps every
 * Engine API request (DockerClient.requestOnce) and writes them out at exit;
 * and every docker command run once through a logging unix-socket proxy that
 * counts its requests.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Docker } from '../src/docker/index.js';
import { PrivateDaemon } from '../test/helpers/dockerd.js';
import { drainEngine } from './lib/drain.js';
import { writeBusyboxLayer, writeImageArchive } from '../test/helpers/images.js';

const HOOK_ENV = 'AIRLOCK_BENCH_STACK_HOOK';
const NAMESPACE = 'com.docker.stack.namespace';
const IMAGE = 'bench-stack/busybox:1';

// ---------------------------------------------------------------------------
// Arguments

interface Args {
  runs: number;
  airlock: string | undefined;
  quietLoad: number;
  quietWait: number;
  defaultWait: boolean;
  doc: string | undefined;
  json: string | undefined;
  keep: boolean;
}

function parseCli(argv: string[]): Args {
  const args: Args = { runs: 3, airlock: undefined, quietLoad: 0, quietWait: 30, defaultWait: true, doc: undefined, json: undefined, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--runs') args.runs = Number(val());
    else if (a === '--airlock') args.airlock = val();
    else if (a === '--quiet-load') args.quietLoad = Number(val());
    else if (a === '--quiet-wait') args.quietWait = Number(val());
    else if (a === '--no-default-wait') args.defaultWait = false;
    else if (a === '--doc') args.doc = val();
    else if (a === '--json') args.json = val();
    else if (a === '--keep') args.keep = true;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        'usage: .runtime/node dist/bench/stack-deploy.js [--runs 3] [--airlock bin/airlock] [--quiet-load 1.5] [--quiet-wait 30]\n' +
          '                                      [--no-default-wait] [--doc docs/benchmarks.md] [--json FILE] [--keep]\n',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!(args.runs >= 1)) throw new Error('--runs must be ≥ 1');
  return args;
}

// ---------------------------------------------------------------------------
// Small helpers

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
const sec = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '—');
const ratio = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : '—');
const table = (header: string[], rows: string[][]) => [header, header.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');

function capture(cmd: string, args: string[], env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: env ?? process.env });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
  return r.stdout.trim();
}

interface Timed {
  wallMs: number;
  /** User + system CPU of the client process (GNU time), or null. */
  cpuMs: number | null;
  /** dockerd's CPU (its own plus reaped children) while the command ran. */
  engineCpuMs: number;
  /** Epoch ms at spawn. */
  spawnEpoch: number;
  loadAvg: number;
  stdout: string;
  stderr: string;
}

let seq = 0;

/** Runs a command to completion; wall time from spawn to exit, under GNU time when present. */
async function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv, tmp: string, engineCpu: () => Promise<number>, loadAvg: number): Promise<Timed> {
  const timeFile = join(tmp, `time-${seq++}`);
  const gnuTime = existsSync('/usr/bin/time');
  const [file, argv] = gnuTime ? ['/usr/bin/time', ['-f', '%U %S', '-o', timeFile, cmd, ...args]] : [cmd, args];
  const before = await engineCpu();
  const spawnEpoch = performance.timeOrigin + performance.now();
  const started = performance.now();
  const child = spawn(file, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number>((res, rej) => {
    child.on('error', rej);
    child.on('close', (c) => res(c ?? -1));
  });
  const wallMs = performance.now() - started;
  const engineCpuMs = (await engineCpu()) - before;
  let cpuMs: number | null = null;
  if (gnuTime) {
    const m = /^([\d.]+) ([\d.]+)$/.exec((await readFile(timeFile, 'utf8').catch(() => '')).trim().split('\n').pop() ?? '');
    if (m) cpuMs = (Number(m[1]) + Number(m[2])) * 1000;
    await rm(timeFile, { force: true });
  }
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${code}\n${stderr}${stdout}`);
  return { wallMs, cpuMs, engineCpuMs, spawnEpoch, loadAvg, stdout, stderr };
}

/** A compose file of `n` services of the busybox image on one shared network. */
function composeFile(n: number, replicas: number): string {
  const width = String(n).length;
  const lines = ["version: '3.8'", 'services:'];
  for (let i = 1; i <= n; i++) {
    const id = String(i).padStart(width, '0');
    lines.push(
      `  svc${id}:`,
      `    image: ${IMAGE}`,
      `    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"]`,
      '    environment:',
      `      APP_NAME: svc${id}`,
      '      APP_MODE: bench',
      '    labels:',
      `      bench.service: svc${id}`,
      '    networks: [shared]',
      '    deploy:',
      `      replicas: ${replicas}`,
      '      labels:',
      `        bench.tier: tier${i % 4}`,
    );
  }
  lines.push('networks:', '  shared: {}', '');
  return lines.join('\n');
}

// ---------------------------------------------------------------------------
// The request hook (runs inside the airlock child, via --import)

/** Source of the hook: timestamps each Engine API request of the child and writes them at exit. */
const HOOK_SOURCE = `
import { writeFileSync } from 'node:fs';
const cfg = JSON.parse(process.env.${HOOK_ENV});
const rec = { timeOrigin: performance.timeOrigin, hookAt: performance.now(), requests: [] };
const { DockerClient } = await import(cfg.client);
const orig = DockerClient.prototype.requestOnce;
DockerClient.prototype.requestOnce = async function (method, path, opts) {
  const r = { method, path, unversioned: !!opts && opts.versioned === false, start: performance.now(), end: 0 };
  rec.requests.push(r);
  try {
    const res = await orig.call(this, method, path, opts);
    r.end = performance.now();
    res.body.once('end', () => { r.end = performance.now(); });
    return res;
  } catch (e) {
    r.end = performance.now();
    r.error = String(e && e.message);
    throw e;
  }
};
process.on('exit', () => { rec.exitAt = performance.now(); writeFileSync(cfg.out, JSON.stringify(rec)); });
`;

interface HookRecord {
  timeOrigin: number;
  hookAt: number;
  exitAt: number;
  requests: { method: string; path: string; unversioned: boolean; start: number; end: number; error?: string }[];
}

/** Phases of one airlock run, ms after spawn. */
interface Phases {
  /** Spawn → first Engine API request: node, the module graph, argument parsing, reading the file. */
  startup: number;
  /** API version negotiation (GET /_ping). */
  negotiate: number;
  /** Negotiation → next request: compose load (YAML, schema validation), interpolation, conversion. */
  compose: number;
  /** First stack request → last deploy request: state read, plan, creates/updates. */
  engine: number;
  /** Last deploy request → last request: convergence polling (waiting runs only). */
  wait: number;
  /** Last request → process exit. */
  exit: number;
  requests: number;
  byKind: Record<string, number>;
}

function phasesOf(rec: HookRecord, spawnEpoch: number, wallMs: number): Phases {
  const off = rec.timeOrigin - spawnEpoch;
  const reqs = rec.requests.map((r) => ({ ...r, start: r.start + off, end: r.end + off }));
  // Negotiation requests are the only unversioned ones (GET /_ping, maybe GET /version).
  const nego = reqs.filter((r) => r.unversioned);
  const rest = reqs.filter((r) => !r.unversioned);
  const first = reqs[0]?.start ?? wallMs;
  const negoEnd = nego.length ? Math.max(...nego.map((r) => r.end)) : first;
  const restStart = rest.length ? Math.min(...rest.map((r) => r.start)) : negoEnd;
  const writes = rest.filter((r) => r.method !== 'GET');
  const lastEnd = reqs.length ? Math.max(...reqs.map((r) => r.end)) : wallMs;
  const deployEnd = writes.length ? Math.max(...writes.map((r) => r.end)) : lastEnd;
  const isWait = rest.some((r) => r.path.includes('/tasks'));
  const engineEnd = isWait ? deployEnd : lastEnd;
  return {
    startup: first,
    negotiate: negoEnd - first,
    compose: restStart - negoEnd,
    engine: engineEnd - restStart,
    wait: isWait ? lastEnd - deployEnd : 0,
    exit: wallMs - lastEnd,
    requests: reqs.length,
    byKind: countKinds(reqs.map((r) => `${r.method} ${r.path}`)),
  };
}

/** `POST /v1.41/services/abc/update?version=3` → `POST /services/{id}/update`. */
function requestKind(line: string): string {
  const [method = '', full = ''] = line.split(' ');
  let path = full.split('?')[0]!.replace(/^\/v\d+\.\d+/, '');
  path = path.replace(/^\/distribution\/.+\/json$/, '/distribution/{image}/json');
  path = path.replace(/^\/(services|networks|tasks|secrets|configs|nodes|containers)\/(?!create$)([^/]+)/, '/$1/{id}');
  return `${method} ${path}`;
}

function countKinds(lines: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of lines) {
    const k = requestKind(l);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** A unix-socket proxy in front of the daemon that records each request line (untimed runs only). */
async function countingProxy(path: string, upstream: string): Promise<{ server: Server; take: () => string[] }> {
  let lines: string[] = [];
  const server = createServer((client) => {
    const up = createConnection(upstream);
    // A request line may follow a JSON body directly (keep-alive) and may be split across
    // chunks: scan the previous chunk's tail again, counting each match once by its offset.
    let carry = '';
    let offset = 0;
    let lastEnd = 0;
    client.on('data', (d: Buffer) => {
      const text = carry + d.toString('latin1');
      const base = offset - carry.length;
      for (const m of text.matchAll(/(GET|POST|PUT|DELETE|HEAD) (\/\S*) HTTP\/1\.[01]\r\n/g)) {
        const end = base + m.index + m[0].length;
        if (end <= lastEnd) continue;
        lastEnd = end;
        lines.push(`${m[1]} ${m[2]}`);
      }
      offset += d.length;
      carry = text.slice(-2048);
    });
    client.pipe(up);
    up.pipe(client);
    const end = () => {
      client.destroy();
      up.destroy();
    };
    client.on('error', end);
    up.on('error', end);
    client.on('close', end);
    up.on('close', end);
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(path, res);
  });
  return {
    server,
    take: () => {
      const out = lines;
      lines = [];
      return out;
    },
  };
}

// ---------------------------------------------------------------------------
// The benchmark

type Tool = 'airlock' | 'never' | 'always';
const TOOLS: Tool[] = ['airlock', 'never', 'always'];
type SizeKey = 's20' | 's200';

interface DetachedRun {
  first: Timed;
  again: Timed;
  /** Services whose Version.Index the re-deploy bumped (an update call each). */
  againUpdated: number;
  /** Tasks the re-deploy replaced (must be 0). */
  againRestarted: number;
}

interface WaitRun {
  timed: Timed;
  /** When the last task of the stack started running, ms after spawn (engine timestamps). */
  allRunningMs: number;
}

interface Results {
  detached: Record<SizeKey, Record<Tool, DetachedRun[]>>;
  wait: Partial<Record<Tool, WaitRun[]>>;
  phases: Record<string, Phases[]>;
  requests: Record<string, Record<string, number>>;
}

async function main(): Promise<void> {
  const args = parseCli(process.argv.slice(2));
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const work = await mkdtemp(join(tmpdir(), 'airlock-bench-stack-deploy-'));
  const log = (s: string) => process.stderr.write(`[stack-deploy] ${s}\n`);
  const benchStarted = Date.now();

  // Others rebuild dist/ and reinstall modules while this runs; measure a copy taken now.
  let cli: string;
  if (args.airlock) cli = resolve(args.airlock);
  else {
    const snap = join(work, 'airlock');
    await cp(join(repo, 'dist', 'src'), join(snap, 'dist', 'src'), { recursive: true });
    await cp(join(repo, 'bin'), join(snap, 'bin'), { recursive: true });
    await cp(join(repo, 'package.json'), join(snap, 'package.json'));
    await cp(join(repo, 'node_modules'), join(snap, 'node_modules'), { recursive: true, verbatimSymlinks: true });
    cli = join(snap, 'bin', 'airlock');
  }
  const airlockRoot = dirname(dirname(cli));
  const hookFile = join(work, 'hook.mjs');
  await writeFile(hookFile, HOOK_SOURCE);

  const daemon = new PrivateDaemon(join(work, 'engine'));
  let proxy: Server | undefined;
  let docker: Docker | undefined;
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    proxy?.close();
    await docker?.close().catch(() => undefined);
    await daemon.destroy().catch((e: unknown) => log(`daemon cleanup: ${String(e)}`));
    if (!args.keep) await rm(work, { recursive: true, force: true });
    else log(`kept ${work}`);
  };
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    // --- Engine: a single-node swarm with the busybox image.
    log(`starting a private dockerd under ${work}`);
    await daemon.start();
    docker = daemon.client();
    const d = docker;
    await d.swarm.init({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: '127.0.0.1' });
    const base = join(work, 'base.tar');
    const baseId = await writeBusyboxLayer(base);
    const archive = join(work, 'image.tar');
    await writeImageArchive(archive, [{ refs: [IMAGE], layers: [{ path: base, diffId: baseId }], cmd: ['sh'] }], 'oci');
    await d.images.loadAll(() => createReadStream(archive));
    const version = await d.system.version();
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: daemon.dockerHost };
    delete env[HOOK_ENV];
    const dockerCli = capture('docker', ['version', '--format', '{{.Client.Version}}'], env);
    const pidFile = join(daemon.dir, 'docker.pid');
    const clkTck = Number(capture('getconf', ['CLK_TCK']));
    const dockerdPid = (await readFile(pidFile, 'utf8')).trim();
    const engineCpu = async () => {
      const stat = await readFile(`/proc/${dockerdPid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return ([11, 12, 13, 14].reduce((n, i) => n + Number(f[i]), 0) * 1000) / clkTck;
    };

    // --- Compose files.
    const sizes: Record<SizeKey, { n: number; replicas: number; file: string; stack: string }> = {
      s20: { n: 20, replicas: 1, file: join(work, 'stack-20.yml'), stack: 'bench20' },
      s200: { n: 200, replicas: 0, file: join(work, 'stack-200.yml'), stack: 'bench200' },
    };
    for (const s of Object.values(sizes)) await writeFile(s.file, composeFile(s.n, s.replicas));

    const command = (tool: Tool, file: string, stack: string, wait: boolean): [string, string[]] => {
      if (tool === 'airlock') return [process.execPath, [cli, 'stack', 'deploy', '-c', file, ...(wait ? [] : ['--detach']), stack]];
      if (tool === 'never') return ['docker', ['stack', 'deploy', '-c', file, '--resolve-image', 'never', `--detach=${!wait}`, stack]];
      return ['docker', ['stack', 'deploy', '-c', file, ...(wait ? ['--detach=false'] : []), stack]];
    };

    // --- Engine helpers.
    const quiet = async (): Promise<number> => {
      const until = Date.now() + args.quietWait * 1000;
      while (args.quietLoad > 0 && loadavg()[0]! > args.quietLoad && Date.now() < until) await sleep(1000);
      return loadavg()[0]!;
    };
    const containers = async () =>
      (await d.client.json<unknown[]>('GET', '/containers/json', { query: { all: true, filters: JSON.stringify({ label: [NAMESPACE] }) } })).length;
    /** Removes every service, task, container and stack network, and checks that none is left. */
    const emptyEngine = async () => {
      for (const s of await d.services.list()) await d.services.delete(s.ID);
      await drainEngine(d, containers, [NAMESPACE]);
      const left = await d.services.list();
      if (left.length > 0) throw new Error(`services left: ${left.length}`);
    };
    const stackServices = (stack: string, status = false) => d.services.list({ status, filters: { label: [`${NAMESPACE}=${stack}`] } });
    /**
     * Until every service of the stack runs all its desired tasks and the engine has stopped
     * changing the services (the allocator bumps a new service's version once it has its
     * network address): two reads 500 ms apart with the same versions.
     */
    const settle = async (stack: string, n: number) => {
      const deadline = Date.now() + 180_000;
      let previous = '';
      for (;;) {
        const svcs = await stackServices(stack, true);
        const ready = svcs.length === n && svcs.every((s) => (s.ServiceStatus?.RunningTasks ?? -1) >= (s.ServiceStatus?.DesiredTasks ?? 0));
        const versions = svcs.map((s) => `${s.ID}:${s.Version.Index}`).sort().join(',');
        if (ready && versions === previous) return svcs;
        previous = ready ? versions : '';
        if (Date.now() > deadline) throw new Error(`stack ${stack} did not settle`);
        await sleep(500);
      }
    };
    const runningTasks = async (stack: string) => {
      const ids = (await stackServices(stack)).map((s) => s.ID);
      if (ids.length === 0) return [];
      return (await d.tasks.list({ filters: { service: ids, 'desired-state': ['running'] } })).filter((t) => t.Status.State === 'running');
    };

    const results: Results = {
      detached: { s20: { airlock: [], never: [], always: [] }, s200: { airlock: [], never: [], always: [] } },
      wait: {},
      phases: {},
      requests: {},
    };
    const addPhases = (key: string, p: Phases) => (results.phases[key] ??= []).push(p);

    /** One airlock run under the request hook; returns its phases. */
    const hooked = async (file: string, stack: string, wait: boolean): Promise<Phases> => {
      const out = join(work, `hook-${seq}.json`);
      const [cmd, argv] = command('airlock', file, stack, wait);
      const hookEnv = { ...env, [HOOK_ENV]: JSON.stringify({ out, client: pathToFileURL(join(airlockRoot, 'dist', 'src', 'docker', 'client.js')).href }) };
      const t = await timed(cmd, ['--import', pathToFileURL(hookFile).href, ...argv], hookEnv, work, engineCpu, await quiet());
      const rec = JSON.parse(await readFile(out, 'utf8')) as HookRecord;
      await rm(out, { force: true });
      return phasesOf(rec, t.spawnEpoch, t.wallMs);
    };

    // --- Warm-up: one untimed deploy and removal with each command, so no one pays for first-use costs
    // (page cache, the engine's first overlay network, the docker CLI's config read).
    log('warm-up');
    for (const tool of TOOLS) {
      await emptyEngine();
      const [cmd, argv] = command(tool, sizes.s20.file, sizes.s20.stack, false);
      await timed(cmd, argv, env, work, engineCpu, 0);
      await settle(sizes.s20.stack, sizes.s20.n);
    }

    // --- Timed runs.
    for (let r = 0; r < args.runs; r++) {
      const order = TOOLS.map((_, i) => TOOLS[(i + r) % TOOLS.length]!);
      for (const key of ['s20', 's200'] as SizeKey[]) {
        const { n, file, stack } = sizes[key];
        for (const tool of order) {
          await emptyEngine();
          const [cmd, argv] = command(tool, file, stack, false);
          const first = await timed(cmd, argv, env, work, engineCpu, await quiet());
          const before = await settle(stack, n);
          const tasksBefore = new Set((await runningTasks(stack)).map((t) => t.ID));
          await sleep(500);
          const again = await timed(cmd, argv, env, work, engineCpu, await quiet());
          const after = await settle(stack, n);
          const tasksAfter = new Set((await runningTasks(stack)).map((t) => t.ID));
          const versions = new Map(before.map((s) => [s.ID, s.Version.Index]));
          const againUpdated = after.filter((s) => versions.get(s.ID) !== s.Version.Index).length;
          const againRestarted = [...tasksBefore].filter((id) => !tasksAfter.has(id)).length;
          if (againRestarted > 0) throw new Error(`${tool}: the re-deploy of ${stack} replaced ${againRestarted} tasks`);
          results.detached[key][tool].push({ first, again, againUpdated, againRestarted });
          log(`run ${r + 1}/${args.runs} ${n} services ${tool.padEnd(7)}: first ${sec(first.wallMs)}, again ${sec(again.wallMs)} (${againUpdated} services updated)`);
        }
        // Where airlock's time goes: the same two commands under the request hook (not part of the medians above).
        await emptyEngine();
        addPhases(`${key}-first`, await hooked(file, stack, false));
        await settle(stack, n);
        await sleep(500);
        addPhases(`${key}-again`, await hooked(file, stack, false));
      }
      // Deploy and wait, 20 services.
      const waitTools: Tool[] = args.defaultWait ? order : order.filter((t) => t !== 'always');
      const { n, file, stack } = sizes.s20;
      for (const tool of waitTools) {
        await emptyEngine();
        const [cmd, argv] = command(tool, file, stack, true);
        const t = await timed(cmd, argv, env, work, engineCpu, await quiet());
        const tasks = await runningTasks(stack);
        if (tasks.length !== n) throw new Error(`${tool} returned with ${tasks.length}/${n} tasks running`);
        // Engine timestamps carry nanoseconds; Date.parse wants at most milliseconds.
        const startedAt = Math.max(...tasks.map((x) => Date.parse((x.Status.Timestamp ?? '').replace(/(\.\d{3})\d*/, '$1'))));
        (results.wait[tool] ??= []).push({ timed: t, allRunningMs: startedAt - t.spawnEpoch });
        log(`run ${r + 1}/${args.runs} wait ${tool.padEnd(7)}: ${sec(t.wallMs)} (last task running at ${sec(startedAt - t.spawnEpoch)})`);
      }
      await emptyEngine();
      addPhases('wait', await hooked(file, stack, true));
    }

    // --- Request counts: every command once more, through a counting proxy (untimed).
    log('request counts');
    const proxyPath = join(work, 'proxy.sock');
    const counting = await countingProxy(proxyPath, daemon.socket);
    proxy = counting.server;
    const proxyEnv = { ...env, DOCKER_HOST: `unix://${proxyPath}` };
    for (const key of ['s20', 's200'] as SizeKey[]) {
      const { n, file, stack } = sizes[key];
      for (const tool of TOOLS) {
        await emptyEngine();
        const [cmd, argv] = command(tool, file, stack, false);
        counting.take();
        await timed(cmd, argv, proxyEnv, work, engineCpu, 0);
        results.requests[`${key}-first-${tool}`] = countKinds(counting.take());
        await settle(stack, n);
        await timed(cmd, argv, proxyEnv, work, engineCpu, 0);
        results.requests[`${key}-again-${tool}`] = countKinds(counting.take());
      }
    }
    await emptyEngine();
    {
      const [cmd, argv] = command('airlock', sizes.s20.file, sizes.s20.stack, true);
      counting.take();
      await timed(cmd, argv, proxyEnv, work, engineCpu, 0);
      results.requests['wait-airlock'] = countKinds(counting.take());
    }
    await emptyEngine();
    proxy.close();
    proxy = undefined;

    // --- Report.
    const body = report(results, {
      args,
      sizes,
      engine: `${version.Version} (API ${version.ApiVersion})`,
      dockerCli,
      repo,
      minutes: (Date.now() - benchStarted) / 60000,
    });
    process.stdout.write(`${body}\n`);
    if (args.json) await writeFile(args.json, JSON.stringify({ args, results }, null, 2));
    if (args.doc) await writeDocBlock(args.doc, body);
  } finally {
    await cleanup();
  }
}

// ---------------------------------------------------------------------------
// Report

interface ReportContext {
  args: Args;
  sizes: Record<SizeKey, { n: number; replicas: number }>;
  engine: string;
  dockerCli: string;
  repo: string;
  minutes: number;
}

const TARGETS = {
  's20-first': 1.5,
  's200-first': 1.0,
  's20-again': 1.0,
  's200-again': 0.5,
  wait: 1.0,
};

function report(res: Results, ctx: ReportContext): string {
  const pass = (r: number, t: number) => (r <= t ? '**pass**' : '**FAIL**');
  const runsOf = (xs: number[]) => xs.map((x) => (x / 1000).toFixed(2)).join(', ');
  const rows: string[][] = [];
  const cpu = (xs: (number | null)[]) => (xs.every((x) => x !== null) ? sec(median(xs as number[])) : 'n/a');
  const detachedRow = (key: SizeKey, which: 'first' | 'again', label: string) => {
    const runs = res.detached[key];
    const a = runs.airlock.map((r) => r[which].wallMs);
    const d = runs.never.map((r) => r[which].wallMs);
    const def = runs.always.map((r) => r[which].wallMs);
    const ratioMed = median(a) / median(d);
    const target = TARGETS[`${key}-${which}`];
    const { n, replicas } = ctx.sizes[key];
    rows.push([
      label,
      `${n} (replicas ${replicas})`,
      `${sec(median(a))} (${runsOf(a)})`,
      `${sec(median(d))} (${runsOf(d)})`,
      `**${ratio(ratioMed)}**`,
      `≤ ${target.toFixed(1)}×`,
      pass(ratioMed, target),
      `${sec(median(def))} (${ratio(median(def) / median(d))})`,
    ]);
  };
  detachedRow('s20', 'first', 'first deploy, not waiting');
  detachedRow('s200', 'first', 'first deploy, not waiting');
  detachedRow('s20', 'again', 're-deploy, unchanged');
  detachedRow('s200', 'again', 're-deploy, unchanged');
  const wa = (res.wait.airlock ?? []).map((r) => r.timed.wallMs);
  const wd = (res.wait.never ?? []).map((r) => r.timed.wallMs);
  const wdef = (res.wait.always ?? []).map((r) => r.timed.wallMs);
  const waitRatio = median(wa) / median(wd);
  rows.push([
    'first deploy, waiting for convergence',
    `${ctx.sizes.s20.n} (replicas ${ctx.sizes.s20.replicas})`,
    `${sec(median(wa))} (${runsOf(wa)})`,
    `${sec(median(wd))} (${runsOf(wd)})`,
    `**${ratio(waitRatio)}**`,
    `≤ ${TARGETS.wait.toFixed(1)}×`,
    pass(waitRatio, TARGETS.wait),
    wdef.length ? `${sec(median(wdef))} (${ratio(median(wdef) / median(wd))})` : 'not run',
  ]);
  const results = table(
    ['Measure', 'Services', 'airlock: median (runs), s', '`docker stack deploy --resolve-image never`: median (runs), s', 'airlock ÷ docker', 'Target', 'Result', 'default `docker stack deploy` (÷ never)'],
    rows,
  );

  // Client and engine CPU.
  const cpuRows: string[][] = [];
  for (const key of ['s20', 's200'] as SizeKey[]) {
    for (const which of ['first', 'again'] as const) {
      const cells = TOOLS.map((t) => {
        const runs = res.detached[key][t];
        return `${cpu(runs.map((r) => r[which].cpuMs))} / ${sec(median(runs.map((r) => r[which].engineCpuMs)))}`;
      });
      cpuRows.push([`${which === 'first' ? 'first deploy' : 're-deploy'}, ${ctx.sizes[key].n} services`, ...cells]);
    }
  }
  const waitCells = TOOLS.map((t) => {
    const runs = res.wait[t] ?? [];
    return runs.length ? `${cpu(runs.map((r) => r.timed.cpuMs))} / ${sec(median(runs.map((r) => r.timed.engineCpuMs)))}` : '—';
  });
  cpuRows.push([`deploy and wait, ${ctx.sizes.s20.n} services`, ...waitCells]);
  const cpuTable = table(['CPU, medians: client (user + sys) / dockerd', 'airlock', 'docker, never', 'docker, default'], cpuRows);

  // Where airlock's time goes.
  const ph = (key: string, f: (p: Phases) => number) => sec(median((res.phases[key] ?? []).map(f)));
  const keys = ['s20-first', 's200-first', 's20-again', 's200-again', 'wait'];
  const phaseRows: [string, (p: Phases) => number][] = [
    ['spawn → first API request (node start-up, module graph, argument parsing)', (p) => p.startup],
    ['API version negotiation (`GET /_ping`)', (p) => p.negotiate],
    ['compose load, schema validation, conversion (no requests)', (p) => p.compose],
    ['engine: read stack state, plan, create/update', (p) => p.engine],
    ['waiting for convergence (polls)', (p) => p.wait],
    ['last request → exit', (p) => p.exit],
    ['**whole process (hooked run)**', (p) => p.startup + p.negotiate + p.compose + p.engine + p.wait + p.exit],
  ];
  const phases = table(
    ['airlock phases, medians of hooked runs', 'first, 20', 'first, 200', 're-deploy, 20', 're-deploy, 200', 'deploy and wait, 20'],
    [
      ...phaseRows.map(([label, f]) => [label, ...keys.map((k) => ph(k, f))]),
      ['Engine API requests', ...keys.map((k) => String(median((res.phases[k] ?? []).map((p) => p.requests))))],
    ],
  );

  // Request counts.
  const reqKeys: [string, string][] = [
    ['s20-first', 'first, 20'],
    ['s200-first', 'first, 200'],
    ['s20-again', 're-deploy, 20'],
    ['s200-again', 're-deploy, 200'],
  ];
  const total = (c: Record<string, number> | undefined) => (c ? Object.values(c).reduce((a, b) => a + b, 0) : 0);
  const summarize = (c: Record<string, number> | undefined) =>
    c
      ? Object.entries(c)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${v}× \`${k}\``)
          .join(', ')
      : '—';
  const reqRows = reqKeys.flatMap(([k, label]) =>
    TOOLS.map((t) => [label, t === 'airlock' ? 'airlock' : t === 'never' ? 'docker, never' : 'docker, default', String(total(res.requests[`${k}-${t}`])), summarize(res.requests[`${k}-${t}`])]),
  );
  reqRows.push(['deploy and wait, 20', 'airlock', String(total(res.requests['wait-airlock'])), summarize(res.requests['wait-airlock'])]);
  const requests = table(['Engine API requests (one proxied run each)', 'Command', 'Requests', 'By kind'], reqRows);

  // The wait.
  const n20 = ctx.sizes.s20.n;
  const waitRows = TOOLS.filter((t) => (res.wait[t] ?? []).length > 0).map((t) => {
    const runs = res.wait[t]!;
    const wall = median(runs.map((r) => r.timed.wallMs));
    const up = median(runs.map((r) => r.allRunningMs));
    const how =
      t === 'airlock'
        ? 'one 5 s window for the whole stack (same task ids running throughout), polled every 1 s'
        : `one 5 s window per service (update monitor), ${n20} in sequence, polled every 200 ms: ${sec((wall - up) / n20)} per service`;
    return [t === 'airlock' ? 'airlock' : t === 'never' ? 'docker, never' : 'docker, default', sec(up), sec(wall), sec(wall - up), how];
  });
  const waitTable = table([`Deploy and wait, ${n20} services, medians`, 'last task running at', 'command returned at', 'waited after that', 'stability check'], waitRows);

  const updated = (t: Tool, key: SizeKey) => median(res.detached[key][t].map((r) => r.againUpdated));
  const loads = [
    ...Object.values(res.detached).flatMap((byTool) => Object.values(byTool).flatMap((runs) => runs.flatMap((r) => [r.first.loadAvg, r.again.loadAvg]))),
    ...Object.values(res.wait).flatMap((runs) => runs.map((r) => r.timed.loadAvg)),
  ];
  const git = (a: string[]) => spawnSync('git', ['-C', ctx.repo, ...a], { encoding: 'utf8' }).stdout.trim();
  const cmdLine =
    `.runtime/node dist/bench/stack-deploy.js --runs ${ctx.args.runs}` +
    `${ctx.args.quietLoad > 0 ? ` --quiet-load ${ctx.args.quietLoad} --quiet-wait ${ctx.args.quietWait}` : ''}` +
    `${ctx.args.defaultWait ? '' : ' --no-default-wait'}${ctx.args.airlock ? ` --airlock ${ctx.args.airlock}` : ''}`;
  const facts = [
    `- Docker Engine ${ctx.engine}, single-node swarm in its own network namespace; docker CLI ${ctx.dockerCli}`,
    `- CPU: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores; ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM; Linux ${release()}`,
    `- Node ${process.version}; airlock ${git(['rev-parse', '--short', 'HEAD'])}${git(['status', '--porcelain', '--untracked-files=no']) ? ' + uncommitted changes' : ''}`,
    `- Shared machine: 1-minute load average at the start of the timed commands: median ${median(loads).toFixed(1)}, ` +
      `range ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}` +
      `${ctx.args.quietLoad > 0 ? ` (each waited up to ${ctx.args.quietWait} s for ≤ ${ctx.args.quietLoad})` : ''}`,
    `- Re-deploys of an unchanged stack restarted no task. Services updated by a re-deploy (median): ` +
      `airlock ${updated('airlock', 's20')} of 20 and ${updated('airlock', 's200')} of 200; ` +
      `docker ${updated('never', 's20')} of 20 and ${updated('never', 's200')} of 200`,
    `- Command: \`${cmdLine}\`, ${new Date().toISOString().slice(0, 10)}, ${ctx.args.runs} runs, medians; whole bench ${ctx.minutes.toFixed(1)} min`,
  ].join('\n');
  return `${results}\n\n${waitTable}\n\n${phases}\n\n${cpuTable}\n\n${requests}\n\n${facts}\n`;
}

const BEGIN = '<!-- stack-deploy:begin (generated by bench/stack-deploy.ts; edit outside these markers) -->';
const END = '<!-- stack-deploy:end -->';

/**
 * Puts the figures between this bench's markers in `file`, read right before
 * it is written so that sections others edit meanwhile survive; without the
 * markers, a "Stack deploy" section holding them is appended.
 */
async function writeDocBlock(file: string, body: string): Promise<void> {
  const block = `${BEGIN}\n${body.trim()}\n${END}`;
  const text = existsSync(file) ? await readFile(file, 'utf8') : '# Benchmarks\n';
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  const next = a >= 0 && b > a ? text.slice(0, a) + block + text.slice(b + END.length) : `${text.trimEnd()}\n\n## Stack deploy\n\n${block}\n`;
  await writeFile(file, next);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    await main();
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  }
}

export { composeFile, countingProxy, phasesOf, requestKind };
