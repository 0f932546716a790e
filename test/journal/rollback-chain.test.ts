/**
 * Rollback-chain resolution on a real journal: a rollback of a rollback
 * runs what the first rollback restored, and rollback's default target and
 * retention's "keep what rollback would go back to" read the same answer.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Journal } from '../../src/journal/journal.js';
import { DeploymentRecords } from '../../src/journal/deployments.js';
import { effectiveDeployment, restoredChain } from '../../src/journal/rollback-chain.js';
import { rollbackTarget } from '../../src/apply/rollback.js';
import { readJournalFacts } from '../../src/retention/facts.js';
import { planPrune } from '../../src/retention/plan.js';
import { tempDir } from '../helpers/fixtures.js';

let work: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  work = await tempDir('airlock-rollback-chain-');
});
after(async () => {
  await work.cleanup();
});

test('a rollback of a rollback runs what the first one restored, for rollback and retention alike', () => {
  const journal = Journal.open(work.dir);
  try {
    const records = new DeploymentRecords(journal);
    const committed = (d: { kind: 'apply' | 'rollback'; restores?: number }): number => {
      const id = records.start({ stack: 'web', bundleId: null, replaces: null, appliedBy: 'test', source: null, ...d });
      records.finish(id, 'committed');
      return id;
    };
    const a1 = committed({ kind: 'apply' });
    const a2 = committed({ kind: 'apply' });
    committed({ kind: 'apply' }); // a3
    const r1 = committed({ kind: 'rollback', restores: a2 });
    committed({ kind: 'apply' }); // a4
    const r2 = committed({ kind: 'rollback', restores: r1 });

    const history = records.history('web', 10_000);
    const byId = new Map(history.map((d) => [d.id, d]));
    const current = byId.get(r2)!;
    assert.deepEqual(restoredChain(current, (id) => byId.get(id)), [r1, a2]);
    assert.equal(effectiveDeployment(current, (id) => byId.get(id)), a2, 'r2 runs a2 (through r1), not r1');

    // Rollback without --to goes to the release before the one running (a2): a1, not a3 (before r1's id).
    assert.equal(rollbackTarget(history, undefined).id, a1);

    // Retention keeps that same deployment for the default rollback, and the whole chain r2 restores.
    const plan = planPrune(readJournalFacts(journal), 2);
    const reasons = new Map(plan.keptDeployments.map((d) => [d.id, d.reason]));
    assert.equal(reasons.get(a1), 'rollback-default');
    assert.deepEqual(plan.keptDeployments.filter((d) => d.reason === 'rollback-default').map((d) => d.id), [a1]);
    assert.equal(reasons.get(r2), 'current');
    assert.equal(reasons.get(a2), 'restored');
  } finally {
    journal.close();
  }
});
