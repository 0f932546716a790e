/**
 * The Docker daemon goes away in the middle of an apply (systemctl stop
 * docker, a dockerd crash). The apply must stop with a clear error naming
 * the engine (exit 15), leave a journal that the next run can act on, and
 * once dockerd is back a re-run of the apply must complete, with the journal
 * consistent: nothing left running, the engine running what the newest
 * committed deployment recorded. A restart (systemctl restart docker) that
 * is over within the client's retry budget is ridden out.
 */
import { after, before, beforeEach, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertRuns, buildRelease, cliFor, deployments, engineSpecs, finished, recordedSpecs, specDrift, startBench, waitForStderr, type Bench } from '../helpers/apply.js';

let bench: Bench;
let run: ReturnType<typeof cliFor>;

before(async () => {
  bench = await startBench('airlock-daemon-stop-');
  run = cliFor(bench, join(bench.dir, 'state'));
  const v1 = await buildRelease(bench, { version: '1.0.0' });
  const r = await run.apply(v1);
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

// A test that failed leaves dockerd down or a deployment unfinished: the next one starts from a
// running engine and a closed journal, whatever the test before it left.
beforeEach(async () => {
  if (daemonDown) await startDaemon();
  if (deployments(run.state).some((d) => d.status === 'running')) {
    const r = await run.cli(['recover', '--timeout', '60s']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }
});

/**
 * A restarted 26.1 or 28.5 dockerd (20.10 too, now and then) can leave the overlay network's vxlan
 * device behind, and then rejects every new task with "network sandbox join failed … file exists"
 * until the network is made again: the engine's fault, named in airlock's error.
 */
const SANDBOX_JOIN_FAILED = /network sandbox join failed/;

/**
 * The bundle applied again after dockerd came back: it completes, or, where the engine keeps the
 * stale vxlan device (it does until the network is made again), it is rejected once more, named,
 * with exit 15 and a closed journal. Whether it completed.
 */
async function applyAgain(t: TestContext, bundle: string): Promise<boolean> {
  const again = await run.apply(bundle);
  // --json: the error is the object on stdout.
  const said = again.stdout + again.stderr;
  if (again.code !== 0 && SANDBOX_JOIN_FAILED.test(said)) {
    t.diagnostic(`the engine still rejects new tasks: ${said.trim()}`);
    assert.equal(again.code, 15, again.stdout + again.stderr);
    assertNothingRunning();
    return false;
  }
  assert.equal(again.code, 0, again.stdout + again.stderr);
  return true;
}

after(async () => {
  await bench?.close();
});

let daemonDown = false;

async function stopDaemon(how: 'stop' | 'kill'): Promise<void> {
  daemonDown = true;
  await bench.daemon[how]();
}

/** dockerd back, and its single-node swarm able to take orders again (a restarted manager needs a moment to lead). */
async function startDaemon(): Promise<void> {
  await bench.daemon.start();
  daemonDown = false;
  const docker = bench.daemon.client();
  try {
    for (let i = 0; ; i++) {
      try {
        await docker.services.list();
        const nodes = await docker.nodes.list();
        if (nodes.every((n) => n.Status?.State === 'ready')) return;
      } catch (e) {
        if (i > 120) throw e;
      }
      await sleep(500);
    }
  } finally {
    await docker.close();
  }
}

/** Bytes a process has read so far (from /proc/PID/io), or 0 once it is gone. */
function readBytes(pid: number): number {
  try {
    return Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function assertNothingRunning(): void {
  assert.deepEqual(deployments(run.state).filter((d) => d.status === 'running'), []);
}

/** The newest committed deployment: what the journal says the stack runs. */
function current(): number {
  return deployments(run.state).filter((d) => d.status === 'committed').at(-1)!.id;
}

test('dockerd killed while the images load: exit 15 naming the engine, the deployment failed before any service changed; a re-run completes', async (t) => {
  // A 256 MiB layer, stored uncompressed: the load streams it from the content store to the engine.
  const v2 = await buildRelease(bench, { version: '2.0.0', bulkBytes: 256 * 1024 * 1024 });
  const before = current();
  const child = run.spawnApply(v2);
  const done = finished(child);
  const lines = await waitForStderr(child, /deployment #(\d+): load\n/);
  const id = Number(/deployment #(\d+): load/.exec(lines)![1]);
  // dockerd dies once a quarter of the layer has gone out: the load request is in flight.
  // (A SIGTERM would let the load finish first: dockerd drains requests before it exits.)
  const start = readBytes(child.pid!);
  for (let i = 0; i < 600 && readBytes(child.pid!) - start < 64 * 1024 * 1024; i++) await sleep(25);
  await stopDaemon('kill');
  const r = await done;

  assert.equal(r.code, 15, r.stdout + r.stderr);
  assert.match(r.stderr, /airlock: error: Docker Engine not reachable at unix:\/\/.*docker\.sock/);
  assert.match(r.stderr, /hint: Is dockerd running\?/);
  const d = deployments(run.state).find((x) => x.id === id)!;
  assert.equal(d.status, 'failed');
  assert.equal(d.step, 'load');
  assert.match(d.reason ?? '', /Docker Engine not reachable/);
  const step = run.journal((j) => j.steps(id).find((s) => s.step === 'load')!);
  assert.equal(step.outcome, 'failed');
  assertNothingRunning();

  await startDaemon();
  // Nothing had touched a service: the engine still runs the deployment before.
  await assertRuns(bench.docker, run.state, 'web', before);

  if (!(await applyAgain(t, v2))) return;
  assertNothingRunning();
  assert.ok(current() > id);
  await assertRuns(bench.docker, run.state, 'web', current());
  assert.equal((await bench.docker.services.inspect('web_web')).Spec.TaskTemplate?.ContainerSpec?.Image, 'applytest/web:2.0.0');
});

test('dockerd killed while the services converge and kept down: exit 15, the deployment left for recovery; with dockerd back, recovery finishes the healthy new specs forward and a re-run completes', async (t) => {
  const v3 = await buildRelease(bench, { version: '3.0.0' });
  const before = current();
  const beforeSpecs = recordedSpecs(run.state, before);
  const child = run.spawnApply(v3, ['--timeout', '20s']);
  const done = finished(child);
  const lines = await waitForStderr(child, /deployment #(\d+): converge\n/);
  const id = Number(/deployment #(\d+): converge/.exec(lines)![1]);
  await stopDaemon('kill');
  // The client retries a while for a daemon that restarts; this one does not come back.
  const r = await done;

  assert.equal(r.code, 15, r.stdout + r.stderr);
  assert.match(r.stderr, /airlock: error: Docker Engine not reachable at unix:\/\/.*docker\.sock/);
  // The undo could not reach the engine either: the deployment stays running, for recovery to finish.
  const d = deployments(run.state).find((x) => x.id === id)!;
  assert.equal(d.status, 'running');
  assert.equal(d.step, 'converge');
  const events = run.journal((j) => j.events({ kind: 'deployment.restore' }).filter((e) => e.details === JSON.stringify({ deployment: id })).map(({ outcome, reason }) => ({ outcome, reason })));
  assert.deepEqual(events, [{ outcome: 'failed', reason: 'engine-unreachable' }]);
  const status = await run.cli(['status', '--json']);
  assert.deepEqual((JSON.parse(status.stdout) as { unfinished: unknown[]; engine: boolean }).unfinished, [{ deployment: id, stack: 'web', step: 'converge' }]);

  await startDaemon();
  // dockerd is back with the new specs, every service sent: recovery alone waits for them to be
  // healthy and commits the deployment, rather than undo a healthy stack to redo it.
  const rec = await run.cli(['recover', '--json', '--timeout', '60s']);
  assert.equal(rec.code, 0, rec.stdout + rec.stderr);
  const recovered = (JSON.parse(rec.stdout) as { recovered: { deployment: number; status: string; reason: string }[] }).recovered;
  assert.deepEqual(
    recovered.map((x) => x.deployment),
    [id],
  );
  assertNothingRunning();
  if (recovered[0]!.status === 'rolled-back') {
    // Unless the restarted engine cannot start the new tasks: then recovery says so and goes back.
    t.diagnostic(`recovery rolled back: ${recovered[0]!.reason}`);
    assert.match(recovered[0]!.reason, /\(not finished forward: the new specs did not converge: .*network sandbox join failed/);
    assert.deepEqual(specDrift(beforeSpecs, await engineSpecs(bench.docker, 'web')), []);
  } else {
    assert.equal(recovered[0]!.status, 'committed');
    assert.equal(current(), id);
    assert.notDeepEqual(specDrift(beforeSpecs, await engineSpecs(bench.docker, 'web')), []);
    await assertRuns(bench.docker, run.state, 'web', id);
  }

  if (!(await applyAgain(t, v3))) return;
  assertNothingRunning();
  await assertRuns(bench.docker, run.state, 'web', current());
  assert.equal((await bench.docker.services.inspect('web_web')).Spec.TaskTemplate?.ContainerSpec?.Image, 'applytest/web:3.0.0');
});

test('dockerd restarted (SIGTERM, then started again) while the services converge: the apply rides the restart out and commits', async (t) => {
  const v4 = await buildRelease(bench, { version: '4.0.0' });
  const child = run.spawnApply(v4);
  const done = finished(child);
  const lines = await waitForStderr(child, /deployment #(\d+): converge\n/);
  const id = Number(/deployment #(\d+): converge/.exec(lines)![1]);
  const t0 = Date.now();
  await stopDaemon('stop');
  await startDaemon();
  t.diagnostic(`dockerd was away for ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const r = await done;
  // While it stops, a 20.10 dockerd answers the connections it still holds with 503 "not a swarm
  // manager", then refuses connections until it is back: all of it retried, within 30 s.
  if (r.code !== 0 && SANDBOX_JOIN_FAILED.test(r.stderr)) {
    // The restart itself went unnoticed; the engine then could not start the new task.
    t.diagnostic(`the restarted engine rejected the new task: ${r.stderr.trim().split('\n').at(-2)}`);
    assert.equal(r.code, 15, r.stdout + r.stderr);
    assert.match(r.stderr, /airlock: error: (services did not converge within \d+ s|service \w+: swarm paused the update): .*network sandbox join failed/);
    assert.equal(deployments(run.state).find((x) => x.id === id)!.status, 'rolled-back');
    assertNothingRunning();
    return;
  }
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(deployments(run.state).find((x) => x.id === id)!.status, 'committed');
  assertNothingRunning();
  await assertRuns(bench.docker, run.state, 'web', current());
  assert.equal(current(), id);
  assert.equal((await bench.docker.services.inspect('web_web')).Spec.TaskTemplate?.ContainerSpec?.Image, 'applytest/web:4.0.0');
});

test('dockerd restarted as the service updates go out: the apply completes, or ends with exit 15 naming the engine and a journal that recovery finishes', async (t) => {
  const v5 = await buildRelease(bench, { version: '5.0.0' });
  const before = current();
  const beforeSpecs = recordedSpecs(run.state, before);
  const child = run.spawnApply(v5);
  const done = finished(child);
  const lines = await waitForStderr(child, /deployment #(\d+): services\n/);
  const id = Number(/deployment #(\d+): services/.exec(lines)![1]);
  await stopDaemon('stop');
  await startDaemon();
  const r = await done;
  const d = deployments(run.state).find((x) => x.id === id)!;
  t.diagnostic(`the apply ended with ${r.code}, deployment #${id} ${d.status}${r.code === 0 ? '' : `: ${r.stderr.trim().split('\n').at(-2)}`}`);
  if (r.code === 0) {
    assert.equal(d.status, 'committed');
  } else {
    // An update the daemon may have taken before it went is not sent again: the apply stops and says why.
    assert.equal(r.code, 15, r.stdout + r.stderr);
    // Or the restarted engine itself rejects the new task (SANDBOX_JOIN_FAILED) and swarm pauses the update.
    assert.match(r.stderr, /airlock: error: (Docker Engine (not reachable at unix:\/\/.*docker\.sock|at unix:\/\/.*docker\.sock (stopped serving as a swarm manager in the middle of bundle apply .*: dockerd is stopping or restarting|is stopping, restarting or not ready|stopped or restarted during POST \/v[\d.]+\/services\/\w+\/update.* and may have done it, so it was not sent again))|service \w+: swarm paused the update: .*network sandbox join failed)/);
    assert.doesNotMatch(r.stderr, /create the swarm first/);
    // Whatever the apply could not finish, recovery does: back to the old specs, or, when every
    // service had been sent and the new specs run healthy, forward to a committed deployment.
    const rec = await run.cli(['recover', '--json', '--timeout', '60s']);
    assert.equal(rec.code, 0, rec.stdout + rec.stderr);
    assertNothingRunning();
    const recovered = deployments(run.state).find((x) => x.id === id)!;
    t.diagnostic(`recovery closed deployment #${id} as ${recovered.status} at step ${recovered.step}`);
    if (recovered.status === 'committed') await assertRuns(bench.docker, run.state, 'web', id);
    else assert.deepEqual(specDrift(beforeSpecs, await engineSpecs(bench.docker, 'web')), []);
    if (!(await applyAgain(t, v5))) return;
  }
  assertNothingRunning();
  await assertRuns(bench.docker, run.state, 'web', current());
  assert.equal((await bench.docker.services.inspect('web_web')).Spec.TaskTemplate?.ContainerSpec?.Image, 'applytest/web:5.0.0');
});
