import type { Journal } from './journal.js';

export type QueueState = 'waiting' | 'applied' | 'failed' | 'superseded';

export interface QueueRow {
  bundle_id: number;
  name: string;
  version: string;
  source: string;
  queued_at: string;
  state: QueueState;
  attempts: number;
  finished_at: string | null;
  reason: string | null;
}

const SELECT = `SELECT q.bundle_id, b.name, b.version, q.source, q.queued_at, q.state, q.attempts, q.finished_at, q.reason
  FROM agent_queue q JOIN bundles b ON b.id = q.bundle_id`;

/** Bundles the agent imported and will deploy in the maintenance window. */
export class AgentQueue {
  constructor(private readonly journal: Journal) {}

  /** Queues a bundle once; a bundle seen before (even long finished) is not queued again. Returns whether it was new. */
  enqueue(bundleId: number, source: string, at = new Date()): boolean {
    const r = this.journal.db
      .prepare(`INSERT OR IGNORE INTO agent_queue (bundle_id, source, queued_at, state) VALUES (?, ?, ?, 'waiting')`)
      .run(bundleId, source, at.toISOString());
    return r.changes === 1;
  }

  get(bundleId: number): QueueRow | undefined {
    return this.journal.db.prepare<[number], QueueRow>(`${SELECT} WHERE q.bundle_id = ?`).get(bundleId);
  }

  waiting(): QueueRow[] {
    return this.journal.db.prepare<[], QueueRow>(`${SELECT} WHERE q.state = 'waiting' ORDER BY q.bundle_id`).all();
  }

  /** Every row; none from a journal opened read-only before migration 4 made the table. */
  all(): QueueRow[] {
    if (!this.journal.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'agent_queue'`).get()) return [];
    return this.journal.db.prepare<[], QueueRow>(`${SELECT} ORDER BY q.bundle_id`).all();
  }

  /** Counted before a try, so a try that kills the process still counts. */
  countAttempt(bundleId: number): number {
    this.journal.db.prepare(`UPDATE agent_queue SET attempts = attempts + 1 WHERE bundle_id = ?`).run(bundleId);
    return this.get(bundleId)!.attempts;
  }

  /** A try that returned, failing for a reason of the host: it does not count towards giving up. */
  retryLater(bundleId: number, reason: string): void {
    this.journal.db.prepare(`UPDATE agent_queue SET attempts = MAX(attempts - 1, 0), reason = ? WHERE bundle_id = ?`).run(reason, bundleId);
  }

  finish(bundleId: number, state: Exclude<QueueState, 'waiting'>, reason: string | null = null): void {
    this.journal.db
      .prepare(`UPDATE agent_queue SET state = ?, reason = ?, finished_at = ? WHERE bundle_id = ?`)
      .run(state, reason, new Date().toISOString(), bundleId);
  }
}
