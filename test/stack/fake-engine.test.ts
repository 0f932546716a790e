/**
 * The planner and convergence in-process, on the fake engine (test/helpers/
 * fake-engine.ts) shaped by each recorded engine: a first deploy, an update,
 * an unchanged re-apply and a failing task, each in milliseconds. The same
 * behaviours keep their tests against a real dockerd (test/stack/deploy.test.ts,
 * test/apply/); these pin the decisions without paying for the engine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asAirlockError } from '../../src/errors/index.js';
import { isOutOfSequence } from '../../src/docker/index.js';
import { stableWindowMs, DEFAULT_STABLE_MS } from '../../src/stack/converge.js';
import { deployStack } from '../../src/apply/stack-deploy.js';
import { unkeyedSuffix } from '../../src/compose/convert/index.js';
import { desiredStack } from '../../src/stack/desired.js';
import type { DesiredStack } from '../../src/stack/types.js';
import type { TaskSpec } from '../../src/docker/types.js';
import { loadEngineFixtures, recordedEngines } from '../helpers/engine-fixtures.js';
import { FakeEngine } from '../helpers/fake-engine.js';

/** Short enough for milliseconds, long enough that one poll cannot call a stack stable. */
const FAST = { stableMs: 5, pollMs: 1, timeoutMs: 2000 };

async function stackOf(fake: FakeEngine, compose: string, stack = 'shop'): Promise<DesiredStack> {
  const files = [{ name: 'compose.yml', content: compose }];
  const data: Record<string, string> = { '/stack/token.txt': 's3cret\n' };
  const readFile = (p: string) => Buffer.from(data[p] ?? '');
  return (await desiredStack({ stack, files, workingDir: '/stack', env: {}, apiVersion: await fake.client.apiVersion(), readFile, nameSuffix: async () => unkeyedSuffix })).desired;
}

const v1 = `
services:
  web:
    image: shop/web:1
    deploy: { replicas: 2 }
    secrets: [token]
    environment: { MODE: one }
  worker:
    image: shop/worker:1
secrets:
  token: { file: ./token.txt }
`;
const v2 = v1.replace('MODE: one', 'MODE: two');

for (const engine of ['20.10', '28']) {
  test(`fake engine ${engine}: a first deploy creates every object and converges`, async () => {
    const fake = new FakeEngine(engine);
    const r = await deployStack(fake, await stackOf(fake, v1), { wait: true, ...FAST });
    assert.deepEqual(r.plan.prepare.map((s) => s.action).sort(), ['create-network', 'create-secret']);
    assert.deepEqual(r.plan.services.map((s) => `${s.action} ${s.name}`).sort(), ['create-service shop_web', 'create-service shop_worker']);
    assert.deepEqual(r.converged?.map((s) => `${s.name} ${s.ready}/${s.desired}`).sort(), ['shop_web 2/2', 'shop_worker 1/1']);
    // The engine filled in its recorded defaults, as a real one does.
    const web = await fake.services.inspect('shop_web');
    assert.equal(web.Spec.TaskTemplate?.ContainerSpec?.Isolation, 'default');
  });

  test(`fake engine ${engine}: an update changes only the changed service, and its new tasks converge`, async () => {
    const fake = new FakeEngine(engine);
    await deployStack(fake, await stackOf(fake, v1), { wait: true, ...FAST });
    const before = (await fake.tasks.list({ filters: { service: ['shop_web'] } })).filter((t) => t.DesiredState === 'running').map((t) => t.ID);
    fake.calls.length = 0;
    const r = await deployStack(fake, await stackOf(fake, v2), { wait: true, ...FAST });
    assert.deepEqual(r.plan.services.map((s) => `${s.action} ${s.name}`), ['update-service shop_web']);
    const step = r.plan.services[0]!;
    assert.ok(step.action === 'update-service' && step.changes.some((c) => c.path === 'TaskTemplate.ContainerSpec.Env'));
    assert.deepEqual(fake.calls.filter((c) => !c.startsWith('services.create') && c.includes('.')), ['services.update shop_web']);
    assert.deepEqual(r.converged?.find((s) => s.name === 'shop_web'), { name: 'shop_web', ready: 2, desired: 2, errors: [] });
    const now = (await fake.tasks.list({ filters: { service: ['shop_web'] } })).filter((t) => t.DesiredState === 'running');
    assert.equal(now.length, 2);
    assert.ok(now.every((t) => !before.includes(t.ID) && t.Spec.ContainerSpec?.Env?.includes('MODE=two')));
    assert.equal((await fake.services.inspect('shop_web')).UpdateStatus?.State, 'completed');
  });

  test(`fake engine ${engine}: the same files again change nothing`, async () => {
    const fake = new FakeEngine(engine);
    await deployStack(fake, await stackOf(fake, v1), { wait: true, ...FAST });
    fake.calls.length = 0;
    const r = await deployStack(fake, await stackOf(fake, v1), { wait: true, ...FAST });
    assert.deepEqual(r.plan.prepare, []);
    assert.deepEqual(r.plan.services, []);
    assert.deepEqual(r.plan.unchanged, ['shop_web', 'shop_worker']);
    assert.deepEqual(fake.calls.filter((c) => /\.(create|update|delete) /.test(c)), []);
  });

  test(`fake engine ${engine}: a task that fails is reported by the convergence, with its error`, async () => {
    const fake = new FakeEngine(engine);
    fake.failImage('shop/worker:1', { state: 'failed', err: 'task: non-zero exit (1)' });
    await assert.rejects(deployStack(fake, await stackOf(fake, v1), { wait: true, ...FAST, timeoutMs: 100 }), (e: unknown) => {
      const err = asAirlockError(e);
      assert.equal(err.reason, 'not-converged');
      assert.match(err.message, /shop_worker: 0\/1 ready; failed on node \w+: task: non-zero exit \(1\)/);
      assert.doesNotMatch(err.message, /shop_web/);
      return true;
    });
  });

  test(`fake engine ${engine}: an image the engine lacks is rejected with the recorded error`, async () => {
    const fake = new FakeEngine(engine);
    fake.failImage('shop/worker:1');
    await assert.rejects(deployStack(fake, await stackOf(fake, v1), { wait: true, ...FAST, timeoutMs: 100 }), /shop_worker: 0\/1 ready; rejected on node \w+: No such image: shop\/worker:1/);
  });
}

