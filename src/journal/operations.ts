import type { Journal } from './journal.js';

/**
 * Operations on swarm nodes (table operations): a drain, an activate, a
 * pause, with who ran it, why, and how far it got. The step is written
 * before its side effect, and a drain's details hold the service settings it
 * changes, written before the first change, so `recover` can put them back.
 */
export type OperationKind = 'drain' | 'activate' | 'pause';
export type OperationStatus = 'running' | 'done' | 'failed';

export interface OperationRow {
  id: number;
  kind: OperationKind;
  /** The node's ID. */
  node: string;
  status: OperationStatus;
  step: string;
  who: string;
  why: string | null;
  started_at: string;
  finished_at: string | null;
  /** Why it failed (an error reason), when it did. */
  reason: string | null;
  /** JSON: what the operation needs to finish or be undone (see node-drain.ts DrainDetails). */
  details: string;
}

export interface OperationStart {
  kind: OperationKind;
  node: string;
  who: string;
  why?: string | undefined;
  details?: object;
}

export class Operations {
  constructor(private readonly journal: Journal) {}

  private get db() {
    return this.journal.db;
  }

  begin(o: OperationStart, now = new Date()): number {
    const r = this.db
      .prepare(`INSERT INTO operations (kind, node, status, step, who, why, started_at, details) VALUES (?, ?, 'running', 'start', ?, ?, ?, ?)`)
      .run(o.kind, o.node, o.who, o.why ?? null, now.toISOString(), JSON.stringify(o.details ?? {}));
    return Number(r.lastInsertRowid);
  }

  step(id: number, step: string): void {
    this.db.prepare(`UPDATE operations SET step = ? WHERE id = ?`).run(step, id);
  }

  finish(id: number, status: Exclude<OperationStatus, 'running'>, reason?: string, now = new Date()): void {
    this.db.prepare(`UPDATE operations SET status = ?, reason = COALESCE(?, reason), finished_at = ? WHERE id = ?`).run(status, reason ?? null, now.toISOString(), id);
  }

  get(id: number): OperationRow | undefined {
    return this.db.prepare(`SELECT * FROM operations WHERE id = ?`).get(id) as OperationRow | undefined;
  }

  /** Operations a killed airlock left running, oldest first. */
  unfinished(): OperationRow[] {
    return this.db.prepare(`SELECT * FROM operations WHERE status = 'running' ORDER BY id`).all() as OperationRow[];
  }

  list(limit = 20): OperationRow[] {
    return this.db.prepare(`SELECT * FROM operations ORDER BY id DESC LIMIT ?`).all(limit) as OperationRow[];
  }
}
