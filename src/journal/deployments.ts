import type { ConfigSpec, NamedServiceSpec, NetworkCreateRequest, SecretSpec } from '../docker/index.js';
import type { Journal } from './journal.js';

/** The steps of an apply, in order, as the journal names them (src/apply/pipeline.ts says what each does). */
export const APPLY_STEPS = ['verify', 'store', 'load', 'prepare', 'services', 'converge', 'commit', 'cleanup', 'done'] as const;
export type ApplyStep = (typeof APPLY_STEPS)[number];

export type DeploymentStatus = 'running' | 'committed' | 'failed' | 'rolled-back';

export interface DeploymentRow {
  id: number;
  stack: string;
  bundle_id: number | null;
  kind: 'apply' | 'rollback';
  status: DeploymentStatus;
  step: ApplyStep;
  replaces: number | null;
  /** For a rollback: the deployment whose specs it restores. */
  restores: number | null;
  started_at: string;
  finished_at: string | null;
  applied_by: string;
  source: string | null;
  reason: string | null;
  recoveries: number;
  bundle_name?: string | null;
  bundle_version?: string | null;
}

export interface ServiceRecord {
  name: string;
  /** The exact spec in the engine before; null when the service did not exist. */
  before: NamedServiceSpec | null;
  /** The exact spec applied; null when the deployment removes the service. */
  after: NamedServiceSpec | null;
  /** The image the spec names, and the id it was pinned to when applied. */
  imageRef: string | null;
  imageId: string | null;
}

/**
 * A network, secret or config as a deployment recorded it: the create spec
 * without its data, and where the data is. `sealed`: the data is the sealed
 * blob the value came in (never the value itself); it is opened again with
 * the site identity when the object is recreated.
 */
export type ObjectRecord =
  | { kind: 'network'; name: string; spec: NetworkCreateRequest; dataDigest: null }
  | { kind: 'secret'; name: string; spec: Omit<SecretSpec, 'Data'>; dataDigest: string | null; sealed?: boolean }
  | { kind: 'config'; name: string; spec: Omit<ConfigSpec, 'Data'>; dataDigest: string | null; sealed?: boolean };

/** A row of `deployment_services`: specs as stored JSON. */
export interface ServiceRow {
  deployment_id: number;
  name: string;
  spec_before: string | null;
  spec_after: string | null;
  image_ref: string | null;
  image_id: string | null;
}

/** A row of `deployment_objects`: the spec as stored JSON. */
export interface ObjectRow {
  deployment_id: number;
  kind: ObjectRecord['kind'];
  name: string;
  spec: string;
  data_digest: string | null;
  sealed: 0 | 1;
}

/** A row of `apply_steps`, as `steps()` reads it. */
export interface StepRow {
  step: string;
  started_at: string;
  finished_at: string | null;
  outcome: string | null;
  detail: string | null;
}

const SELECT = `SELECT d.*, b.name AS bundle_name, b.version AS bundle_version FROM deployments d LEFT JOIN bundles b ON b.id = d.bundle_id`;
const json = (v: unknown) => (v === null ? null : JSON.stringify(v));

/** Deployments: what was applied to each stack, step by step, with the specs before and after. */
export class DeploymentRecords {
  constructor(private readonly journal: Journal) {}

  private get db() {
    return this.journal.db;
  }

  start(
    d: { stack: string; bundleId: number | null; kind: 'apply' | 'rollback'; replaces: number | null; restores?: number; appliedBy: string; source: string | null },
    at = new Date(),
  ): number {
    const r = this.db
      .prepare(`INSERT INTO deployments (stack, bundle_id, kind, status, step, replaces, restores, started_at, applied_by, source) VALUES (?, ?, ?, 'running', 'verify', ?, ?, ?, ?, ?)`)
      .run(d.stack, d.bundleId, d.kind, d.replaces, d.restores ?? null, at.toISOString(), d.appliedBy, d.source);
    return Number(r.lastInsertRowid);
  }

  /** Records that `step` begins: written (and fsynced) before its side effect. */
  beginStep(id: number, step: ApplyStep): number {
    return this.db.transaction(() => {
      this.db.prepare(`UPDATE deployments SET step = ? WHERE id = ?`).run(step, id);
      const r = this.db.prepare(`INSERT INTO apply_steps (deployment_id, step, started_at) VALUES (?, ?, ?)`).run(id, step, new Date().toISOString());
      return Number(r.lastInsertRowid);
    }).immediate();
  }

  endStep(stepId: number, outcome: 'ok' | 'failed', detail?: string): void {
    this.db.prepare(`UPDATE apply_steps SET finished_at = ?, outcome = ?, detail = ? WHERE id = ?`).run(new Date().toISOString(), outcome, detail ?? null, stepId);
  }

  setBundle(id: number, bundleId: number): void {
    this.db.prepare(`UPDATE deployments SET bundle_id = ? WHERE id = ?`).run(bundleId, id);
  }

  recordServices(id: number, services: ServiceRecord[]): void {
    const put = this.db.prepare(
      `INSERT OR REPLACE INTO deployment_services (deployment_id, name, spec_before, spec_after, image_ref, image_id) VALUES (?, ?, ?, ?, ?, ?)`,
    );
    this.db.transaction(() => {
      for (const s of services) put.run(id, s.name, json(s.before), json(s.after), s.imageRef, s.imageId);
    }).immediate();
  }

  recordObjects(id: number, objects: ObjectRecord[]): void {
    const put = this.db.prepare(`INSERT OR REPLACE INTO deployment_objects (deployment_id, kind, name, spec, data_digest, sealed) VALUES (?, ?, ?, ?, ?, ?)`);
    this.db.transaction(() => {
      for (const o of objects) put.run(id, o.kind, o.name, JSON.stringify(o.spec), o.dataDigest, o.kind !== 'network' && o.sealed ? 1 : 0);
    }).immediate();
  }

