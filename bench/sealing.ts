/**
 * Sealed secrets (issue 19): what sealing at build time and unsealing at
 * apply time add to the demo, and what this branch adds to bundles without
 * secrets. Target: sealing and unsealing add at most 5% to build and apply
 * time of the demo, and nothing measurable to bundles without secrets.
 *
 *   npm run build && .runtime/node dist/bench/sealing.js [--runs 5] [--short-runs 20] [--airlock PATH]
 *       [--baseline-airlock PATH] [--doc docs/benchmarks.md] [--json FILE] [--keep]
 *
 * --runs counts the applies (each some 8 s, most of it the wait for the
 * stack to converge, plus an untimed removal); --short-runs the commands of
 * half a second (build, import, --version), whose spread on a shared 2-core
 * machine is as large as the effect looked for.
 *
 * The demo is bundles/demo with its image written as scripts/demo writes it
 * (scripts/lib/image-archive.sh: Debian's static busybox, the same bytes on
 * every run). The demo with a secret adds one compose secret to the web
 * service, `secrets: {db_password: {file: ./secrets/db_password}}`, whose
 * file the definition carries under `files:`. Every command is a whole
 * process on the packaged runtime, timed from spawn to exit (under GNU time,
 * which also gives its CPU); the variants of one measure run interleaved, in
 * an order that rotates run by run, so that drift in the shared machine's
 * load hits them alike. Each measure gets one untimed warm-up per variant.
 *
 *  1. `bundle build` of the demo with a secret: unsealed, `--seal-to` one
 *     site, `--seal-to` three sites; each into an empty output folder.
 *  2. `bundle apply` of those bundles (unsealed with `--allow-unsealed`,
 *     sealed to one site with `--identity`) on a private single-node swarm
 *     (test/helpers/apply.ts startBench), a fresh state dir each run; before
 *     each, untimed, the stack, its secrets and network are removed and the
 *     engine is waited on until no task or container is left. The image
 *     stays loaded: every variant finds it alike. Apply waits for the stack
 *     to converge (most of its time), so `bundle import --no-load` (verify,
 *     store, open each sealed file once) is timed too, a fresh state each.
 *  3. With --baseline-airlock (the tree before sealed secrets): the same
 *     builds, imports and applies of the demo with a secret by the baseline
 *     (which carries the secret in clear) as a further variant of 1 and 2;
 *     and `bundle build` and `bundle apply` of the plain demo, `airlock
 *     status` on the state just applied and `airlock --version`, with this
 *     branch's CLI against the baseline's. Each CLI applies the bundle it
 *     built.
 *
 * Besides the timed runs: which commands load the age library at all (a
 * module hook, `node --import`, records every module resolved under
 * node_modules/age-encryption), and, in fresh processes, what loading age
 * costs and what the first seal and unseal cost after it.
 */
