/**
 * node-cron warns by itself when a run was missed (the event loop was busy
 * past a tick). In the agent that warning must be a line of the agent's log,
 * in its format, not bare text on stderr.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import cron from 'node-cron';
import { cronLogger } from '../../src/agent/cron-log.js';
import { createLogger } from '../../src/agent/log.js';

test('a run node-cron missed while the event loop was busy is said in the agent log format, with the schedule', async () => {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', write: (l) => lines.push(l), colour: false });
  const task = cron.schedule('* * * * * *', () => undefined, { name: 'poll', logger: cronLogger(log, 'poll') });
  try {
    await sleep(1_100);
    const until = Date.now() + 2_600;
    while (Date.now() < until) {
      // Busy, as a host under load: the ticks in this span are missed.
    }
    await sleep(1_500);
  } finally {
    await task.destroy();
  }
  const missed = lines.filter((l) => l.includes('missed execution'));
  assert.ok(missed.length > 0, `no missed-run line among:\n${lines.join('\n')}`);
  for (const l of missed) assert.match(l, /^level=warn msg=scheduler schedule=poll message="missed execution at [^"]+"$/);
});
