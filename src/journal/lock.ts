import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { AirlockError } from '../errors/index.js';
import type { Journal } from './journal.js';
import { probeProcess } from '../process/alive.js';
import { bootId, processStartTime } from '../process/identity.js';

/** The lock's row: the holder's pid, and what tells that process from a later one with the same pid. */
export interface LockRow {
  pid: number;
  host: string;
  what: string;
  started_at: string;
  boot_id: string | null;
  start_time: string | null;
  uid: number | null;
}

/** What this process sees of the holder's pid now. */
export interface HolderNow {
  host: string;
  pid: number;
  uid: number;
  bootId: string | undefined;
  probe: ReturnType<typeof probeProcess>;
  /** The start time of the process that has the holder's pid now, if it can be read. */
  startTime: string | undefined;
}

/**
 * Why the row's holder no longer holds the lock, or undefined while it
 * does. Each fact is used only when both sides have it: a row written by an
 * older airlock has no boot id or start time, and a sandboxed agent cannot
 * read the boot id, or another user's processes. What cannot be ruled out
 * still holds the lock; docs/journal.md says how an operator clears it.
 */
export function staleBecause(row: LockRow, now: HolderNow): string | undefined {
  if (row.host !== now.host) return `taken on host ${row.host}, not this one`;
  if (row.pid === now.pid) return 'taken by an earlier process with this pid';
  if (row.boot_id !== null && now.bootId !== undefined && row.boot_id !== now.bootId) return 'taken before the last reboot';
  if (now.probe === 'gone') return `pid ${row.pid} no longer runs`;
  if (row.start_time !== null && now.startTime !== undefined && row.start_time !== now.startTime) return `pid ${row.pid} is now another process (started at tick ${now.startTime}, the holder at ${row.start_time})`;
  // A process of one's own user can be signalled; one that cannot runs as someone else, so it is not the holder.
  if (row.uid === now.uid && now.uid !== 0 && now.probe === 'other-user') return `pid ${row.pid} now runs as another user`;
  return undefined;
}

function holderNow(pid: number, host: string): HolderNow {
  return { host, pid: process.pid, uid: process.geteuid?.() ?? 0, bootId: bootId(), probe: probeProcess(pid), startTime: processStartTime(pid) };
}

/**
 * One apply at a time per host. The lock is a journal row, taken in an
 * immediate transaction. It names the holder by pid, boot id, process start
 * time and uid; a row whose holder is gone (a crash, a reboot, the pid
 * reused by another process) is taken over, and the journal says why.
 * Waits up to `waitMs`, then names the holder.
 */
export async function acquireApplyLock(journal: Journal, what: string, waitMs: number): Promise<() => void> {
  const deadline = Date.now() + waitMs;
  const host = hostname();
  const self = { boot: bootId() ?? null, start: processStartTime(process.pid) ?? null, uid: process.geteuid?.() ?? null };
  for (;;) {
    const holder = journal.db.transaction((): LockRow | undefined => {
      const row = journal.db.prepare<[], LockRow>(`SELECT pid, host, what, started_at, boot_id, start_time, uid FROM apply_lock WHERE id = 1`).get();
      if (row) {
        const stale = staleBecause(row, holderNow(row.pid, host));
        if (stale === undefined) return row;
        journal.record({ kind: 'lock.takeover', outcome: 'info', subject: what, reason: 'stale-lock', message: `took over the apply lock of ${row.what} (pid ${row.pid}, since ${row.started_at}): ${stale}` });
      }
      journal.db
        .prepare(`INSERT OR REPLACE INTO apply_lock (id, pid, host, what, started_at, boot_id, start_time, uid) VALUES (1, ?, ?, ?, ?, ?, ?, ?)`)
        .run(process.pid, host, what, new Date().toISOString(), self.boot, self.start, self.uid);
      return undefined;
    }).immediate();
    if (!holder) {
      return () => journal.db.prepare(`DELETE FROM apply_lock WHERE id = 1 AND pid = ?`).run(process.pid);
    }
    if (Date.now() >= deadline) {
      throw new AirlockError('busy', `another apply is running: ${holder.what} (pid ${holder.pid}, since ${holder.started_at})`, {
        reason: 'apply-locked',
        subject: String(holder.pid),
        hint: `wait for it to finish, or pass a longer --wait. If 'ps -o pid,user,lstart,args -p ${holder.pid}' shows no airlock started then, see "The apply lock" in docs/journal.md`,
      });
    }
    await sleep(Math.min(500, Math.max(0, deadline - Date.now())));
  }
}
