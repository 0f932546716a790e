/**
 * `airlock node drain|activate|pause` on a real 4-host lab swarm (scripts/lab):
 * a service at 3 replicas, one per node of zone a, cannot leave a node of the
 * zone (refused, nothing changed); once a fourth node is in the zone, the
 * drain moves the tasks start-first while a poller from the test, every
 * 200 ms through the manager's API, never sees a replicated service below
 * its count; the specs end as they were and no task restarts for it. A drain
 * killed mid-way is put back by `airlock recover`.
 */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Docker, Service, ServiceSpec, SwarmNode, Task } from '../../src/docker/index.js';
import { Journal } from '../../src/journal/journal.js';
import { Operations } from '../../src/journal/operations.js';
import { diffSpecs } from '../../src/stack/spec-diff.js';
import { awayFrom } from '../../src/cluster/drain-specs.js';
import { runCli, spawnCli } from '../helpers/fixtures.js';
import { writeBusyboxLayer, writeImageArchive } from '../helpers/images.js';
import { type Lab, type LabHost, startLab } from '../helpers/lab.js';

// Short: unix socket paths below the lab folder must stay under 108 bytes.
const base = await mkdtemp('/tmp/airlock-lab-nd-');
const IMAGE = 'drain/app:1';
const SEC = 1_000_000_000;

