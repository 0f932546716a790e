/**
 * kill -9 at chosen step boundaries of an apply, against a real dockerd
 * (Mender's way: kill the process in a chosen state, assert where it ends
 * up). AIRLOCK_CRASH_AT makes the CLI SIGKILL itself just after a step's
 * start is journaled, before its side effect; `services-mid` is after the
 * first service change. After each crash, `airlock recover` alone must leave
 * the stack in the old state or the new one, never in between, with a
 * journal that says which; then an apply of the new release must work.
 *
 * The full table (test/helpers/crash-table.ts) runs in-process, on the fake
 * engine, in test/apply/crash-fake.test.ts. Here run only the rows whose
 * outcome rests on what a real engine does: services-mid (a real mix of old
 * and new tasks, restored), converge (real tasks judged healthy, committed
 * forward) and cleanup (content-named configs removed from a live swarm once
 * no service uses them), plus the crash loop.
 *
 * One swarm; each crash point gets a fresh state dir (its journal is #1 v1
 * committed, #2 the crashed v2, #3 v2 again). A lane per row, each a stack
 * of its own, run side by side to keep the file short.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { journalPathIn } from '../../src/store/state-dir.js';
import Database from 'better-sqlite3';
import { MAX_RECOVERIES } from '../../src/apply/recover.js';
import {
  IDLE,
  buildRelease,
  cliFor,
  deployments,
  engineSpecs,
  recordedSpecs,
  specDrift,
  startBench,
  type Bench,
  type ComposeDoc,
} from '../helpers/apply.js';
import { TABLE, classify, configNames, statusAfterKill, stepOf, type Point, type Row } from '../helpers/crash-table.js';

/** The rows that need a real engine; crash-fake.test.ts runs them all. */
const REAL_ENGINE_ROWS: Point[] = ['services-mid', 'converge', 'cleanup'];
const ROWS = TABLE.filter((r) => REAL_ENGINE_ROWS.includes(r.point));

interface Lane {
  stack: string;
  rows: Row[];
  v1: string;
  v2: string;
}

let bench: Bench;
const lanes: Lane[] = ROWS.map((row, i) => ({ stack: `lane${i + 1}`, rows: [row], v1: '', v2: '' }));
const loop: Lane = { stack: 'loop', rows: [], v1: '', v2: '' };

/**
 * v1: web (with a config), worker, legacy. v2 changes all of it: a new web
 * image and config, a new worker environment, legacy removed and probe added.
 * So an apply cut short after its first service change leaves a real mix.
 */
function release(stack: string, version: '1.0.0' | '2.0.0'): Promise<string> {
  const v2 = version === '2.0.0';
  return buildRelease(bench, {
    version,
    stack,
    repo: stack,
    files: { 'conf/release.conf': `release=${version}\n` },
    compose: (doc: ComposeDoc) => {
      doc.configs = { release: { file: './conf/release.conf' } };
      doc.services.web!.configs = [{ source: 'release', target: '/etc/release.conf' }];
      doc.services.worker!.environment = { RELEASE: version };
      doc.services[v2 ? 'probe' : 'legacy'] = { image: `${stack}/base:1`, command: IDLE };
    },
  });
}

before(async () => {
  bench = await startBench('airlock-crash-');
  for (const lane of [...lanes, loop]) {
    lane.v1 = await release(lane.stack, '1.0.0');
    lane.v2 = await release(lane.stack, '2.0.0');
  }
});

after(async () => {
  await bench?.close();
});

const runningIds = (state: string) => deployments(state).filter((d) => d.status === 'running').map((d) => d.id);

/** The configs of the stack in the engine, by name. */
async function stackConfigs(stack: string): Promise<string[]> {
  const configs = await bench.docker.configs.list({ filters: { label: [`com.docker.stack.namespace=${stack}`] } });
  return configs.map((c) => c.Spec.Name).sort();
}

/** Asserts the journal agrees with the engine: nothing left running, and the newest committed deployment's specs are what runs. */
async function assertConsistent(state: string, stack: string): Promise<number> {
  assert.deepEqual(runningIds(state), [], 'no deployment may be left running');
  const committed = deployments(state).filter((d) => d.status === 'committed');
  const current = committed[committed.length - 1]!;
  assert.deepEqual(specDrift(recordedSpecs(state, current.id), await engineSpecs(bench.docker, stack)), [], `${stack} must run deployment #${current.id}`);
  return current.id;
}