  finish(id: number, status: Exclude<DeploymentStatus, 'running'>, reason?: string): void {
    this.db
      .prepare(`UPDATE deployments SET status = ?, reason = COALESCE(?, reason), finished_at = ? WHERE id = ?`)
      .run(status, reason ?? null, new Date().toISOString(), id);
  }

  countRecovery(id: number): number {
    this.db.prepare(`UPDATE deployments SET recoveries = recoveries + 1 WHERE id = ?`).run(id);
    return this.get(id)!.recoveries;
  }

  get(id: number): DeploymentRow | undefined {
    return this.db.prepare<[number], DeploymentRow>(`${SELECT} WHERE d.id = ?`).get(id);
  }

  /** Newest first. */
  history(stack?: string, limit = 100): DeploymentRow[] {
    const where = stack ? 'WHERE d.stack = ?' : '';
    return this.db.prepare<(string | number)[], DeploymentRow>(`${SELECT} ${where} ORDER BY d.id DESC LIMIT ?`).all(...(stack ? [stack] : []), limit);
  }

  /** The deployment whose specs the stack runs now: the newest committed one. */
  current(stack: string): DeploymentRow | undefined {
    return this.db.prepare<[string], DeploymentRow>(`${SELECT} WHERE d.stack = ? AND d.status = 'committed' ORDER BY d.id DESC LIMIT 1`).get(stack);
  }

  /** Versions of bundle `name` that were applied and committed at some time. */
  appliedVersions(name: string): string[] {
    return this.db
      .prepare<[string], string>(`SELECT DISTINCT b.version FROM deployments d JOIN bundles b ON b.id = d.bundle_id WHERE b.name = ? AND d.kind = 'apply' AND d.status = 'committed'`)
      .pluck()
      .all(name);
  }

  /** The ids of bundle `bundleId`'s applies that committed. */
  committedApplies(bundleId: number): number[] {
    return this.db.prepare<[number], number>(`SELECT id FROM deployments WHERE bundle_id = ? AND kind = 'apply' AND status = 'committed'`).pluck().all(bundleId);
  }

  /** Whether some deployment of bundle `bundleId` was rolled back (by the health gate, say). */
  wasRolledBack(bundleId: number): boolean {
    return this.db.prepare<[number]>(`SELECT 1 FROM deployments WHERE bundle_id = ? AND status = 'rolled-back'`).get(bundleId) !== undefined;
  }

  /**
   * The newest apply of bundle `bundleId` after deployment `after` that a
   * process gone mid-apply left behind: still running, or closed by recovery
   * as interrupted.
   */
  newestInterruptedApply(bundleId: number, after: number): Pick<DeploymentRow, 'id' | 'step'> | undefined {
    return this.db
      .prepare<[number, number], Pick<DeploymentRow, 'id' | 'step'>>(
        `SELECT id, step FROM deployments WHERE bundle_id = ? AND kind = 'apply' AND id > ?
           AND (status = 'running' OR (status IN ('failed', 'rolled-back') AND reason LIKE 'interrupted at step %'))
         ORDER BY id DESC LIMIT 1`,
      )
      .get(bundleId, after);
  }

  /**
   * Deployments whose stack runs them (the newest committed of each stack)
   * but whose cleanup never finished: a crash came after the commit, or
   * recovery committed them.
   */
  cleanupPending(): DeploymentRow[] {
    // Asked before every apply: the newest committed of each stack in one grouped pass, not a lookup per row.
    return this.db
      .prepare<[], DeploymentRow>(
        `${SELECT} WHERE d.id IN (SELECT MAX(id) FROM deployments WHERE status = 'committed' GROUP BY stack)
         AND NOT EXISTS (SELECT 1 FROM apply_steps s WHERE s.deployment_id = d.id AND s.step = 'cleanup' AND s.finished_at IS NOT NULL) ORDER BY d.id`,
      )
      .all();
  }

  unfinished(): DeploymentRow[] {
    return this.db.prepare<[], DeploymentRow>(`${SELECT} WHERE d.status = 'running' ORDER BY d.id`).all();
  }

  stacks(): string[] {
    return this.db.prepare<[], string>(`SELECT DISTINCT stack FROM deployments ORDER BY stack`).pluck().all();
  }

  services(id: number): ServiceRecord[] {
    const rows = this.db.prepare<[number], ServiceRow>(`SELECT * FROM deployment_services WHERE deployment_id = ? ORDER BY name`).all(id);
    return rows.map((r) => ({
      name: r.name,
      before: r.spec_before === null ? null : (JSON.parse(r.spec_before) as NamedServiceSpec),
      after: r.spec_after === null ? null : (JSON.parse(r.spec_after) as NamedServiceSpec),
      imageRef: r.image_ref,
      imageId: r.image_id,
    }));
  }

  objects(id: number): ObjectRecord[] {
    const rows = this.db.prepare<[number], ObjectRow>(`SELECT * FROM deployment_objects WHERE deployment_id = ? ORDER BY kind, name`).all(id);
    // The spec was written from the same union by recordObjects: its kind says which it is.
    return rows.map((r) => ({ kind: r.kind, name: r.name, spec: JSON.parse(r.spec) as never, dataDigest: r.data_digest, ...(r.sealed ? { sealed: true } : {}) }) as ObjectRecord);
  }

  steps(id: number): StepRow[] {
    return this.db.prepare<[number], StepRow>(`SELECT step, started_at, finished_at, outcome, detail FROM apply_steps WHERE deployment_id = ? ORDER BY id`).all(id);
  }
}
