/**
 * The whole crash table (test/helpers/crash-table.ts) in-process: for every
 * crash point an apply arms, an apply of v2 over v1 is stopped there as a
 * kill would stop it (simulateCrashAt: no failure rule runs, the step stays
 * open), then recovery runs, against the fake engine shaped by each recorded
 * engine and a real journal. The same outcomes as the rows crash.test.ts
 * keeps on a real dockerd with kill -9: where the engine is after the kill,
 * where recovery leaves the stack and its deployment, the cleanup of a
 * deployment recovered forward resumed, and a second recovery with nothing
 * to do.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { APPLY_STEPS } from '../../src/journal/deployments.js';
import { INNER_CRASH_POINTS, ProcessStop, simulateCrashAt } from '../../src/process/fault.js';
import { engineSpecs, recordedSpecs, specDrift } from '../helpers/apply.js';
import { readJournal } from '../helpers/journal-read.js';
import { TABLE, classify, configNames, statusAfterKill, stepOf, type Row } from '../helpers/crash-table.js';
import { fakeHost, type FakeHost } from '../helpers/fake-apply.js';

const eventsOf = (host: FakeHost, kind: string) => readJournal(host.state, (j) => j.events({ kind }).map(({ outcome, reason }) => ({ outcome, reason })));
const stackConfigs = async (host: FakeHost) => (await host.fake.configs.list({ filters: { label: [`com.docker.stack.namespace=${host.stack}`] } })).map((c) => c.Spec.Name).sort();

async function crashRound(engine: string, row: Row): Promise<void> {
  const host = await fakeHost({ engine });
  try {
    // #1: v1 committed.
    await host.apply('1.0.0');
    const v1Specs = recordedSpecs(host.state, 1);
    assert.deepEqual(specDrift(v1Specs, await engineSpecs(host.fake, host.stack)), []);
    const v1Configs = await stackConfigs(host);

    // #2: v2, stopped at the point.
    simulateCrashAt(row.point);
    await assert.rejects(host.apply('2.0.0'), (e: unknown) => e instanceof ProcessStop && e.point === row.point);
    const d2 = host.ctx.deployments.get(2)!;
    assert.equal(d2.step, stepOf(row.point), 'the journal names the step the kill came in');
    assert.equal(d2.status, statusAfterKill(row.point));
    // As after a kill, the step it came in is left open, and nothing was closed as failed.
    const steps = host.ctx.deployments.steps(2);
    assert.ok(steps.every((s) => s.outcome !== 'failed'));
    if (row.point !== 'after-commit') assert.deepEqual([steps.at(-1)!.step, steps.at(-1)!.finished_at], [d2.step, null]);
    const v2Recorded = recordedSpecs(host.state, 2);
    assert.equal(classify(await engineSpecs(host.fake, host.stack), v1Specs, v2Recorded), row.killed, `the engine right after the kill at ${row.point}`);

    // Recovery alone, as an operator would run it after the reboot.
    const recovered = await host.recover();
    if (row.recoverEvent === null) assert.deepEqual(recovered, []);
    else assert.deepEqual(recovered.map((r) => [r.id, r.status, r.step]), [[2, row.status, d2.step]]);
    assert.deepEqual(eventsOf(host, 'deployment.recover'), row.recoverEvent === null ? [] : [{ outcome: 'ok', reason: row.recoverEvent }]);

    const after = host.ctx.deployments.get(2)!;
    assert.equal(after.status, row.status);
    if (row.reason) assert.match(after.reason ?? '', row.reason);
    else assert.equal(after.reason, null);
    assert.deepEqual(host.ctx.deployments.unfinished(), [], 'no deployment may be left running');
    const current = host.ctx.deployments.current(host.stack)!.id;
    assert.equal(current, row.ends === 'old' ? 1 : 2, `the stack ends in the ${row.ends} state`);
    assert.deepEqual(specDrift(recordedSpecs(host.state, current), await engineSpecs(host.fake, host.stack)), [], `the engine runs deployment #${current}`);
    if (row.ends === 'new') {
      // Its cleanup was resumed: the config only v1 used is gone, once, journaled.
      assert.deepEqual(await stackConfigs(host), configNames(v2Recorded));
      assert.deepEqual(eventsOf(host, 'deployment.cleanup'), [{ outcome: 'ok', reason: 'resumed' }]);
    } else {
      // A recovery to the old state brings back what v2 removed, and keeps what v1 used.
      for (const c of v1Configs) assert.ok((await stackConfigs(host)).includes(c), `config ${c} of v1 is still there`);
      assert.deepEqual(eventsOf(host, 'deployment.cleanup'), []);
    }

    // A second recovery finds nothing to do and changes nothing.
    host.fake.calls.length = 0;
    assert.deepEqual(await host.recover(), []);
    assert.deepEqual(host.fake.calls.filter((c) => /\.(create|update|delete) /.test(c)), []);

    // Recovered back, v2 applied again goes through every step to the end, as #3.
    if (row.ends === 'old') {
      await host.apply('2.0.0');
      assert.deepEqual(
        host.ctx.deployments.steps(3).map((s) => [s.step, s.outcome]),
        ['verify', 'store', 'load', 'prepare', 'services', 'converge', 'commit', 'cleanup'].map((s) => [s, 'ok']),
      );
      assert.deepEqual(specDrift(recordedSpecs(host.state, 3), await engineSpecs(host.fake, host.stack)), []);
      assert.deepEqual(await stackConfigs(host), configNames(recordedSpecs(host.state, 3)));
    }
  } finally {
    simulateCrashAt(undefined);
    await host.close();
  }
}

for (const engine of ['20.10', '28']) {
  describe(`fake engine ${engine}: a crash at every point of an apply, then recovery`, () => {
    for (const row of TABLE) {
      test(`killed at ${row.point}: ${row.killed} after the kill, ${row.ends} after recovery (#2 ${row.status})`, () => crashRound(engine, row));
    }
  });
}

test('the table has a row for every crash point an apply arms', () => {
  const armed = [...APPLY_STEPS.filter((s) => s !== 'done'), ...INNER_CRASH_POINTS.filter((p) => p !== 'import-mid')].sort();
  assert.deepEqual(TABLE.map((r) => r.point).sort(), armed);
});