async function crashRound(lane: Lane, row: Row): Promise<void> {
  const { stack } = lane;
  const run = cliFor(bench, join(bench.dir, `state-${stack}-${row.point}`));

  // #1: v1 committed. The engine may run v2 from the round before: this puts v1 back.
  const v1 = await run.apply(lane.v1);
  assert.equal(v1.code, 0, v1.stdout + v1.stderr);
  const v1Specs = recordedSpecs(run.state, 1);
  assert.deepEqual(specDrift(v1Specs, await engineSpecs(bench.docker, stack)), []);
  const v1Configs = await stackConfigs(stack);

  // #2: v2, killed at the point.
  const killed = await run.apply(lane.v2, [], { AIRLOCK_CRASH_AT: row.point });
  assert.equal(killed.signal, 'SIGKILL', `expected a SIGKILL at ${row.point}: ${killed.code} ${killed.stdout}${killed.stderr}`);
  const d2 = deployments(run.state).find((d) => d.id === 2)!;
  assert.ok(d2, 'the killed apply journaled its deployment');
  assert.equal(d2.step, stepOf(row.point), 'the journal names the step the kill came in');
  assert.equal(d2.status, statusAfterKill(row.point));
  const v2Recorded = recordedSpecs(run.state, 2);
  assert.equal(classify(await engineSpecs(bench.docker, stack), v1Specs, v2Recorded), row.killed, `the engine right after the kill at ${row.point}`);

  // Recovery alone, as an operator would run it after the reboot.
  const rec = await run.cli(['recover', '--json', '--timeout', '60s']);
  assert.equal(rec.code, 0, rec.stdout + rec.stderr);
  const report = JSON.parse(rec.stdout) as { recovered: { deployment: number; status: string; reason: string | null; step: string }[] };
  if (row.recoverEvent === null) assert.deepEqual(report.recovered, []);
  else assert.deepEqual(report.recovered.map((r) => [r.deployment, r.status, r.step]), [[2, row.status, d2.step]]);
  const events = run.journal((j) => j.events({ kind: 'deployment.recover' }).map(({ outcome, reason }) => ({ outcome, reason })));
  assert.deepEqual(events, row.recoverEvent === null ? [] : [{ outcome: 'ok', reason: row.recoverEvent }]);

  const after = deployments(run.state).find((d) => d.id === 2)!;
  assert.equal(after.status, row.status);
  if (row.reason) assert.match(after.reason ?? '', row.reason);
  else assert.equal(after.reason, null);
  const current = await assertConsistent(run.state, stack);
  assert.equal(current, row.ends === 'old' ? 1 : 2, `the stack ends in the ${row.ends} state`);
  if (row.ends === 'new') {
    assert.deepEqual(specDrift(v2Recorded, await engineSpecs(bench.docker, stack)), []);
    // Its cleanup was resumed: the config only v1 used is gone, once, journaled on #2.
    assert.deepEqual(await stackConfigs(stack), configNames(v2Recorded));
    const cleanup = run.journal((j) => j.events({ kind: 'deployment.cleanup' }).map(({ outcome, reason }) => ({ outcome, reason })));
    assert.deepEqual(cleanup, [{ outcome: 'ok', reason: 'resumed' }]);
  }
  // A recovery to the old state brings back what v2 removed, and keeps what v1 used.
  if (row.ends === 'old') for (const c of v1Configs) assert.ok((await stackConfigs(stack)).includes(c), `config ${c} of v1 is still there`);

  // A second recovery finds nothing to do.
  const secondRecovery = await run.cli(['recover', '--json']);
  assert.deepEqual(JSON.parse(secondRecovery.stdout), { recovered: [] });

  // v2 again. Recovered forward, #2 runs v2 through its resumed cleanup: nothing is left to do, no
  // deployment. Recovered back, #3 applies v2 to the end.
  const v2 = await run.apply(lane.v2);
  assert.equal(v2.code, 0, v2.stdout + v2.stderr);
  const again = row.ends === 'new' ? 2 : 3;
  const answer = (JSON.parse(v2.stdout) as { stacks: { deployment: number; unchanged?: true }[] }).stacks[0]!;
  assert.deepEqual([answer.deployment, answer.unchanged], [again, row.ends === 'new' ? true : undefined]);
  assert.equal(await assertConsistent(run.state, stack), again);
  const v2Specs = recordedSpecs(run.state, again);
  assert.deepEqual([...v2Specs.keys()].sort(), [`${stack}_probe`, `${stack}_web`, `${stack}_worker`]);
  assert.equal(v2Specs.get(`${stack}_worker`)!.TaskTemplate?.ContainerSpec?.Env?.includes('RELEASE=2.0.0'), true);
  // Cleanup ran: only the config v2 uses is left.
  assert.deepEqual(await stackConfigs(stack), configNames(v2Specs));
  const steps = run.journal((j) => j.steps(again).map(({ step, outcome }) => ({ step, outcome })));
  if (again === 3) assert.deepEqual(steps, ['verify', 'store', 'load', 'prepare', 'services', 'converge', 'commit', 'cleanup'].map((step) => ({ step, outcome: 'ok' })));
  else assert.deepEqual(steps.at(-1), { step: 'cleanup', outcome: 'ok' });
}