test('the stability window: a task that runs for a moment and then fails is not called converged', async () => {
  const fake = new FakeEngine('20.10');
  // Each task runs for 20 ms, then exits; swarm starts another.
  fake.failImage('shop/worker:1', { state: 'failed', err: 'task: non-zero exit (2)', runsForMs: 20 });
  await assert.rejects(deployStack(fake, await stackOf(fake, v1), { wait: true, stableMs: 200, pollMs: 1, timeoutMs: 600 }), (e: unknown) => asAirlockError(e).reason === 'not-converged');
  // Without a window, the first poll that sees it running calls it converged: what the window is for.
  const bare = new FakeEngine('20.10');
  bare.failImage('shop/worker:1', { state: 'failed', err: 'task: non-zero exit (2)', runsForMs: 20 });
  const r = await deployStack(bare, await stackOf(bare, v1), { wait: true, stableMs: 0, pollMs: 1, timeoutMs: 600 });
  assert.deepEqual(r.converged?.find((s) => s.name === 'shop_worker'), { name: 'shop_worker', ready: 1, desired: 1, errors: [] });
});

test('stableWindowMs: 5 s unless AIRLOCK_STABLE_MS says otherwise, and a bad value is refused by name', () => {
  assert.equal(stableWindowMs({}), DEFAULT_STABLE_MS);
  assert.equal(DEFAULT_STABLE_MS, 5000);
  assert.equal(stableWindowMs({ AIRLOCK_STABLE_MS: '20' }), 20);
  assert.throws(() => stableWindowMs({ AIRLOCK_STABLE_MS: '2s' }), (e: unknown) => asAirlockError(e).kind === 'config' && /AIRLOCK_STABLE_MS=2s/.test(asAirlockError(e).message));
});