import { createHash } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import type { Docker } from '../src/docker/index.js';
import { startBench, type Bench } from '../test/helpers/apply.js';
import { writeGeneratedBlock } from './lib/doc.js';
import { drainEngine } from './lib/drain.js';
import { machineFacts } from './lib/machine.js';
import { capture, timed, type Timed } from './lib/proc.js';
import { snapshotAirlock } from './lib/snapshot.js';
import { fmtRatio, fmtSec, mdTable, median } from './lib/stats.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const STACK = 'demo';
const NAMESPACE = 'com.docker.stack.namespace';
const TARGET = 1.05;
const HOOK_ENV = 'AIRLOCK_BENCH_AGE_HOOK';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    'short-runs': { type: 'string', default: '20' },
    airlock: { type: 'string' },
    'baseline-airlock': { type: 'string' },
    doc: { type: 'string' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const shortRuns = Number(values['short-runs']);
if (!(runs >= 1) || !(shortRuns >= 1)) throw new Error('--runs and --short-runs must be ≥ 1');

const log = (m: string) => process.stderr.write(`[sealing] ${m}\n`);

/** Records every module resolved under node_modules/age-encryption; written at exit to the file the env names. */
const HOOK_SOURCE = `
import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';
const seen = new Set();
registerHooks({
  resolve(specifier, context, next) {
    const r = next(specifier, context);
    if (r.url.includes('/node_modules/age-encryption/')) seen.add(r.url);
    return r;
  },
});
process.on('exit', () => writeFileSync(process.env.${HOOK_ENV}, JSON.stringify([...seen])));
`;

/** One timed command: wall and CPU time, and the machine's load when it started. */
interface Sample {
  wallMs: number;
  cpuMs: number | null;
  load: number;
}

/** The samples of one measure, by variant. */
type Samples = Record<string, Sample[]>;

const walls = (xs: Sample[]) => xs.map((x) => x.wallMs);
const cpuOf = (xs: Sample[]) => (xs.every((x) => x.cpuMs !== null) ? median(xs.map((x) => x.cpuMs!)) : NaN);
const spread = (xs: Sample[]) => `${fmtSec(Math.min(...walls(xs)))}–${fmtSec(Math.max(...walls(xs)))}`;

/**
 * Runs `variants` `runs` times each, interleaved, the order rotating run by
 * run (A B C, B C A, …), after one untimed warm-up each; `before` runs
 * untimed ahead of each command.
 */
async function interleaved(
  label: string,
  runs: number,
  variants: Record<string, () => Promise<Timed>>,
  before: (variant: string) => Promise<void> = async () => {},
): Promise<Samples> {
  const names = Object.keys(variants);
  const out: Samples = Object.fromEntries(names.map((n) => [n, []]));
  for (const n of names) {
    await before(n);
    await variants[n]!();
  }
  for (let r = 0; r < runs; r++) {
    const order = names.map((_, i) => names[(i + r) % names.length]!);
    for (const n of order) {
      await before(n);
      const load = loadavg()[0]!;
      const t = await variants[n]!();
      out[n]!.push({ wallMs: t.wallMs, cpuMs: t.cpuMs, load });
    }
    if (runs <= 10 || (r + 1) % 5 === 0) log(`${label} run ${r + 1}/${runs}: ${order.map((n) => `${n} ${fmtSec(out[n]!.at(-1)!.wallMs)}`).join(', ')}`);
  }
  return out;
}

/** The demo project (bundles/demo and its image, as scripts/demo writes it) in `dir`. */
async function demoProject(dir: string, image: string): Promise<string> {
  await cp(join(REPO, 'bundles', 'demo'), dir, { recursive: true });
  await mkdir(join(dir, 'images'), { recursive: true });
  await cp(image, join(dir, 'images', 'web.tar'));
  return join(dir, 'bundle.yaml');
}

/** The demo with one compose secret on the web service, its file carried under `files:`. */
async function secretProject(dir: string, image: string): Promise<string> {
  const def = await demoProject(dir, image);
  const composeFile = join(dir, 'docker-compose.yml');
  const compose = YAML.parse(await readFile(composeFile, 'utf8')) as { services: Record<string, Record<string, unknown>>; secrets?: unknown };
  compose.secrets = { db_password: { file: './secrets/db_password' } };
  compose.services.web!.secrets = ['db_password'];
  await writeFile(composeFile, YAML.stringify(compose));
  await writeFile(join(dir, 'db_password'), 'pin-271828\n');
  const definition = YAML.parse(await readFile(def, 'utf8')) as { files: { src: string; dest: string; mode?: number }[] };
  definition.files.push({ src: 'db_password', dest: 'secrets/db_password', mode: 0o400 });
  await writeFile(def, YAML.stringify(definition));
  return def;
}

const sha256File = async (f: string) => createHash('sha256').update(await readFile(f)).digest('hex');

async function main(): Promise<void> {
  const started = Date.now();
  const bench: Bench = await startBench('airlock-bench-sealing-');
  const work = bench.dir;
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    if (values.keep) {
      await bench.docker.close();
      await bench.daemon.destroy();
      log(`kept ${work}`);
    } else await bench.close();
  };
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const d: Docker = bench.docker;
    // Others rebuild dist/ and reinstall modules while this runs: measure copies taken now.
    const cli = values.airlock ? resolve(values.airlock) : await snapshotAirlock(REPO, join(work, 'branch'));
    const baseline = values['baseline-airlock'] ? await snapshotAirlock(dirname(dirname(resolve(values['baseline-airlock']))), join(work, 'baseline')) : undefined;
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: bench.daemon.dockerHost, SOURCE_DATE_EPOCH: '1796601600' };
    for (const k of ['AIRLOCK_STATE_DIR', 'AIRLOCK_TRUST_DIR', 'AIRLOCK_SITE_KEYS', 'AIRLOCK_AGENT_CONFIG', HOOK_ENV]) delete env[k];
    const run = (airlock: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []) =>
      timed(process.execPath, [...nodeArgs, airlock, ...args], { env: { ...env, ...extraEnv } });

    // --- Projects, keys.
    log(`work folder ${work}`);
    const image = join(work, 'web.tar');
    capture('bash', [
      '-c',
      '. "$1" && busybox_rootfs "$2" www/index.html "<h1>airlock demo 1.0</h1>" && write_image_archive "$2" demo/web:1.0 \'["httpd","-f","-p","8080","-h","/www"]\' "$3"',
      'bash',
      join(REPO, 'scripts', 'lib', 'image-archive.sh'),
      join(work, 'rootfs'),
      image,
    ]);
    const plainDef = await demoProject(join(work, 'plain'), image);
    const secretDef = await secretProject(join(work, 'secret'), image);
    const sites: { identity: string; recipient: string }[] = [];
    for (const name of ['site-a', 'site-b', 'site-c']) {
      const r = await run(cli, ['key', 'generate', '--kind', 'site', '--out', join(work, 'site-keys', name), '--json']);
      const k = JSON.parse(r.stdout) as { identityPath: string; recipientPath: string };
      sites.push({ identity: k.identityPath, recipient: k.recipientPath });
    }
    const sealTo = (n: number) => sites.slice(0, n).flatMap((s) => ['--seal-to', s.recipient]);

    let outSeq = 0;
    let stateSeq = 0;
    /** `bundle build` into an empty folder; returns the timing and the bundle's path. */
    const build = async (airlock: string, def: string, extra: string[] = [], nodeArgs: string[] = [], extraEnv: NodeJS.ProcessEnv = {}) => {
      const out = join(work, 'out', String(outSeq++));
      const t = await run(airlock, ['bundle', 'build', '-f', def, '--key', bench.signer.keyPath, '-o', out, ...extra], extraEnv, nodeArgs);
      const file = (await readdir(out)).find((f) => f.endsWith('.airlock'));
      if (!file) throw new Error(`bundle build wrote no bundle into ${out}`);
      return { t, bundle: join(out, file) };
    };
    /** Builds, times, and removes the output (the disk stays small over many runs). */
    const timedBuild = async (airlock: string, def: string, extra: string[] = []) => {
      const { t, bundle } = await build(airlock, def, extra);
      await rm(dirname(bundle), { recursive: true, force: true });
      return t;
    };

    // --- The engine between applies.
    const containers = async () => (await d.client.json<unknown[]>('GET', '/containers/json', { query: { all: true } })).length;
    /** Removes the stack's services, secrets and network; returns once no task or container is left. */
    const removeStack = async () => {
      const label = { label: [`${NAMESPACE}=${STACK}`] };
      for (const s of await d.services.list({ filters: label })) await d.services.delete(s.ID);
      // The demo's commands run as PID 1 and ignore SIGTERM: kill them rather than wait out the stop grace.
      const ids = (await d.client.json<{ Id: string }[]>('GET', '/containers/json')).map((c) => c.Id);
      for (const id of ids) await d.client.send('POST', `/containers/${id}/kill`).catch(() => undefined);
      // Secrets first would fail while tasks still use them: drain, then remove them.
      await drainEngine(d, containers, label.label);
      for (const s of await d.secrets.list()) if (s.Spec.Name.startsWith(`${STACK}_`)) await d.secrets.delete(s.ID);
    };
    const apply = (airlock: string, bundle: string, extra: string[] = [], state = join(work, 'state', String(stateSeq++)), nodeArgs: string[] = [], extraEnv: NodeJS.ProcessEnv = {}) =>
      run(airlock, ['bundle', 'apply', bundle, '--state', state, '--trust', bench.signer.trustDir, '--timeout', '2m', ...extra], extraEnv, nodeArgs);

    // --- The bundles that the applies take.
    const bundles = {
      unsealed: (await build(cli, secretDef)).bundle,
      secretBaseline: baseline ? (await build(baseline, secretDef)).bundle : undefined,
      sealed: (await build(cli, secretDef, sealTo(1))).bundle,
      plain: (await build(cli, plainDef)).bundle,
      plainBaseline: baseline ? (await build(baseline, plainDef)).bundle : undefined,
    };
    const samePlainBytes = bundles.plainBaseline ? (await sha256File(bundles.plain)) === (await sha256File(bundles.plainBaseline)) : undefined;

    // --- 1. Build, demo with a secret.
    log('build, demo with a secret');
    const buildSecret = await interleaved('build', shortRuns, {
      unsealed: () => timedBuild(cli, secretDef),
      'sealed, 1 site': () => timedBuild(cli, secretDef, sealTo(1)),
      'sealed, 3 sites': () => timedBuild(cli, secretDef, sealTo(3)),
      ...(baseline ? { baseline: () => timedBuild(baseline, secretDef) } : {}),
    });

    log('import --no-load, demo with a secret');
    const importArgs = (bundle: string) => ['bundle', 'import', bundle, '--no-load', '--state', join(work, 'state', String(stateSeq++)), '--trust', bench.signer.trustDir];
    const importSecret = await interleaved('import', shortRuns, {
      unsealed: () => run(cli, [...importArgs(bundles.unsealed), '--allow-unsealed']),
      sealed: () => run(cli, [...importArgs(bundles.sealed), '--identity', sites[0]!.identity]),
      ...(baseline && bundles.secretBaseline ? { baseline: () => run(baseline, importArgs(bundles.secretBaseline!)) } : {}),
    });

    // --- 2. Apply, demo with a secret.
    log('apply, demo with a secret');
    const applySecret = await interleaved(
      'apply',
      runs,
      {
        unsealed: () => apply(cli, bundles.unsealed, ['--allow-unsealed']),
        sealed: () => apply(cli, bundles.sealed, ['--identity', sites[0]!.identity]),
        ...(baseline && bundles.secretBaseline ? { baseline: () => apply(baseline, bundles.secretBaseline!) } : {}),
      },
      removeStack,
    );

    // --- 3. No secrets: this branch against the baseline.
    let plain: { build: Samples; apply: Samples; status: Samples; version: Samples } | undefined;
    if (baseline && bundles.plainBaseline) {
      const baselineBundle = bundles.plainBaseline;
      log('build, plain demo, baseline and branch');
      const buildPlain = await interleaved('plain build', shortRuns, { baseline: () => timedBuild(baseline, plainDef), branch: () => timedBuild(cli, plainDef) });
      log('apply and status, plain demo, baseline and branch');
      const statusPlain: Record<'baseline' | 'branch', Sample[]> = { baseline: [], branch: [] };
      // status right after each timed apply, on the state it made, the stack running.
      const applyThenStatus = (airlock: string, bundle: string, who: 'baseline' | 'branch') => async () => {
        const state = join(work, 'state', String(stateSeq++));
        const t = await apply(airlock, bundle, [], state);
        const load = loadavg()[0]!;
        const s = await run(airlock, ['status', '--state', state]);
        statusPlain[who].push({ wallMs: s.wallMs, cpuMs: s.cpuMs, load });
        return t;
      };
      const applyPlain = await interleaved(
        'plain apply',
        runs,
        { baseline: applyThenStatus(baseline, baselineBundle, 'baseline'), branch: applyThenStatus(cli, bundles.plain, 'branch') },
        removeStack,
      );
      // The warm-up's status runs are not part of the medians.
      for (const k of ['baseline', 'branch'] as const) statusPlain[k].shift();
      log('--version, baseline and branch');
      const versionRuns = await interleaved('--version', shortRuns, { baseline: () => run(baseline, ['--version']), branch: () => run(cli, ['--version']) });
      plain = { build: buildPlain, apply: applyPlain, status: statusPlain, version: versionRuns };
    }

    // --- Untimed: which commands load age, and what loading it costs.
    log('which commands load the age library');
    const hookFile = join(work, 'age-hook.mjs');
    await writeFile(hookFile, HOOK_SOURCE);
    let hookSeq = 0;
    const loadsAge = async (what: (nodeArgs: string[], hookEnv: NodeJS.ProcessEnv) => Promise<unknown>): Promise<number> => {
      const out = join(work, `age-hook-${hookSeq++}.json`);
      await what(['--import', pathToFileURL(hookFile).href], { [HOOK_ENV]: out });
      return (JSON.parse(await readFile(out, 'utf8')) as string[]).length;
    };
    const ageModules: [string, number][] = [];
    ageModules.push(['`bundle build`, plain demo', await loadsAge((n, e) => build(cli, plainDef, [], n, e))]);
    await removeStack();
    ageModules.push(['`bundle apply`, plain demo', await loadsAge((n, e) => apply(cli, bundles.plain, [], undefined, n, e))]);
    ageModules.push(['`bundle build`, demo with a secret, unsealed', await loadsAge((n, e) => build(cli, secretDef, [], n, e))]);
    await removeStack();
    ageModules.push(['`bundle apply`, demo with a secret, unsealed', await loadsAge((n, e) => apply(cli, bundles.unsealed, ['--allow-unsealed'], undefined, n, e))]);
    ageModules.push(['`bundle import --no-load`, demo with a secret, unsealed', await loadsAge((n, e) => run(cli, [...importArgs(bundles.unsealed), '--allow-unsealed'], e, n))]);
    ageModules.push(['`bundle import --no-load --identity`, sealed', await loadsAge((n, e) => run(cli, [...importArgs(bundles.sealed), '--identity', sites[0]!.identity], e, n))]);
    ageModules.push(['`bundle build --seal-to`, 1 site', await loadsAge((n, e) => build(cli, secretDef, sealTo(1), n, e))]);
    await removeStack();
    ageModules.push(['`bundle apply --identity`, sealed', await loadsAge((n, e) => apply(cli, bundles.sealed, ['--identity', sites[0]!.identity], undefined, n, e))]);
    await removeStack();

    log('cost of loading the seal modules in a fresh process');
    const cliRoot = dirname(dirname(cli));
    const agePackage = join(cliRoot, 'node_modules', 'age-encryption');
    const ageEntry = (JSON.parse(await readFile(join(agePackage, 'package.json'), 'utf8')) as { exports: string }).exports;
    const ageUrl = pathToFileURL(join(agePackage, ageEntry)).href;
    const [sealUrl, siteKeysUrl] = ['seal/seal.js', 'seal/site-keys.js'].map((m) => pathToFileURL(join(cliRoot, 'dist', 'src', m)).href);
    // In one fresh process: load age, then the seal modules, read the identity, seal a value and open it twice.
    const steps = ['load `age-encryption`', 'then the seal modules (`dist/src/seal/seal.js`, `site-keys.js`)', 'read the identity and recipient files', 'first seal', 'first unseal', 'second unseal'];
    const stepSource = `
      const lap = (() => { let t = performance.now(); return () => { const n = performance.now(); const d = n - t; t = n; return d; }; })();
      const out = [];
      await import(${JSON.stringify(ageUrl)}); out.push(lap());
      const s = await import(${JSON.stringify(sealUrl)}); const k = await import(${JSON.stringify(siteKeysUrl)}); out.push(lap());
      const ids = await k.readIdentities([${JSON.stringify(sites[0]!.identity)}]); const to = k.readRecipients([${JSON.stringify(sites[0]!.recipient)}]); out.push(lap());
      const sealed = await s.seal(Buffer.from('pin-271828'), to.map((r) => r.recipient)); out.push(lap());
      await s.unseal(sealed, ids); out.push(lap());
      await s.unseal(sealed, ids); out.push(lap());
      process.stdout.write(JSON.stringify(out));`;
    const stepMs: number[][] = [];
    for (let i = 0; i < 7; i++) stepMs.push(JSON.parse(capture(process.execPath, ['--input-type=module', '-e', stepSource])) as number[]);

    // --- Report.
    const facts = machineFacts(work, REPO);
    const row = (measure: string, s: Samples, a: string, b: string, verdict: (ratio: number) => string): string[] => {
      const ratio = median(walls(s[b]!)) / median(walls(s[a]!));
      const cell = (xs: Sample[]) => `${fmtSec(median(walls(xs)))} (${spread(xs)})`;
      return [measure, `${a}: ${cell(s[a]!)}`, `${b}: ${cell(s[b]!)}`, `**${fmtRatio(ratio)}**`, verdict(ratio), `${fmtSec(cpuOf(s[a]!))} / ${fmtSec(cpuOf(s[b]!))}`];
    };
    const target = (r: number) => `≤ ${fmtRatio(TARGET)}: ${r <= TARGET ? '**pass**' : '**FAIL**'}`;
    /** "Nothing measurable": the difference of the medians is smaller than the spread of either side. */
    const noise = (s: Samples, a: string, b: string) => () => {
      const diff = median(walls(s[b]!)) - median(walls(s[a]!));
      const range = (xs: Sample[]) => Math.max(...walls(xs)) - Math.min(...walls(xs));
      const within = Math.abs(diff) < Math.max(range(s[a]!), range(s[b]!));
      return `${diff >= 0 ? '+' : '−'}${Math.abs(diff).toFixed(0)} ms; ${within ? 'within the spread' : '**outside the spread**'}`;
    };
    const rows = [
      row('`bundle build`, demo + 1 secret: unsealed → sealed to 1 site', buildSecret, 'unsealed', 'sealed, 1 site', target),
      row('`bundle build`, demo + 1 secret: unsealed → sealed to 3 sites', buildSecret, 'unsealed', 'sealed, 3 sites', target),
      row('`bundle import --no-load`, demo + 1 secret: `--allow-unsealed` → sealed, `--identity`', importSecret, 'unsealed', 'sealed', target),
      row('`bundle apply`, demo + 1 secret: `--allow-unsealed` → sealed, `--identity`', applySecret, 'unsealed', 'sealed', target),
    ];
    if (plain) {
      rows.push(
        row('`bundle build`, demo + 1 secret: baseline (in clear) → branch, sealed to 1 site', buildSecret, 'baseline', 'sealed, 1 site', target),
        row('`bundle import --no-load`, demo + 1 secret: baseline (in clear) → branch, sealed', importSecret, 'baseline', 'sealed', target),
        row('`bundle apply`, demo + 1 secret: baseline (in clear) → branch, sealed', applySecret, 'baseline', 'sealed', target),
        row('`bundle build`, plain demo: baseline → branch', plain.build, 'baseline', 'branch', noise(plain.build, 'baseline', 'branch')),
        row('`bundle apply`, plain demo: baseline → branch', plain.apply, 'baseline', 'branch', noise(plain.apply, 'baseline', 'branch')),
        row('`status` after that apply: baseline → branch', plain.status, 'baseline', 'branch', noise(plain.status, 'baseline', 'branch')),
        row('`--version`: baseline → branch', plain.version, 'baseline', 'branch', noise(plain.version, 'baseline', 'branch')),
      );
    }
    const results = mdTable(['Measure', 'A: median (min–max)', 'B: median (min–max)', 'B ÷ A', 'Target / verdict', 'CPU A / B (median)'], rows);
    const ageTable = mdTable(
      ['Command (this branch, untimed, under a module hook)', 'age-encryption modules loaded'],
      ageModules.map(([what, n]) => [what, n === 0 ? 'none' : String(n)]),
    );
    const msRange = (xs: number[]) => `${median(xs).toFixed(1)} ms (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;
    const stepTable = mdTable(
      [`In a fresh process (${stepMs.length} processes), one step after the other`, 'median (min–max)'],
      steps.map((step, i) => [step, msRange(stepMs.map((m) => m[i]!))]),
    );
    const loads = [buildSecret, importSecret, applySecret, ...(plain ? [plain.build, plain.apply, plain.version] : [])].flatMap((s) => Object.values(s).flatMap((xs) => xs.map((x) => x.load)));
    const version = await d.system.version();
    const cmdLine = `.runtime/node dist/bench/sealing.js --runs ${runs} --short-runs ${shortRuns}${values.airlock ? ` --airlock ${values.airlock}` : ''}${values['baseline-airlock'] ? ` --baseline-airlock ${values['baseline-airlock']}` : ''}`;
    const body = [
      results,
      '',
      ageTable,
      '',
      stepTable,
      '',
      `- Command: \`${cmdLine}\`, ${new Date().toISOString().slice(0, 10)}, timed runs per variant, interleaved: ${runs} of each apply (and the status after it), ${shortRuns} of each shorter command; whole bench ${((Date.now() - started) / 60000).toFixed(1)} min`,
      `- CPU: ${facts.cpu}, ${facts.cores} cores; ${facts.memory} RAM; ${facts.kernel}; ${facts.fileSystem}`,
      `- Node ${facts.node}; airlock ${facts.commit}; Docker Engine ${version.Version} (API ${version.ApiVersion}), private single-node swarm in its own network namespace`,
      `- Shared machine: 1-minute load average at the start of the timed commands: median ${median(loads).toFixed(1)}, range ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`,
      ...(samePlainBytes === undefined ? [] : [`- The plain demo built by the baseline and by this branch: ${samePlainBytes ? 'the same bytes' : 'different bytes'} (SOURCE_DATE_EPOCH fixed)`]),
    ].join('\n');
    process.stdout.write(`${body}\n`);
    if (values.json) await writeFile(values.json, JSON.stringify({ runs, shortRuns, buildSecret, importSecret, applySecret, plain, ageModules, steps, stepMs }, null, 2));
    if (values.doc) await writeGeneratedBlock(values.doc, 'sealing', '## Sealed secrets', body);
  } finally {
    await cleanup();
  }
}

try {
  await main();
} catch (e) {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
}
