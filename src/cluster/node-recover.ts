/**
 * `airlock recover`'s part for node operations: a drain a kill left running
 * gets its services' placement and update settings put back, through the
 * engine it ran against (the local one, or the inventory's manager).
 */
import type { Docker } from '../docker/index.js';
import { acquireApplyLock } from '../journal/lock.js';
import { Journal } from '../journal/journal.js';
import { Operations } from '../journal/operations.js';
import { loadInventory } from '../remote/inventory.js';
import { journalPresence } from '../store/state-dir.js';
import { connectManager } from './connect.js';
import { recoverOperation, type DrainDetails, type RecoveredOperation } from './node-drain.js';

export async function recoverNodeOperations(stateDir: string, local: () => Promise<Docker>, opts: { lockWaitMs: number; acceptNew?: boolean }): Promise<RecoveredOperation[]> {
  if (journalPresence(stateDir) !== 'present') return [];
  const journal = Journal.open(stateDir);
  try {
    if (new Operations(journal).unfinished().length === 0) return [];
    const release = await acquireApplyLock(journal, 'recover node operations', opts.lockWaitMs);
    try {
      const done: RecoveredOperation[] = [];
      // Read again under the lock: another recover may have closed them meanwhile.
      for (const row of new Operations(journal).unfinished()) {
        const via = (JSON.parse(row.details) as Partial<DrainDetails>).via ?? null;
        if (via === null) {
          done.push(await recoverOperation(await local(), journal, row));
          continue;
        }
        const c = await connectManager(await loadInventory(via), { acceptNew: opts.acceptNew === true });
        try {
          done.push(await recoverOperation(c.docker, journal, row));
        } finally {
          await c.session.close();
        }
      }
      return done;
    } finally {
      release();
    }
  } finally {
    journal.close();
  }
}
