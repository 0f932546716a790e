#!/usr/bin/env node
// Runs the compiled tests under dist/test with node's own runner, on the Node runtime the
// package ships (.runtime/node, linked by scripts/install-deps): what is tested is what ships.
// Every airlock the tests start runs on that runtime too, with the same better-sqlite3 addon.
//
// usage: node scripts/run-tests.mjs [--gc-stress] [FILTER...]
//   FILTER: run only the test files whose path contains one of these substrings.
//   --gc-stress: run the tests again with frequent garbage collections in every airlock
//     process (V8's --gc-interval), so that a native finalizer that needs a JS context (the
//     better-sqlite3 12 abort on Node 24.19+) fails a test here rather than a host. Without
//     filters it runs the files in GC_STRESS_FILES.
import { readdirSync, readFileSync, realpathSync, statSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';

/** The apply, rollback, prune and agent tests: where statements are made and dropped most. */
const GC_STRESS_FILES = ['test/apply/', 'test/retention/', 'test/agent/agent.test', 'test/agent/agent-parts.test', 'test/cluster/plan.test'];
/** A collection every N allocations: the old binding aborted within a second of `bundle apply`. */
const GC_STRESS_FLAGS = ['--gc-interval=100'];

const args = process.argv.slice(2);
const gcStress = args.includes('--gc-stress');
const filters = args.filter((a) => a !== '--gc-stress');

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

const selected = filters.length > 0 ? filters : gcStress ? GC_STRESS_FILES : [];
const files = walk('dist/test')
  .filter((f) => selected.length === 0 || selected.some((s) => f.includes(s.replace(/^test\//, 'dist/test/'))))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

const addon = 'node_modules/better-sqlite3/prebuilds/linux-' + (process.arch === 'arm64' ? 'arm64' : 'x64') + '.node';
const addonSum = existsSync(addon) ? createHash('sha256').update(readFileSync(addon)).digest('hex').slice(0, 16) : 'missing';
const version = spawnSync(runtime, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
console.log(`run-tests: Node ${version} (${realpathSync(runtime)}); better-sqlite3 addon ${addon} sha256 ${addonSum}…; ${files.length} files${gcStress ? `; GC stress: ${GC_STRESS_FLAGS.join(' ')}` : ''}`);

const env = { ...process.env };
if (gcStress) env.AIRLOCK_TEST_NODE_FLAGS = GC_STRESS_FLAGS.join(' ');
const r = spawnSync(
  runtime,
  [...(gcStress ? GC_STRESS_FLAGS : []), '--test', '--test-reporter=spec', '--test-concurrency=2', ...files],
  { stdio: 'inherit', env },
);
process.exit(r.status ?? 1);