/** The fake's answers against what the engines answered: same fields, same error classes. */
for (const engine of recordedEngines()) {
  test(`fake engine answers have the shapes Docker ${engine} recorded`, async () => {
    const f = loadEngineFixtures(engine);
    const fake = new FakeEngine(engine);
    const keys = (o: object) => Object.keys(o).sort();
    assert.deepEqual(await fake.system.version(), f.version);
    assert.equal(await fake.client.apiVersion(), f.apiVersion);

    const net = await fake.networks.create({ ...f.networkSent, Name: 'rec_default' });
    assert.deepEqual(keys(net), keys(f.networkCreate));
    assert.deepEqual(keys(await fake.networks.inspect(net.Id)), keys(f.networkInspect));
    const sec = await fake.secrets.create({ Name: 'rec_token', Labels: { a: 'b' }, Data: 'eA==' });
    assert.deepEqual(keys(sec), keys(f.secretCreate));
    assert.deepEqual(keys((await fake.secrets.list())[0]!), keys(f.secretInspect));
    assert.deepEqual(keys((await fake.secrets.list())[0]!.Spec), keys(f.secretInspect.Spec).filter((k) => k !== 'Data'));
    const cfg = await fake.configs.create({ Name: 'rec_conf', Labels: { a: 'b' }, Data: 'eA==' });
    assert.deepEqual(keys((await fake.configs.list()).find((c) => c.ID === cfg.ID)!.Spec), keys(f.configInspect.Spec));

    // The recording's secret, config and network, named by this fake's ids.
    const withFakeIds = <T extends TaskSpec | undefined>(template: T): T => {
      template!.ContainerSpec!.Secrets![0]!.SecretID = sec.ID;
      template!.ContainerSpec!.Configs![0]!.ConfigID = cfg.ID;
      template!.Networks![0]!.Target = net.Id;
      return template;
    };
    // The recorded service, sent again with this fake's object ids: stored as the engine stored it.
    const sent = structuredClone(f.serviceSent);
    withFakeIds(sent.TaskTemplate);
    const created = await fake.services.create(sent);
    assert.deepEqual(keys(created), keys(f.serviceCreate));
    const inspected = await fake.services.inspect(created.ID);
    assert.deepEqual(keys(inspected), keys(f.serviceInspect));
    // Against the recording itself, not the defaults the fake took from it: what the engine filled in, and left as sent.
    const storedSpec = structuredClone(f.serviceInspect.Spec);
    withFakeIds(storedSpec.TaskTemplate);
    assert.deepEqual(inspected.Spec, storedSpec);
    assert.deepEqual(inspected.Endpoint, { ...f.serviceInspect.Endpoint, VirtualIPs: f.serviceInspect.Endpoint!.VirtualIPs!.map((v) => ({ ...v, NetworkID: net.Id })) });
    await fake.tasks.list();
    const [task] = await fake.tasks.list({ filters: { service: [created.ID] } });
    const recordedTask = f.tasksRunning[0]!;
    assert.deepEqual(keys(task!), keys(recordedTask));
    assert.deepEqual(task!.Spec, withFakeIds(structuredClone(recordedTask.Spec)));
    assert.equal(task!.Status.State, 'running');
    const [listed] = await fake.services.list({ status: true, filters: { name: [sent.Name!] } });
    // One replica, running: the counts the engine gave at the same point.
    assert.deepEqual(listed!.ServiceStatus, f.serviceListStatus[0]!.ServiceStatus);

    const update = await fake.services.update(created.ID, inspected.Version.Index, { ...sent, Labels: { ...sent.Labels, v: '2' } });
    assert.deepEqual(keys(update), keys(f.serviceUpdate));
    assert.deepEqual(keys(await fake.services.inspect(created.ID)).filter((k) => k !== 'UpdateStatus'), keys(f.serviceInspectUpdated).filter((k) => k !== 'UpdateStatus'));

    // Errors: the recorded status and message, as the real client's typed errors.
    await assert.rejects(fake.services.update(created.ID, inspected.Version.Index, sent), (e: unknown) => isOutOfSequence(e));
    await assert.rejects(fake.services.inspect('rec_nothing'), (e: unknown) => {
      const err = asAirlockError(e);
      return err.kind === 'notFound' && err.message.startsWith(f.errors['404-service']!.body.message.replace('STACK_nothing', 'rec_nothing'));
    });
    await assert.rejects(fake.secrets.create({ Name: 'rec_token' }), (e: unknown) => asAirlockError(e).reason === 'conflict' && asAirlockError(e).message.includes('rec_token'));
    await assert.rejects(fake.networks.create({ ...f.networkSent, Name: 'rec_default' }), (e: unknown) => asAirlockError(e).reason === 'conflict');
    fake.demote();
    await assert.rejects(fake.services.list(), (e: unknown) => asAirlockError(e).reason === 'not-swarm-manager');
  });
}
