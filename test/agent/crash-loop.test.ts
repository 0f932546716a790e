/**
 * The crash-loop guard's bookkeeping on a real journal (the kills
 * themselves, with real agent processes, are in agent-faults.test.ts): each
 * death is journaled once, however often a try that returned in between
 * sends the counter back.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { isCrashLoop, noteDeath } from '../../src/agent/crash-loop.js';
import { Journal } from '../../src/journal/journal.js';
import { tempDir } from '../helpers/fixtures.js';

test('a death is journaled once; three before any deployment began make a crash loop, two do not', async () => {
  const work = await tempDir('airlock-crash-loop-');
  const journal = Journal.open(join(work.dir, 'state'));
  try {
    // Try 2 begins: try 1 never returned, and had not begun a deployment.
    assert.deepEqual(noteDeath(journal, 1, 'demo 1.0.0', 2), { noted: { step: 'start', deployment: null }, deaths: [{ step: 'start', deployment: null }] });
    // Try 2 returned (the host's fault); the next try is number 2 again: nothing new died.
    assert.deepEqual(noteDeath(journal, 1, 'demo 1.0.0', 2).noted, undefined);
    const { deaths: two } = noteDeath(journal, 1, 'demo 1.0.0', 3);
    assert.equal(two.length, 2);
    assert.equal(isCrashLoop(two), false);
    const { deaths: three } = noteDeath(journal, 1, 'demo 1.0.0', 4);
    assert.equal(isCrashLoop(three), true);
    // Another bundle's deaths are its own.
    assert.deepEqual(noteDeath(journal, 2, 'demo 1.0.1', 1).deaths, []);
    const events = journal.events({ kind: 'agent.deploy', reason: 'agent-gone', limit: 'all' }).reverse();
    assert.deepEqual(events.map((e) => e.message), ['try 1 ended with the agent gone before its deployment began', 'try 2 ended with the agent gone before its deployment began', 'try 3 ended with the agent gone before its deployment began']);
  } finally {
    journal.close();
    await work.cleanup();
  }
});

test('deaths at different steps are no crash loop', () => {
  assert.equal(isCrashLoop([{ step: 'converge', deployment: 3 }, { step: 'converge', deployment: 2 }, { step: 'load', deployment: 1 }]), false);
  assert.equal(isCrashLoop([{ step: 'services', deployment: 4 }, { step: 'services', deployment: 3 }, { step: 'services', deployment: 2 }, { step: 'load', deployment: 1 }]), true);
});
