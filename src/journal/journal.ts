import Database from 'better-sqlite3';
import { accessSync, constants, statSync } from 'node:fs';
import { AirlockError } from '../errors/index.js';
import { kindOf, notAFolder, whoAmI } from '../config/paths.js';
import { makeDirs } from '../store/make-dirs.js';
import type { EventKind } from './event-kinds.js';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
import { JOURNAL_MODE, stateOwnerOfSync, tightenSync, type StateOwner } from '../store/state-files.js';
import { JOURNAL_FILE, journalPathIn, STATE_DIR_HINT } from '../store/state-dir.js';

export type EventOutcome = 'ok' | 'refused' | 'failed' | 'info';

export interface EventInput {
  kind: EventKind;
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
    const path = journalPathIn(stateDir);
    if (!opts.readonly) makeDirs(stateDir, { mode: 0o750, what: 'state dir' });
    if (!usableJournal(stateDir, opts.readonly ?? false) && opts.readonly) throw new AirlockError('notFound', `journal not found: ${path}`, { reason: 'no-journal', subject: path });
    let db: Database.Database | undefined;
    try {
      db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
      // Before anything is written: the journal holds env values, and a root command must leave it to the state dir's owner.
      if (!opts.readonly) keepPrivate(path, stateOwnerOfSync(stateDir));
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      const opened = db;
      if (!opts.readonly) whileBusy(() => opened.pragma('journal_mode = WAL'));
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      whileBusy(() => checkIntegrity(opened, path));
    } catch (e) {
      db?.close();
      throw corruptJournal(path, e);
    }
    const journal = new Journal(db, path);
    try {
      if (!opts.readonly) journal.migrate();
      else if (journal.schemaVersion() === 0 && journal.db.prepare(`SELECT count(*) AS n FROM sqlite_master`).pluck().get() === 0) {
        // A file with nothing in it (truncated, or made by hand): no record, which is not the same as "nothing deployed".
        throw new AirlockError('notFound', `journal ${path} is empty`, { reason: 'no-journal', subject: path });
      } else if (journal.schemaVersion() > SCHEMA_VERSION) throw newerJournal(path, journal.schemaVersion());
      else if (journal.schemaVersion() !== SCHEMA_VERSION) {
        throw new AirlockError('config', `journal ${path} is at schema ${journal.schemaVersion()}, this airlock reads ${SCHEMA_VERSION}`, {
          reason: 'journal-schema',
          hint: 'run a writing command (e.g. airlock bundle import) once to migrate it',
        });
      }
    } catch (e) {
      db.close();
      throw e;
    }
    return journal;
  }

  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /**
   * Brings the schema up to date, one migration per transaction. The version
   * is read inside each write transaction: several commands opening a new
   * journal at once (four first imports) each see what the one before them
   * committed, and none runs a migration twice.
   */
  private migrate(): void {
    if (this.schemaVersion() === SCHEMA_VERSION) return;
    const step = this.db.transaction((): boolean => {
      const current = this.schemaVersion();
      if (current > SCHEMA_VERSION) throw newerJournal(this.path, current);
      const next = MIGRATIONS.find((m) => m.version > current);
      if (!next) return false;
      this.db.exec(next.sql);
      this.db.pragma(`user_version = ${next.version}`);
      return true;
    });
    while (step.immediate());
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

  /** Newest first; the newest 1000 unless `limit` says otherwise ('all': every one). */
  events(opts: { kind?: string; reason?: string; subject?: string; limit?: number | 'all' } = {}): EventRow[] {
    const filters = (['kind', 'reason', 'subject'] as const).filter((f) => opts[f] !== undefined);
    const where = filters.length > 0 ? `WHERE ${filters.map((f) => `${f} = ?`).join(' AND ')}` : '';
    const args = filters.map((f) => opts[f]!);
    // SQLite reads a negative LIMIT as none.
    const limit = opts.limit === 'all' ? -1 : (opts.limit ?? 1000);
    return this.db.prepare<(string | number)[], EventRow>(`SELECT * FROM events ${where} ORDER BY id DESC LIMIT ?`).all(...args, limit);
  }

  close(): void {
    this.db.close();
  }
}

const BUSY_TIMEOUT_MS = 10_000;

/**
 * SQLite answers BUSY at once, without waiting, where waiting could
 * deadlock: several commands opening a new journal at once (four first
 * imports) and switching it to WAL. Such a step is tried again, for as long
 * as the busy timeout would have waited.
 */
