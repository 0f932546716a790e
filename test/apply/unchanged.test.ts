/**
 * Applying the bundle a host already runs, untouched, starts no deployment:
 * the history keeps one row per real change. Anything that differs (a
 * service changed by hand, an image gone) makes it a real deployment again.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { assertRuns, buildRelease, cliFor, deployments, startBench, type Bench } from '../helpers/apply.js';

let bench: Bench;
let run: ReturnType<typeof cliFor>;
let v1: string;

before(async () => {
  bench = await startBench('airlock-unchanged-');
  run = cliFor(bench, join(bench.dir, 'state'));
  v1 = await buildRelease(bench, { version: '1.0.0' });
});
after(async () => {
  await bench?.close();
});

interface ApplyJson {
  stacks: { stack: string; deployment: number; unchanged?: boolean; services: { name: string; ready: number; desired: number }[] }[];
}

const events = () =>
  run.journal((j) => j.events({ kind: 'bundle.apply' }).map(({ outcome, reason, message }) => ({ outcome, reason, message })));

test('the same bundle again: no deployment, an event, the stack as it runs; changed by hand, it is a deployment again', async () => {
  const first = await run.apply(v1);
  assert.equal(first.code, 0, first.stdout + first.stderr);
  assert.deepEqual(deployments(run.state).map((d) => [d.id, d.status]), [[1, 'committed']]);

  const again = await run.apply(v1);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  const report = JSON.parse(again.stdout) as ApplyJson;
  assert.deepEqual(report.stacks.map((s) => [s.stack, s.deployment, s.unchanged]), [['web', 1, true]]);
  assert.ok(report.stacks[0]!.services.length > 0 && report.stacks[0]!.services.every((s) => s.ready === s.desired), again.stdout);
  assert.deepEqual(deployments(run.state).map((d) => d.id), [1], 'no deployment was started');
  assert.deepEqual(events().at(-1), { outcome: 'info', reason: 'unchanged', message: 'already running: stack web as deployment #1; nothing was changed' });
  const text = await run.cli(['bundle', 'apply', v1, '--trust', bench.signer.trustDir, '--timeout', '60s']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^demo 1\.0\.0 already runs on stack web \(deployment #1\), unchanged: nothing to do; /m);

  // Scaled by hand: the apply puts it back, as a deployment.
  const svc = (await bench.docker.services.list({ filters: { label: ['com.docker.stack.namespace=web'] } }))[0]!;
  await bench.docker.services.update(svc.ID, svc.Version.Index, { ...svc.Spec, Labels: { ...svc.Spec.Labels, 'by.hand': 'yes' } });
  const restored = await run.apply(v1);
  assert.equal(restored.code, 0, restored.stdout + restored.stderr);
  assert.equal((JSON.parse(restored.stdout) as ApplyJson).stacks[0]!.unchanged, undefined);
  assert.deepEqual(deployments(run.state).map((d) => [d.id, d.status]), [[1, 'committed'], [2, 'committed']]);
  await assertRuns(bench.docker, run.state, 'web', 2);
});
