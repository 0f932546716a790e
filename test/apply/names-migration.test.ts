/**
 * A stack deployed before keyed names (`<stack>_<name>-<10 hex of the
 * value's SHA-256>`) moves to the keyed names on its next apply: the one
 * service that uses the object is updated once, as a changed value would
 * update it, the others are not touched, and the old object goes in the
 * cleanup. A rollback to the old deployment recreates the old object from
 * the journal's record. In process, against the fake engine.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { recordedStack } from '../../src/apply/recorded-stack.js';
import { runPipeline } from '../../src/apply/run-pipeline.js';
import { fakeHost, type FakeHost } from '../helpers/fake-apply.js';

let host: FakeHost;
before(async () => {
  host = await fakeHost({ stack: 'mig' });
});
after(async () => host?.close());

const configNames = async () => (await host.fake.configs.list()).map((c) => c.Spec.Name).sort();
const versions = async () => Object.fromEntries((await host.fake.services.list()).map((s) => [s.Spec.Name, s.Version.Index]));
const unkeyed = (value: string) => `mig_release-${createHash('sha256').update(value).digest('hex').slice(0, 10)}`;

test('the next apply of a stack named the old way renames its config once, updating only the service that uses it; rollback brings the old name back', async () => {
  const [old] = await host.apply('1.0.0', { unkeyedNames: true });
  const status = (id: number) => host.ctx.deployments.get(id)?.status;
  assert.equal(status(old!.id), 'committed');
  assert.deepEqual(await configNames(), [unkeyed('release=1.0.0\n')]);
  const before = await versions();

  const [migrated] = await host.apply('1.0.0');
  assert.equal(status(migrated!.id), 'committed');
  const names = await configNames();
  assert.equal(names.length, 1, 'the old object was cleaned up');
  assert.match(names[0]!, /^mig_release-[0-9a-f]{10}$/);
  assert.notEqual(names[0], unkeyed('release=1.0.0\n'), 'the new name is keyed, not the bare hash');
  const after = await versions();
  const updated = Object.keys(after).filter((s) => after[s] !== before[s]);
  assert.deepEqual(updated, ['mig_web'], 'only the service that uses the config was updated');

  // The same keyed names again: nothing changes.
  const [again] = await host.apply('1.0.0');
  assert.equal(status(again!.id), 'committed');
  assert.deepEqual(await versions(), after);

  // Rollback to the deployment made the old way: its object comes back from the journal's record.
  const ctx = host.ctx;
  const first = old!.id;
  const id = ctx.deployments.start({ stack: 'mig', bundleId: null, kind: 'rollback', replaces: ctx.deployments.current('mig')?.id ?? null, appliedBy: 'test', source: 'rollback', restores: first });
  const [back] = await runPipeline(ctx, { stacks: [{ id, stack: 'mig', desired: () => recordedStack(ctx, first, 'mig') }], prune: true, bundle: {} });
  assert.equal(status(back!.id), 'committed');
  assert.deepEqual(await configNames(), [unkeyed('release=1.0.0\n')]);
});
