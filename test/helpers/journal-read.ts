/**
 * How tests read a host's journal: opened read-only, straight from the file
 * (no migration, no integrity check: a test may look at a journal airlock
 * would refuse), with one typed method per table the tests ask about. Tests
 * filter and pick fields in TypeScript; the SQL stays here and in src/journal/.
 * Writing fixtures (an older schema, a stale lock, a damaged page) is not
 * reading: those tests say so where they write.
 */
import Database from 'better-sqlite3';
import type { Manifest } from '../../src/bundle/manifest.js';
import type { QueueRow } from '../../src/journal/agent-queue.js';
import type { BundleRow } from '../../src/journal/bundles.js';
import type { DeploymentRow, ObjectRow, ServiceRow } from '../../src/journal/deployments.js';
import type { EventRow } from '../../src/journal/journal.js';
import { journalPathIn } from '../../src/store/state-dir.js';

/** A bundle as stored, with its signed manifest and signature bytes. */
export interface StoredBundleRow extends BundleRow {
  manifest: Buffer;
  signature: Buffer;
}

export interface StoredBlobRow {
  digest: string;
  size: number;
  kind: string;
  stored_at: string;
}

/** `refs` is the JSON array as stored. */
export interface StoredImageRow {
  id: string;
  refs: string;
  first_loaded_at: string;
  last_checked_at: string;
}

export interface StoredStepRow {
  id: number;
  deployment_id: number;
  step: string;
  started_at: string;
  finished_at: string | null;
  outcome: 'ok' | 'failed' | null;
  detail: string | null;
}

export type JournalTable = 'bundles' | 'blobs' | 'bundle_blobs' | 'images' | 'bundle_images' | 'deployments' | 'events';

/** What the tests look at in a journal; every list in the order the rows were written (rowid), unless it says otherwise. */
export class JournalReader {
  private constructor(private readonly db: Database.Database) {}

  /** For a test that reads the journal more than once; `readJournal` closes it for you. */
  static open(state: string): JournalReader {
    return new JournalReader(new Database(journalPathIn(state), { readonly: true }));
  }

  close(): void {
    this.db.close();
  }

  bundles(): StoredBundleRow[] {
    return this.db.prepare<[], StoredBundleRow>('SELECT * FROM bundles ORDER BY id').all();
  }

  /** The signed manifest of the bundle imported as `version`. */
  manifest(version: string): Manifest {
    const row = this.bundles().find((b) => b.version === version);
    if (!row) throw new Error(`no bundle ${version} in the journal`);
    return JSON.parse(row.manifest.toString('utf8')) as Manifest;
  }

  blobs(): StoredBlobRow[] {
    return this.db.prepare<[], StoredBlobRow>('SELECT * FROM blobs ORDER BY digest').all();
  }

  /** Which blobs each bundle holds, by bundle then digest; a pruned bundle has none. */
  bundleBlobs(): { bundle_id: number; digest: string }[] {
    return this.db.prepare<[], { bundle_id: number; digest: string }>('SELECT * FROM bundle_blobs ORDER BY bundle_id, digest').all();
  }

  images(): StoredImageRow[] {
    return this.db.prepare<[], StoredImageRow>('SELECT * FROM images ORDER BY rowid').all();
  }

  /** With the bundle's name and version, as `airlock history` shows them. */
  deployments(): DeploymentRow[] {
    return this.db
      .prepare<[], DeploymentRow>('SELECT d.*, b.name AS bundle_name, b.version AS bundle_version FROM deployments d LEFT JOIN bundles b ON b.id = d.bundle_id ORDER BY d.id')
      .all();
  }

  deployment(id: number): DeploymentRow {
    const d = this.deployments().find((r) => r.id === id);
    if (!d) throw new Error(`no deployment ${id} in the journal`);
    return d;
  }

  /** Services of every deployment, or of one, by deployment then name. */
  services(deploymentId?: number): ServiceRow[] {
    const rows = this.db.prepare<[], ServiceRow>('SELECT * FROM deployment_services ORDER BY deployment_id, name').all();
    return deploymentId === undefined ? rows : rows.filter((r) => r.deployment_id === deploymentId);
  }

  /** Networks, secrets and configs of every deployment, by deployment, kind, name. */
  objects(): ObjectRow[] {
    return this.db.prepare<[], ObjectRow>('SELECT * FROM deployment_objects ORDER BY deployment_id, kind, name').all();
  }

  steps(deploymentId: number): StoredStepRow[] {
    return this.db.prepare<[number], StoredStepRow>('SELECT * FROM apply_steps WHERE deployment_id = ? ORDER BY id').all(deploymentId);
  }

  /** The agent's queue, by bundle id, with each bundle's name and version. */
  queue(): QueueRow[] {
    return this.db
      .prepare<[], QueueRow>(
        `SELECT q.bundle_id, b.name, b.version, q.source, q.queued_at, q.state, q.attempts, q.finished_at, q.reason
         FROM agent_queue q JOIN bundles b ON b.id = q.bundle_id ORDER BY q.bundle_id`,
      )
      .all();
  }

  /** Events, oldest first; only those matching every field given. */
  events(filter: { kind?: string; reason?: string; subject?: string } = {}): EventRow[] {
    const rows = this.db.prepare<[], EventRow>('SELECT * FROM events ORDER BY id').all();
    return rows.filter((e) => (filter.kind === undefined || e.kind === filter.kind) && (filter.reason === undefined || e.reason === filter.reason) && (filter.subject === undefined || e.subject === filter.subject));
  }

  /** Every row of a table as stored, for before/after comparisons. */
  rows(table: JournalTable): Record<string, unknown>[] {
    return this.db.prepare<[], Record<string, unknown>>(`SELECT * FROM ${table}`).all();
  }

  /** SQLite's `PRAGMA integrity_check`: 'ok' for a sound file. */
  integrity(): string {
    return this.db.pragma('integrity_check', { simple: true }) as string;
  }

  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  journalMode(): string {
    return this.db.pragma('journal_mode', { simple: true }) as string;
  }
}

/** Opens the journal in state dir `state` read-only, runs `fn` on it and closes it. */
export function readJournal<T>(state: string, fn: (j: JournalReader) => T): T {
  const reader = JournalReader.open(state);
  try {
    return fn(reader);
  } finally {
    reader.close();
  }
}