describe('kill -9 at chosen step boundaries, then recovery', { concurrency: lanes.length + 1 }, () => {
  for (const lane of lanes) {
    test(`stack ${lane.stack}: ${lane.rows.map((r) => r.point).join(', ')}`, async (t) => {
      for (const row of lane.rows) {
        await t.test(`killed at ${row.point}: ${row.killed} after the kill, ${row.ends} after recovery (#2 ${row.status})`, () => crashRound(lane, row));
      }
    });
  }

  test(`a recovery interrupted more than ${MAX_RECOVERIES} times is left to the operator, not retried forever`, async () => {
  const { stack } = loop;
  const run = cliFor(bench, join(bench.dir, 'state-loop'));
  // A write, to make the state a crash loop leaves: the read-only helper cannot.
  const setRecoveries = (id: number, n: number) => {
    const db = new Database(journalPathIn(run.state));
    try {
      db.prepare('UPDATE deployments SET recoveries = ? WHERE id = ?').run(n, id);
    } finally {
      db.close();
    }
  };
  assert.equal((await run.apply(loop.v1)).code, 0);
  const v1Specs = recordedSpecs(run.state, 1);

  // #2: killed mid-services; as if MAX_RECOVERIES - 1 recoveries had been interrupted already: this one still runs.
  assert.equal((await run.apply(loop.v2, [], { AIRLOCK_CRASH_AT: 'services-mid' })).signal, 'SIGKILL');
  setRecoveries(2, MAX_RECOVERIES - 1);
  const ok = await run.cli(['recover', '--json', '--timeout', '60s']);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.deepEqual(deployments(run.state).find((d) => d.id === 2), { id: 2, kind: 'apply', status: 'rolled-back', step: 'services', reason: 'interrupted at step services; restored the previous specs', recoveries: MAX_RECOVERIES });
  assert.deepEqual(specDrift(v1Specs, await engineSpecs(bench.docker, stack)), []);

  // #3: killed mid-services again; now MAX_RECOVERIES recoveries were interrupted: the next one gives up.
  assert.equal((await run.apply(loop.v2, [], { AIRLOCK_CRASH_AT: 'services-mid' })).signal, 'SIGKILL');
  const mixed = await engineSpecs(bench.docker, stack);
  assert.equal(classify(mixed, v1Specs, recordedSpecs(run.state, 3)), 'mixed');
  setRecoveries(3, MAX_RECOVERIES);
  const gaveUp = await run.cli(['recover', '--json']);
  assert.equal(gaveUp.code, 0, gaveUp.stdout + gaveUp.stderr);
  const d3 = deployments(run.state).find((d) => d.id === 3)!;
  assert.equal(d3.status, 'failed');
  assert.equal(d3.reason, `recovery was interrupted ${MAX_RECOVERIES} times; left for the operator (see airlock history ${stack})`);
  assert.deepEqual(JSON.parse(gaveUp.stdout).recovered.map((r: { deployment: number; status: string }) => [r.deployment, r.status]), [[3, 'failed']]);
  const events = run.journal((j) => j.events({ kind: 'deployment.recover' }).map(({ outcome, reason, details }) => ({ outcome, reason, details })));
  assert.deepEqual(events.at(-1), { outcome: 'failed', reason: 'crash-loop', details: JSON.stringify({ deployment: 3 }) });
  // It gave up without touching the engine: the operator finds it as the crash left it.
  assert.deepEqual(specDrift(mixed, await engineSpecs(bench.docker, stack)), []);
  assert.deepEqual(runningIds(run.state), []);

  // A new apply takes the stack to v2 from there.
  const v2 = await run.apply(loop.v2);
  assert.equal(v2.code, 0, v2.stdout + v2.stderr);
  assert.equal(await assertConsistent(run.state, stack), 4);
});
});
