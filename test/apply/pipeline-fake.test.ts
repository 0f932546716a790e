/**
 * The apply pipeline in-process: a real journal and content store, the fake
 * engine shaped by each recorded engine (test/helpers/fake-apply.ts). A v1
 * then a v2 that changes, adds and removes services and replaces a config;
 * and a v2 that does not converge, rolled back to v1 by the health gate. The
 * same behaviours keep their tests against a real dockerd (apply.test.ts,
 * rollback.test.ts); these pin the pipeline's decisions and what it journals
 * in milliseconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asAirlockError } from '../../src/errors/index.js';
import { engineSpecs, recordedSpecs, specDrift } from '../helpers/apply.js';
import { readJournal } from '../helpers/journal-read.js';
import { configNames } from '../helpers/crash-table.js';
import { fakeHost, type FakeHost } from '../helpers/fake-apply.js';

const ALL_STEPS = ['verify', 'store', 'load', 'prepare', 'services', 'converge', 'commit', 'cleanup'];

const stepsOf = (host: FakeHost, id: number) =>
  readJournal(host.state, (j) => j.steps(id).map(({ step, outcome }) => ({ step, outcome })));
const statusOf = (host: FakeHost, id: number) => host.ctx.deployments.get(id)!;
const stackConfigs = async (host: FakeHost) => (await host.fake.configs.list({ filters: { label: [`com.docker.stack.namespace=${host.stack}`] } })).map((c) => c.Spec.Name).sort();

for (const engine of ['20.10', '28']) {
  test(`fake engine ${engine}: v1 then v2 through the pipeline, every step journaled, the engine running what the journal says`, async () => {
    const host = await fakeHost({ engine });
    try {
      const [first] = await host.apply('1.0.0');
      assert.deepEqual(first!.plan.services.map((c) => `${c.action} ${c.name}`).sort(), ['create-service crash_legacy', 'create-service crash_web', 'create-service crash_worker']);
      assert.deepEqual(stepsOf(host, 1), ALL_STEPS.map((step) => ({ step, outcome: 'ok' })));
      assert.equal(statusOf(host, 1).status, 'committed');
      assert.deepEqual(specDrift(recordedSpecs(host.state, 1), await engineSpecs(host.fake, host.stack)), []);
      // Each new spec is pinned to the image id the load step gave.
      const web = host.ctx.deployments.services(1).find((s) => s.name === 'crash_web')!;
      assert.equal(web.imageId, (await host.fake.images.inspect('crash/web:1.0.0')).Id);
      const v1Configs = await stackConfigs(host);
      assert.equal(v1Configs.length, 1);
      const v1ConfigId = (await host.fake.configs.list()).find((c) => c.Spec.Name === v1Configs[0])!.ID;

      host.fake.calls.length = 0;
      const [second] = await host.apply('2.0.0');
      assert.deepEqual(second!.plan.services.map((c) => `${c.action} ${c.name}`).sort(), [
        'create-service crash_probe',
        'remove-service crash_legacy',
        'update-service crash_web',
        'update-service crash_worker',
      ]);
      assert.deepEqual(second!.plan.cleanup.map((c) => `${c.action} ${c.name}`), [`remove-config ${v1Configs[0]}`]);
      assert.deepEqual(second!.converged.map((s) => `${s.name} ${s.ready}/${s.desired}`).sort(), ['crash_probe 1/1', 'crash_web 1/1', 'crash_worker 1/1']);
      assert.deepEqual(stepsOf(host, 2), ALL_STEPS.map((step) => ({ step, outcome: 'ok' })));
      assert.deepEqual([statusOf(host, 2).status, statusOf(host, 2).replaces, host.ctx.deployments.current(host.stack)?.id], ['committed', 1, 2]);
      const v2Specs = recordedSpecs(host.state, 2);
      assert.deepEqual([...v2Specs.keys()], ['crash_probe', 'crash_web', 'crash_worker']);
      assert.deepEqual(specDrift(v2Specs, await engineSpecs(host.fake, host.stack)), []);
      // The removed service is recorded with no spec after, so a rollback brings it back.
      assert.deepEqual(host.ctx.deployments.services(2).filter((s) => s.after === null).map((s) => [s.name, s.before?.Name]), [['crash_legacy', 'crash_legacy']]);
      // The v1 config went in cleanup, after the v2 one was created in prepare.
      assert.deepEqual(await stackConfigs(host), configNames(v2Specs));
      assert.notDeepEqual(configNames(v2Specs), v1Configs);
      const sent = host.fake.calls.filter((c) => /\.(create|update|delete) /.test(c));
      assert.ok(sent.indexOf(`configs.create ${configNames(v2Specs)[0]}`) < sent.indexOf('services.update crash_web'), sent.join(', '));
      assert.equal(sent.at(-1), `configs.delete ${v1ConfigId}`);
    } finally {
      await host.close();
    }
  });

  test(`fake engine ${engine}: a v2 that does not converge is rolled back to v1 by the health gate`, async () => {
    const host = await fakeHost({ engine, timeoutMs: 200 });
    try {
      await host.apply('1.0.0');
      const v1Configs = await stackConfigs(host);
      host.fake.failImage('crash/web:2.0.0');
      await assert.rejects(host.apply('2.0.0'), (e: unknown) => {
        assert.equal(asAirlockError(e).reason, 'not-converged');
        assert.match(asAirlockError(e).message, /crash_web: 0\/1 ready; rejected on node \w+: No such image: crash\/web:2\.0\.0/);
        return true;
      });
      const d2 = statusOf(host, 2);
      assert.equal(d2.status, 'rolled-back');
      assert.match(d2.reason ?? '', /^did not converge, rolled back to the previous specs: services did not converge within \d+ s: crash_web: 0\/1 ready; rejected/);
      // The converge step failed; nothing after it ran.
      const steps = stepsOf(host, 2);
      assert.deepEqual(steps.map((s) => [s.step, s.outcome]), [...ALL_STEPS.slice(0, 5).map((s) => [s, 'ok']), ['converge', 'failed']]);
      const events = readJournal(host.state, (j) => j.events().filter((e) => e.kind.startsWith('deployment.')).map(({ kind, outcome, reason, subject, details }) => ({ kind, outcome, reason, subject, details })));
      assert.deepEqual(events, [{ kind: 'deployment.rollback', outcome: 'ok', reason: 'health-gate', subject: 'crash', details: JSON.stringify({ deployment: 2 }) }]);
      // v1 runs again: web and worker as they were, legacy back, probe gone; v1's config kept.
      assert.deepEqual(specDrift(recordedSpecs(host.state, 1), await engineSpecs(host.fake, host.stack)), []);
      assert.ok((await stackConfigs(host)).includes(v1Configs[0]!));
      assert.equal(host.ctx.deployments.current(host.stack)?.id, 1);
      assert.deepEqual(host.ctx.deployments.unfinished(), []);
    } finally {
      await host.close();
    }
  });
}