function whileBusy<T>(run: () => T): T {
  const until = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      return run();
    } catch (e) {
      if ((e as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > until) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

function newerJournal(path: string, version: number): AirlockError {
  return new AirlockError('config', `journal ${path} has schema ${version}, newer than this airlock (${SCHEMA_VERSION})`, {
    reason: 'journal-schema',
    subject: path,
    hint: 'a newer airlock wrote it; install that version again, never downgrade the package over a live journal',
  });
}

/**
 * The journal file and SQLite's -wal and -shm beside it: not readable by
 * others, owned by the state dir's owner. SQLite makes -wal and -shm with
 * the journal's mode (and, as root, its owner), so a new journal only needs
 * the file itself set; an older one may have all three looser.
 */
function keepPrivate(path: string, owner: StateOwner | undefined): void {
  for (const f of [path, `${path}-wal`, `${path}-shm`]) tightenSync(f, JOURNAL_MODE, owner);
}

/**
 * Whether the state dir holds a journal this user may use (read, or read and
 * write); false when there is none. One it may not use is an error that says
 * so: "nothing was ever applied here" would be a lie about a host.
 */
function usableJournal(stateDir: string, readonly: boolean): boolean {
  const kind = kindOf(stateDir, 'state dir');
  if (kind === 'absent') return false;
  if (kind !== 'folder') throw notAFolder(stateDir, 'state dir', STATE_DIR_HINT);
  const path = journalPathIn(stateDir);
  try {
    accessSync(path, readonly ? constants.R_OK : constants.R_OK | constants.W_OK);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false;
    if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') throw e;
    const mode = (p: string) => {
      try {
        const s = statSync(p);
        return `uid ${s.uid}, mode ${(s.mode & 0o777).toString(8).padStart(4, '0')}`;
      } catch {
        return 'cannot be looked at';
      }
    };
    const verb = readonly ? 'read' : 'write';
    return journalAccessDenied(path, code === 'EROFS' ? `${stateDir} is on a read-only file system` : `permission denied to user ${whoAmI()} (${stateDir}: ${mode(stateDir)}; ${JOURNAL_FILE}: ${mode(path)})`, verb);
  }
}

function journalAccessDenied(path: string, why: string, verb: 'read' | 'write'): never {
  throw new AirlockError('config', `cannot ${verb} the journal ${path}: ${why}`, {
    reason: 'journal-access',
    subject: path,
    hint: `run airlock as the user that owns the state dir (the agent's user) or as root, e.g. with sudo; nothing was read, so this says nothing about what runs here`,
  });
}

/** What `PRAGMA integrity_check` found: the structure of the file is damaged. */
class IntegrityFailure extends Error {}

function checkIntegrity(db: Database.Database, path: string): void {
  const rows = db.pragma('integrity_check') as { integrity_check: string }[];
  if (rows.length !== 1 || rows[0]?.integrity_check !== 'ok') {
    const lines = rows.flatMap((r) => r.integrity_check.split('\n')).filter((l) => l && !l.startsWith('***'));
    throw new IntegrityFailure(`${lines.slice(0, 3).join('; ')}${lines.length > 3 ? ` (and ${lines.length - 3} more)` : ''}`);
  }
}

/** SQLite's own words for a file that is not a sound database. */
const DAMAGED = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB']);

function corruptJournal(path: string, e: unknown): AirlockError {
  if (e instanceof AirlockError) return e;
  const code = (e as { code?: string }).code ?? '';
  if (code === 'SQLITE_CANTOPEN') {
    return new AirlockError('notFound', `journal not found: ${path}`, { reason: 'no-journal', subject: path });
  }
  if (e instanceof IntegrityFailure || DAMAGED.has(code)) {
    return new AirlockError('config', `journal ${path} is damaged: ${(e as Error).message}`, {
      reason: 'journal-corrupt',
      subject: path,
      hint: `stop airlock, move ${path} (with its -wal and -shm files) aside and rebuild it from the damaged copy with sqlite3 .recover or .dump, as docs/journal.md describes; never delete it, nor the content store`,
      cause: e,
    });
  }
  if (code.startsWith('SQLITE_')) {
    // Locked, read-only, out of disk, I/O error: the file may be sound, the host is not letting us use it.
    return new AirlockError('config', `cannot use journal ${path}: ${(e as Error).message} (${code})`, {
      reason: 'journal-unusable',
      subject: path,
      hint: 'check the state directory: its permissions, free disk, and that no other program holds the file',
      cause: e,
    });
  }
  // Not SQLite speaking: e.g. its native module failed to load. Nothing says the journal is damaged.
  return new AirlockError('internal', `cannot open journal ${path}: ${(e as Error).message}`, {
    reason: 'journal-open',
    subject: path,
    hint: 'the airlock installation may be broken (its SQLite module did not load): reinstall the package; the journal itself was not read',
    cause: e,
  });
}
