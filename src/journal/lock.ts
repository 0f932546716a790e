import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { AirlockError } from '../errors/index.js';
import type { Journal } from './journal.js';
import { isProcessAlive } from '../process/alive.js';

interface LockRow {
  pid: number;
  host: string;
  what: string;
  started_at: string;
}


/**
 * One apply at a time per host. The lock is a journal row, taken in an
 * immediate transaction; a row left by a process that no longer runs (a
 * crash) is taken over. Waits up to `waitMs`, then names the holder.
 */
export async function acquireApplyLock(journal: Journal, what: string, waitMs: number): Promise<() => void> {
  const deadline = Date.now() + waitMs;
  const host = hostname();
  for (;;) {
    const holder = journal.db.transaction((): LockRow | undefined => {
      const row = journal.db.prepare(`SELECT pid, host, what, started_at FROM apply_lock WHERE id = 1`).get() as LockRow | undefined;
      if (row && row.host === host && isProcessAlive(row.pid) && row.pid !== process.pid) return row;
      journal.db.prepare(`INSERT OR REPLACE INTO apply_lock (id, pid, host, what, started_at) VALUES (1, ?, ?, ?, ?)`).run(process.pid, host, what, new Date().toISOString());
      return undefined;
    }).immediate();
    if (!holder) {
      return () => journal.db.prepare(`DELETE FROM apply_lock WHERE id = 1 AND pid = ?`).run(process.pid);
    }
    if (Date.now() >= deadline) {
      throw new AirlockError('busy', `another apply is running: ${holder.what} (pid ${holder.pid}, since ${holder.started_at})`, {
        reason: 'apply-locked',
        hint: 'wait for it to finish, or pass a longer --wait',
      });
    }
    await sleep(Math.min(500, Math.max(0, deadline - Date.now())));
  }
}
