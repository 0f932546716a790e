import type { Journal } from './journal.js';

/**
 * The steps of an engine change, in order. The row's step is written before
 * the step's side effect, so `recover` knows how far a killed change got.
 */
export const ENGINE_STEPS = ['preflight', 'place', 'configure', 'drain', 'stop', 'switch', 'start', 'check', 'activate', 'done'] as const;
export type EngineStep = (typeof ENGINE_STEPS)[number];
export type EngineChangeKind = 'install' | 'upgrade' | 'rollback';
export type EngineChangeStatus = 'running' | 'committed' | 'failed' | 'rolled-back';

export interface EngineChangeRow {
  id: number;
  kind: EngineChangeKind;
  bundle_id: number | null;
  form: string;
  version: string;
  previous_form: string | null;
  previous_version: string | null;
  previous_bundle_id: number | null;
  status: EngineChangeStatus;
  step: EngineStep;
  drained_node: string | null;
  started_at: string;
  finished_at: string | null;
  applied_by: string;
  reason: string | null;
  recoveries: number;
}

export interface EngineChangeStart {
  kind: EngineChangeKind;
  bundleId: number | null;
  form: string;
  version: string;
  previous: { form: string; version: string; bundleId: number | null } | null;
  appliedBy: string;
}

/** The journal's record of engine installs, upgrades and rollbacks (table engine_changes). */
export class EngineChanges {
  constructor(private readonly journal: Journal) {}

  private get db() {
    return this.journal.db;
  }

  begin(c: EngineChangeStart, now = new Date()): number {
    const r = this.db
      .prepare(
        `INSERT INTO engine_changes (kind, bundle_id, form, version, previous_form, previous_version, previous_bundle_id, status, step, started_at, applied_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'running', 'preflight', ?, ?)`,
      )
      .run(c.kind, c.bundleId, c.form, c.version, c.previous?.form ?? null, c.previous?.version ?? null, c.previous?.bundleId ?? null, now.toISOString(), c.appliedBy);
    return Number(r.lastInsertRowid);
  }

  step(id: number, step: EngineStep): void {
    this.db.prepare(`UPDATE engine_changes SET step = ? WHERE id = ?`).run(step, id);
  }

  drained(id: number, nodeId: string | null): void {
    this.db.prepare(`UPDATE engine_changes SET drained_node = ? WHERE id = ?`).run(nodeId, id);
  }

  finish(id: number, status: Exclude<EngineChangeStatus, 'running'>, reason?: string, now = new Date()): void {
    this.db
      .prepare(`UPDATE engine_changes SET status = ?, reason = COALESCE(?, reason), step = CASE WHEN ? = 'committed' THEN 'done' ELSE step END, finished_at = ? WHERE id = ?`)
      .run(status, reason ?? null, status, now.toISOString(), id);
  }

  countRecovery(id: number): void {
    this.db.prepare(`UPDATE engine_changes SET recoveries = recoveries + 1 WHERE id = ?`).run(id);
  }

  get(id: number): EngineChangeRow | undefined {
    return this.db.prepare(`SELECT * FROM engine_changes WHERE id = ?`).get(id) as EngineChangeRow | undefined;
  }

  /** A change a killed airlock left running; at most one, since changes take the apply lock. */
  unfinished(): EngineChangeRow | undefined {
    return this.db.prepare(`SELECT * FROM engine_changes WHERE status = 'running' ORDER BY id DESC LIMIT 1`).get() as EngineChangeRow | undefined;
  }

  /** The change that made the engine that runs now: the newest committed one. */
  current(): EngineChangeRow | undefined {
    return this.db.prepare(`SELECT * FROM engine_changes WHERE status = 'committed' ORDER BY id DESC LIMIT 1`).get() as EngineChangeRow | undefined;
  }

  list(limit = 20): EngineChangeRow[] {
    return this.db.prepare(`SELECT * FROM engine_changes ORDER BY id DESC LIMIT ?`).all(limit) as EngineChangeRow[];
  }
}
