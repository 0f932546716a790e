#!/usr/bin/env node
// Runs the compiled tests under dist/test with node's own runner, on the Node runtime the
// package ships (.runtime/node, linked by scripts/install-deps): what is tested is what ships.
// Every airlock the tests start runs on that runtime too, with the same better-sqlite3 addon.
//
// usage: node scripts/run-tests.mjs [--engine ROW] [--gc-stress] [--except FILTER] [FILTER...]
//   FILTER: run only the test files whose path contains one of these substrings.
//   --except FILTER: leave out the files whose path contains FILTER (scripts/test runs the
//     package test beside the engine rows, not in the first pass).
//   AIRLOCK_TEST_CONCURRENCY: test files run at once (default 2; scripts/test's first pass runs 3:
//     most files wait on engines, and at 2 it left half of two cores idle).
//   --engine ROW: run against a row of the engine matrix (scripts/engines; docs/engines.md):
//     every private dockerd the tests start runs that engine, and DOCKER_HOST points at a
//     shared one (a single-node swarm) for the tests that use "the machine's" dockerd.
//     Without filters it runs the engine-facing files, ENGINE_FILES.
//   --gc-stress: run the tests again with frequent garbage collections in every airlock
//     process (V8's --gc-interval), so that a native finalizer that needs a JS context (the
//     better-sqlite3 12 abort on Node 24.19+) fails a test here rather than a host. Without
//     filters it runs the files in GC_STRESS_FILES.
// Under CI (CI=true) a skipped test fails the run: a green CI means every test really ran.
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { startSharedEngine } from './lib/shared-engine.mjs';

/** The apply, rollback, prune and agent tests: where statements are made and dropped most. */
const GC_STRESS_FILES = ['test/apply/apply.test', 'test/retention/', 'test/agent/agent.test', 'test/agent/agent-parts.test', 'test/cluster/plan.test'];
/** A collection every N allocations: the old binding aborted within a second of `bundle apply`. */
const GC_STRESS_FLAGS = ['--gc-interval=100'];
/** What talks to an engine: client, image load, stacks and parity, apply, rollback, crash points, prune, agent deploy, cluster. */
const ENGINE_FILES = [
  'test/docker/',
  'test/doctor/',
  'test/images/',
  'test/stack/',
  'test/compose/parity/',
  'test/apply/',
  'test/retention/prune.test',
  'test/agent/agent.test',
  'test/agent/first-boot.test',
  'test/bundle/delta.test',
  'test/cluster/',
  'test/lab/lab.test',
  'test/hostile/revoked.test',
];

const args = process.argv.slice(2);
const gcStress = args.includes('--gc-stress');
/** The value after FLAG, and the arguments left without both. */
function takeValue(list, flag, what) {
  const at = list.indexOf(flag);
  if (at < 0) return [undefined, list];
  if (!list[at + 1]) usage(`${flag} needs ${what}`);
  return [list[at + 1], list.filter((_, i) => i !== at && i !== at + 1)];
}
const [engine, afterEngine] = takeValue(args, '--engine', 'a row of scripts/engines');
const [except, afterExcept] = takeValue(afterEngine, '--except', 'a path substring');
const filters = afterExcept.filter((a) => a !== '--gc-stress');
const concurrency = Number(process.env.AIRLOCK_TEST_CONCURRENCY ?? 2);
if (!Number.isInteger(concurrency) || concurrency < 1) usage(`AIRLOCK_TEST_CONCURRENCY must be a whole number of at least 1, not ${process.env.AIRLOCK_TEST_CONCURRENCY}`);

function usage(why) {
  console.error(`run-tests: ${why}\nusage: node scripts/run-tests.mjs [--engine ROW] [--gc-stress] [--except FILTER] [FILTER...]`);
  process.exit(2);
}

const runtime = resolve('.runtime/node');
if (!existsSync(runtime)) {
  console.error('run-tests: no .runtime/node: run scripts/install-deps, which links the packaged Node runtime there');
  process.exit(1);
}

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.js') ? [p] : [];
  });
}

const selected = filters.length > 0 ? filters : gcStress ? GC_STRESS_FILES : engine ? ENGINE_FILES : [];
const files = walk('dist/test')
  .filter((f) => selected.length === 0 || selected.some((s) => f.includes(s.replace(/^test\//, 'dist/test/'))))
  .filter((f) => !except || !f.includes(except.replace(/^test\//, 'dist/test/')))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

const addon = 'node_modules/better-sqlite3/prebuilds/linux-' + (process.arch === 'arm64' ? 'arm64' : 'x64') + '.node';
const addonSum = existsSync(addon) ? createHash('sha256').update(readFileSync(addon)).digest('hex').slice(0, 16) : 'missing';
const version = spawnSync(runtime, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
const env = { ...process.env };
if (gcStress) env.AIRLOCK_TEST_NODE_FLAGS = GC_STRESS_FLAGS.join(' ');

let shared;
if (engine) {
  const list = spawnSync('scripts/engines', ['list'], { encoding: 'utf8' });
  const line = list.stdout.split('\n').find((l) => l.startsWith(`${engine} `));
  if (!line) usage(`no engine row ${engine}:\n${list.stdout}${list.stderr}`);
  if (line.includes('not prepared')) usage(`engine row ${engine} is not prepared: run scripts/engines prepare ${engine}`);
  env.AIRLOCK_TEST_ENGINE = engine;
  if (engine !== 'bookworm') {
    shared = await startSharedEngine(engine);
    env.DOCKER_HOST = shared.host;
  }
  console.log(`run-tests: engine ${line.trim().replace(/\s+/g, ' ')}`);
}
console.log(`run-tests: Node ${version} (${realpathSync(runtime)}); better-sqlite3 addon ${addon} sha256 ${addonSum}…; ${files.length} files${gcStress ? `; GC stress: ${GC_STRESS_FLAGS.join(' ')}` : ''}`);

// The runner's output passes through as it comes; skipped tests are counted on the way.
const child = spawn(runtime, [...(gcStress ? GC_STRESS_FLAGS : []), '--test', '--test-reporter=spec', `--test-concurrency=${concurrency}`, ...files], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env,
});
const skipped = [];
let pending = '';
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  pending += d.toString();
  const lines = pending.split('\n');
  pending = lines.pop() ?? '';
  // The spec reporter marks a skipped test or suite with "﹣ NAME (…ms) # REASON".
  for (const l of lines) if (/^\s*\u{FE63} /u.test(l)) skipped.push(l.trim());
});
const code = await new Promise((res) => child.on('close', (c) => res(c ?? 1)));
await shared?.stop();
if (skipped.length > 0 && process.env.CI === 'true') {
  console.log(`run-tests: ${skipped.length} test(s) skipped under CI, where every test must run:\n${[...new Set(skipped)].map((l) => `  ${l}`).join('\n')}`);
  process.exit(code === 0 ? 1 : code);
}
process.exit(code);