describe('node drain on a 4-host lab swarm', { timeout: 240_000 }, () => {
  let lab: Lab;
  let manager: Docker;
  let state: string;
  let env: NodeJS.ProcessEnv;
  const ids = new Map<string, string>();

  const node = (name: string): Promise<SwarmNode> => manager.nodes.inspect(ids.get(name)!);
  const setNode = async (name: string, change: (n: SwarmNode) => SwarmNode['Spec']) => {
    const n = await node(name);
    await manager.nodes.update(n.ID, n.Version.Index, change(n));
  };
  const services = async (): Promise<Map<string, Service>> => new Map((await manager.services.list()).map((s) => [s.Spec.Name, s]));
  const running = (tasks: Task[], service: Service) => tasks.filter((t) => t.ServiceID === service.ID && t.DesiredState === 'running' && t.Status.State === 'running');
  const airlock = (...args: string[]) => runCli(['node', ...args, '--state', state], env);
  /** A spec as a drain leaves it: as it was, a missing placement made empty (drain-specs.ts restoredSpec says why). */
  const putBack = (spec: ServiceSpec): ServiceSpec => ({ ...spec, TaskTemplate: { ...spec.TaskTemplate, Placement: spec.TaskTemplate?.Placement ?? {} } });
  const managerAlive = () => assert.doesNotThrow(() => process.kill(lab.host('h1').pids.dockerd, 0), "the manager's dockerd runs");

  /** Waits until every replicated service runs its count and every global one a task per active node. */
  async function settled(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const list = await manager.services.list({ status: true });
      if (list.every((s) => s.ServiceStatus && s.ServiceStatus.RunningTasks === s.ServiceStatus.DesiredTasks && s.ServiceStatus.DesiredTasks > 0)) return;
      if (Date.now() > deadline) throw new Error(`services not settled: ${list.map((s) => `${s.Spec.Name} ${JSON.stringify(s.ServiceStatus)}`).join(', ')}`);
      await sleep(300);
    }
  }

  const pick = (e: { reason: string; message: string }) => ({ reason: e.reason, message: e.message });

  /**
   * Runs `work` while polling every 200 ms, through the manager's API, how
   * many tasks of each service run (desired running and running, as
   * `docker service ls` counts them); returns each service's lowest count.
   */
  async function polled<T>(replicated: Service[], work: () => Promise<T>): Promise<{ result: T; lowest: Map<string, number>; polls: number }> {
    const lowest = new Map(replicated.map((s) => [s.Spec.Name, Infinity]));
    let polls = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const tasks = await manager.tasks.list();
        for (const s of replicated) lowest.set(s.Spec.Name, Math.min(lowest.get(s.Spec.Name)!, running(tasks, s).length));
        polls++;
        await sleep(200);
      }
    })();
    try {
      return { result: await work(), lowest, polls };
    } finally {
      polling = false;
      await poller;
    }
  }

  before(async () => {
    lab = await startLab(join(base, 'lab'), 4);
    state = join(base, 'state');
    const [h1, ...workers] = lab.hosts as [LabHost, ...LabHost[]];
    env = { DOCKER_HOST: h1.dockerHost };
    manager = lab.docker(h1);
    await manager.swarm.init({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: h1.address });
    const token = (await manager.swarm.joinTokens()).Worker;
    const archive = join(base, 'app.tar');
    const layer = join(base, 'layer.tar');
    await writeImageArchive(archive, [{ refs: [IMAGE], layers: [{ path: layer, diffId: await writeBusyboxLayer(layer) }], cmd: ['sleep', '3600'] }], 'legacy');
    await Promise.all([
      ...workers.map((w) => lab.docker(w).swarm.join({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: w.address, RemoteAddrs: [`${h1.address}:2377`], JoinToken: token })),
      ...lab.hosts.map((h) => lab.docker(h).images.loadAll(() => createReadStream(archive))),
    ]);
    for (const n of await manager.nodes.list()) ids.set(n.Description!.Hostname!, n.ID);
    for (const h of ['h1', 'h2', 'h3', 'h4']) await setNode(h, (n) => ({ ...n.Spec, Labels: { zone: h === 'h4' ? 'b' : 'a' } }));
    // `sleep` ignores SIGTERM: a short grace period keeps each stop short.
    const template = (extra: object = {}) => ({ ContainerSpec: { Image: IMAGE, StopGracePeriod: SEC / 2 }, RestartPolicy: { Condition: 'any' as const, Delay: SEC / 2 }, ...extra });
    await manager.services.create({
      Name: 'zoned',
      Labels: { purpose: 'one per node of zone a' },
      TaskTemplate: template({ Placement: { Constraints: ['node.labels.zone==a'], MaxReplicas: 1 } }),
      Mode: { Replicated: { Replicas: 3 } },
      UpdateConfig: { Parallelism: 2, Delay: 5 * SEC, FailureAction: 'rollback', Order: 'stop-first' },
    });
    await manager.services.create({ Name: 'spread', TaskTemplate: template(), Mode: { Replicated: { Replicas: 4 } } });
    await manager.services.create({ Name: 'agent', TaskTemplate: template(), Mode: { Global: {} } });
    await settled();
  });
  after(async () => {
    await lab?.stop();
    await rm(base, { recursive: true, force: true });
  });

  test('a drain that would leave a service short is refused, naming it, its count and what fits; nothing changes', async () => {
    const before = await services();
    const r = await airlock('drain', 'h2', '--json', '--reason', 'kernel patch');
    assert.equal(r.code, 14, `${r.stdout}\n${r.stderr}`);
    const err = JSON.parse(r.stdout) as { reason: string; message: string; hint: string };
    assert.equal(err.reason, 'drain-short');
    assert.match(err.message, /^draining h2 \(\w{12}\) would leave 1 service\(s\) short: zoned wants 3, 2 would run \(1 of its 1 task\(s\) on the node fit nowhere else: h1: .*max replicas.*h4: .*zone/);
    assert.match(err.hint, /--force/);
    assert.equal((await node('h2')).Spec.Availability, 'active');
    const after = await services();
    for (const [name, s] of before) assert.equal(after.get(name)!.Version.Index, s.Version.Index, `${name} unchanged`);
    const journal = Journal.open(state, { readonly: true });
    try {
      assert.deepEqual(new Operations(journal).list(), [], 'no operation began');
      const ev = journal.events({ kind: 'node.drain' })[0]!;
      assert.deepEqual([ev.outcome, ev.reason, ev.subject], ['refused', 'drain-short', 'h2']);
    } finally {
      journal.close();
    }
    // An unknown node is not found, naming those there are.
    const unknown = await airlock('drain', 'h9');
    assert.equal(unknown.code, 4);
    assert.match(unknown.stderr, /no node h9 in the swarm \(nodes: h1, h2, h3, h4\)/);
    // A worker's engine cannot manage the swarm.
    const worker = await runCli(['node', 'drain', 'h1', '--state', state, '--json'], { DOCKER_HOST: lab.host('h2').dockerHost });
    assert.equal(worker.code, 15, worker.stdout);
    assert.deepEqual(pick(JSON.parse(worker.stdout)), { reason: 'not-swarm-manager', message: 'this engine (h2) is not a swarm manager: it cannot change a node\'s availability' });
    // The only active node: every other one paused.
    for (const h of ['h2', 'h3', 'h4']) await setNode(h, (n) => ({ ...n.Spec, Availability: 'pause' }));
    try {
      const only = await airlock('drain', 'h1', '--json');
      assert.equal(only.code, 14, only.stdout);
      assert.deepEqual(pick(JSON.parse(only.stdout)), { reason: 'only-active-node', message: `node h1 (${ids.get('h1')!.slice(0, 12)}) is the only active node of the swarm: draining it stops every service` });
      assert.equal((await node('h1')).Spec.Availability, 'active');
    } finally {
      for (const h of ['h2', 'h3', 'h4']) await setNode(h, (n) => ({ ...n.Spec, Availability: 'active' }));
    }
  });

  test('a drain that fits waits for every replica to run elsewhere; a poller never sees a service below its count; specs end as they were', async () => {
    await setNode('h4', (n) => ({ ...n.Spec, Labels: { zone: 'a' } }));
    const before = await services();
    const apiVersion = (await manager.system.version()).ApiVersion;
    const onH2Before = (await manager.tasks.list({ filters: { node: [ids.get('h2')!], 'desired-state': ['running'] } })).map((t) => t.ServiceID);
    assert.ok(onH2Before.includes(before.get('zoned')!.ID), 'zoned has a task on h2');

    const replicated = [...before.values()].filter((s) => s.Spec.Mode?.Replicated);
    const started = Date.now();
    const { result: r, lowest, polls } = await polled(replicated, () => airlock('drain', 'h2', '--reason', 'kernel patch', '--timeout', '90s'));
    managerAlive();
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^node h2 \(\w{12}\) drained in [\d.]+ s: moved .*zoned \(3\/3 elsewhere\).*; stopped there: agent; journal operation #1$/m);
    assert.match(r.stderr, /zoned: 3\/3 running elsewhere, 0 still on the node/);
    assert.ok(polls >= 5, `polled ${polls} times in ${Date.now() - started} ms`);
    for (const s of replicated) assert.ok(lowest.get(s.Spec.Name)! >= s.Spec.Mode!.Replicated!.Replicas!, `${s.Spec.Name} ran ${lowest.get(s.Spec.Name)} of ${s.Spec.Mode!.Replicated!.Replicas} at its lowest (${polls} polls)`);

    assert.equal((await node('h2')).Spec.Availability, 'drain');
    const tasks = await manager.tasks.list();
    const after = await services();
    assert.ok(before.get('zoned')!.Spec.TaskTemplate?.Placement && !before.get('spread')!.Spec.TaskTemplate?.Placement, 'one service with a placement, one without');
    for (const [name, s] of before) {
      const moved = s.Spec.Mode?.Replicated !== undefined && onH2Before.includes(s.ID);
      assert.deepEqual(after.get(name)!.Spec, moved ? putBack(s.Spec) : s.Spec, `${name}: spec as before`);
      if (s.Spec.TaskTemplate?.Placement) assert.deepEqual(diffSpecs(s.Spec, after.get(name)!.Spec, apiVersion), [], `${name}: no drift as airlock compares specs`);
      assert.ok(!tasks.some((t) => t.ServiceID === s.ID && t.NodeID === ids.get('h2') && t.DesiredState === 'running'), `${name}: nothing of it on h2`);
    }
    // The replacement started during the move still runs: putting the placement back restarted nothing.
    const zoned = after.get('zoned')!;
    const onH4 = running(tasks, zoned).find((t) => t.NodeID === ids.get('h4'));
    assert.ok(onH4, 'zoned runs on h4');
    assert.ok(onH4.Spec.Placement?.Constraints?.includes(awayFrom(ids.get('h2')!)), 'the task on h4 is the one the move started');
    const runningIds = new Set(replicated.flatMap((s) => running(tasks, s).map((t) => t.ID)));
    await sleep(3000);
    const later = await manager.tasks.list();
    assert.deepEqual(new Set(replicated.flatMap((s) => running(later, s).map((t) => t.ID))), runningIds, 'the same tasks run 3 s later');

    const journal = Journal.open(state, { readonly: true });
    try {
      const [op] = new Operations(journal).list();
      assert.deepEqual([op!.kind, op!.node, op!.status, op!.step, op!.why], ['drain', ids.get('h2'), 'done', 'done', 'kernel patch']);
      assert.match(op!.who, /@/);
    } finally {
      journal.close();
    }
  });

  test('activate, through the inventory from the jump box: the node is active and ready; pause keeps what runs there', async () => {
    const r = await runCli(['node', 'activate', 'h2', '--inventory', lab.inventoryFile, '--state', state, '--json']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const report = JSON.parse(r.stdout) as { before: string; after: string; state: string };
    assert.deepEqual([report.before, report.after, report.state], ['drain', 'active', 'ready']);
    assert.equal((await node('h2')).Spec.Availability, 'active');
    await settled();
    const p = await airlock('pause', 'h2');
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /^node h2 \(\w{12}\): active -> pause, ready; journal operation #\d+$/m);
    const agentOnH2 = (await manager.tasks.list({ filters: { node: [ids.get('h2')!], 'desired-state': ['running'] } })).length;
    assert.ok(agentOnH2 >= 1, 'the global task on h2 keeps running while paused');
    assert.equal((await airlock('activate', 'h2')).code, 0);
  });

  test('a drain killed mid-way: airlock recover puts the services back and says so; the node stays paused', async () => {
    await settled();
    const before = await services();
    const h3 = ids.get('h3')!;
    const onH3Before = (await manager.tasks.list({ filters: { node: [h3], 'desired-state': ['running'] } })).map((t) => t.ServiceID);
    const child = spawnCli(['node', 'drain', 'h3', '--state', state], { env: { ...process.env, ...env } });
    const exited = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const zoned = await manager.services.inspect('zoned');
      if (zoned.Spec.TaskTemplate?.Placement?.Constraints?.includes(awayFrom(h3))) break;
      assert.ok(Date.now() < deadline, 'the drain never changed zoned');
      await sleep(50);
    }
    child.kill('SIGKILL');
    await exited;
    assert.notDeepEqual((await manager.services.inspect('zoned')).Spec, before.get('zoned')!.Spec, 'killed with zoned changed');

    const r = await runCli(['recover', '--state', state], env);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^node drain #\d+ of h3 \(interrupted at step move\): put back the placement and update settings of .*zoned.*; the node stays pause/m);
    managerAlive();
    const after = await services();
    for (const [name, s] of before) assert.deepEqual(after.get(name)!.Spec, s.Spec.Mode?.Replicated && onH3Before.includes(s.ID) ? putBack(s.Spec) : s.Spec, `${name}: spec as before`);
    assert.equal((await node('h3')).Spec.Availability, 'pause');
    const journal = Journal.open(state, { readonly: true });
    try {
      const op = new Operations(journal).list()[0]!;
      assert.deepEqual([op.kind, op.node, op.status, op.reason], ['drain', h3, 'failed', 'interrupted']);
      assert.equal(journal.events({ kind: 'node.recover' })[0]?.subject, 'h3');
    } finally {
      journal.close();
    }
    const again = await runCli(['recover', '--state', state], env);
    assert.doesNotMatch(again.stdout, /node drain/, 'nothing left to recover');
  });

  test('a drain whose replacement cannot start (no image there) fails at once: the old task never stopped, the settings are put back, the node stays paused', async () => {
    assert.equal((await airlock('activate', 'h3')).code, 0);
    // An image only h3 has; h4 takes the service by its labels but cannot start it.
    const archive = join(base, 'only-h3.tar');
    const layer = join(base, 'only-h3-layer.tar');
    await writeImageArchive(archive, [{ refs: ['drain/only-h3:1'], layers: [{ path: layer, diffId: await writeBusyboxLayer(layer) }], cmd: ['sleep', '3600'] }], 'legacy');
    await lab.docker('h3').images.loadAll(() => createReadStream(archive));
    await setNode('h3', (n) => ({ ...n.Spec, Labels: { ...n.Spec.Labels, img: 'yes' } }));
    await setNode('h4', (n) => ({ ...n.Spec, Labels: { ...n.Spec.Labels, img: 'yes' } }));
    await manager.services.create({
      Name: 'stuck',
      TaskTemplate: { ContainerSpec: { Image: 'drain/only-h3:1', StopGracePeriod: SEC / 2 }, Placement: { Constraints: ['node.hostname==h3'] } },
      Mode: { Replicated: { Replicas: 1 } },
    });
    try {
      await settled();
      const created = await manager.services.inspect('stuck');
      await manager.services.update(created.ID, created.Version.Index, { ...created.Spec, TaskTemplate: { ...created.Spec.TaskTemplate, Placement: { Constraints: ['node.labels.img==yes'] } } });
      await settled();
      const before = await manager.services.inspect('stuck');
      const [task] = running(await manager.tasks.list(), before);
      assert.ok(task && task.NodeID === ids.get('h3'), 'stuck runs on h3');
      const started = Date.now();
      const r = await airlock('drain', 'h3', '--timeout', '60s', '--json');
      assert.equal(r.code, 15, `${r.stdout}\n${r.stderr}`);
      assert.ok(Date.now() - started < 30_000, `said after ${Date.now() - started} ms, not at the timeout`);
      const err = JSON.parse(r.stdout) as { reason: string; message: string };
      assert.equal(err.reason, 'drain-update-paused');
      assert.match(err.message, /^draining h3 \(\w{12}\) failed: stuck: a replacement task failed to start on node \w{12} \(.*No such image: drain\/only-h3:1.*\), and the move paused.*; the services' placement and update settings were put back; the node stays pause$/);
      assert.deepEqual((await manager.services.inspect('stuck')).Spec, before.Spec);
      assert.deepEqual(running(await manager.tasks.list(), before).map((t) => t.ID), [task.ID], 'the task on h3 ran all along');
      assert.equal((await node('h3')).Spec.Availability, 'pause');
      const journal = Journal.open(state, { readonly: true });
      try {
        const op = new Operations(journal).list()[0]!;
        assert.deepEqual([op.kind, op.status, op.step, op.reason], ['drain', 'failed', 'move', 'drain-update-paused']);
      } finally {
        journal.close();
      }
    } finally {
      await manager.services.delete('stuck');
    }
  });

  test("the poller sees what Docker's own drain does: a service below its count while its tasks move", async () => {
    assert.equal((await airlock('activate', 'h3')).code, 0);
    await settled();
    const replicated = [...(await services()).values()].filter((s) => s.Spec.Mode?.Replicated);
    const h4 = ids.get('h4')!;
    const onH4 = (await manager.tasks.list({ filters: { node: [h4], 'desired-state': ['running'] } })).map((t) => t.ServiceID);
    assert.ok(replicated.some((s) => onH4.includes(s.ID)), 'a replicated service runs on h4');
    const { lowest, polls } = await polled(replicated, async () => {
      await setNode('h4', (n) => ({ ...n.Spec, Availability: 'drain' }));
      // Until the orchestrator has taken the node's tasks away, the counts still look whole.
      while ((await manager.tasks.list({ filters: { node: [h4], 'desired-state': ['running'] } })).length > 0) await sleep(100);
      await sleep(1000);
      await settled();
    });
    const dropped = replicated.filter((s) => onH4.includes(s.ID) && lowest.get(s.Spec.Name)! < s.Spec.Mode!.Replicated!.Replicas!);
    assert.ok(dropped.length > 0, `docker's drain kept every count in ${polls} polls: ${JSON.stringify([...lowest])}`);
  });
});
