/**
 * SQLite's locks are POSIX locks, held per process: opening and closing any descriptor of the
 * journal's files drops all of them. A second Journal.open in a process (the agent opens one for
 * each record it writes beside its long-lived one) must not do that, or another process takes
 * the WAL index as unused, truncates it under the first connection's mapping (the agent died of
 * SIGBUS so) and may write beside it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Journal } from '../../src/journal/journal.js';
import { tempDir } from '../helpers/fixtures.js';

/** The POSIX locks this process holds on a file, from /proc/locks (`… POSIX ADVISORY READ <pid> <maj>:<min>:<inode> …`). */
function locksOn(path: string): string[] {
  const inode = statSync(path).ino;
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((l) => l.includes(' POSIX ') && l.split(/\s+/).includes(String(process.pid)) && l.includes(`:${inode} `));
}

test("a second Journal.open in the process keeps the first connection's locks on the journal's WAL index", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const first = Journal.open(dir);
    try {
      first.record({ kind: 'prune', outcome: 'info', message: 'first' });
      const shm = join(dir, 'journal.db-shm');
      const before = locksOn(shm);
      assert.ok(before.length > 0, 'the open connection holds a lock on the WAL index');
      const second = Journal.open(dir);
      second.record({ kind: 'prune', outcome: 'info', message: 'second' });
      second.close();
      assert.deepEqual(locksOn(shm), before, 'the first connection still holds its locks');
    } finally {
      first.close();
    }
  } finally {
    await cleanup();
  }
});
