import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AirlockError } from '../errors/index.js';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';

export const JOURNAL_FILE = 'journal.db';

export type EventOutcome = 'ok' | 'refused' | 'failed' | 'info';

export interface EventInput {
  kind: string;
  outcome: EventOutcome;
  subject?: string | undefined;
  reason?: string | undefined;
  message?: string | undefined;
  details?: Record<string, unknown> | undefined;
}

export interface EventRow {
  id: number;
  at: string;
  kind: string;
  subject: string | null;
  outcome: EventOutcome;
  reason: string | null;
  message: string | null;
  details: string | null;
}

/**
 * The host's SQLite journal. WAL lets readers (status, history) run while an
 * apply writes. synchronous=FULL because a journal entry written just before
 * a side effect must still be there after a power loss: recovery reads it.
 */
export class Journal {
  private constructor(readonly db: Database.Database, readonly path: string) {}

  static open(stateDir: string, opts: { readonly?: boolean; now?: () => Date } = {}): Journal {
    const path = join(stateDir, JOURNAL_FILE);
    if (!opts.readonly) mkdirSync(stateDir, { recursive: true, mode: 0o750 });
    let db: Database.Database;
    try {
      db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
      db.pragma('busy_timeout = 10000');
      if (!opts.readonly) db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      checkIntegrity(db, path);
    } catch (e) {
      throw corruptJournal(path, e);
    }
    const journal = new Journal(db, path);
    if (!opts.readonly) journal.migrate();
    else if (journal.schemaVersion() !== SCHEMA_VERSION) {
      throw new AirlockError('config', `journal ${path} is at schema ${journal.schemaVersion()}, this airlock reads ${SCHEMA_VERSION}`, {
        reason: 'journal-schema',
        hint: 'run a writing command (e.g. airlock bundle import) once to migrate it',
      });
    }
    return journal;
  }

  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  private migrate(): void {
    const current = this.schemaVersion();
    if (current > SCHEMA_VERSION) {
      throw new AirlockError('config', `journal ${this.path} has schema ${current}, newer than this airlock (${SCHEMA_VERSION})`, {
        reason: 'journal-schema',
        hint: 'a newer airlock wrote it; install that version again, never downgrade the package over a live journal',
      });
    }
    for (const m of MIGRATIONS.filter((m) => m.version > current)) {
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.db.pragma(`user_version = ${m.version}`);
      }).immediate();
    }
  }

  record(event: EventInput, at: Date = new Date()): number {
    const r = this.db
      .prepare(`INSERT INTO events (at, kind, subject, outcome, reason, message, details) VALUES (?, ?, ?, ?, ?, ?, ?)`)
      .run(
        at.toISOString(),
        event.kind,
        event.subject ?? null,
        event.outcome,
        event.reason ?? null,
        event.message ?? null,
        event.details === undefined ? null : JSON.stringify(event.details),
      );
    return Number(r.lastInsertRowid);
  }

  events(opts: { kind?: string; limit?: number } = {}): EventRow[] {
    const where = opts.kind ? 'WHERE kind = ?' : '';
    const args: unknown[] = opts.kind ? [opts.kind] : [];
    return this.db.prepare(`SELECT * FROM events ${where} ORDER BY id DESC LIMIT ?`).all(...args, opts.limit ?? 1000) as EventRow[];
  }

  close(): void {
    this.db.close();
  }
}

function checkIntegrity(db: Database.Database, path: string): void {
  const rows = db.pragma('integrity_check') as { integrity_check: string }[];
  if (rows.length !== 1 || rows[0]?.integrity_check !== 'ok') {
    throw new Error(rows.map((r) => r.integrity_check).join('; '));
  }
}

function corruptJournal(path: string, e: unknown): AirlockError {
  if (e instanceof AirlockError) return e;
  const code = (e as { code?: string }).code ?? '';
  if (code === 'SQLITE_CANTOPEN') {
    return new AirlockError('notFound', `journal not found: ${path}`, { reason: 'no-journal', subject: path });
  }
  return new AirlockError('config', `journal ${path} is damaged: ${(e as Error).message}`, {
    reason: 'journal-corrupt',
    subject: path,
    hint: 'stop airlock, move the journal aside and recover it as docs/journal.md describes; never delete it',
    cause: e,
  });
}
