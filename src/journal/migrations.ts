/**
 * Schema migrations, applied in order inside one transaction each. The
 * schema version is SQLite's `user_version`. A migration is never edited
 * once released: a test opens a database from every earlier version.
 */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'bundles, blobs and the event log',
    sql: `
      CREATE TABLE bundles (
        id              INTEGER PRIMARY KEY,
        name            TEXT NOT NULL,
        version         TEXT NOT NULL,
        manifest_digest TEXT NOT NULL UNIQUE,
        key_id          TEXT NOT NULL,
        created         TEXT NOT NULL,
        expires         TEXT,
        imported_at     TEXT NOT NULL,
        manifest        BLOB NOT NULL,
        signature       BLOB NOT NULL
      );
      CREATE INDEX bundles_by_name ON bundles(name);
      CREATE TABLE blobs (
        digest    TEXT PRIMARY KEY,
        size      INTEGER NOT NULL,
        kind      TEXT NOT NULL,
        stored_at TEXT NOT NULL
      );
      CREATE TABLE bundle_blobs (
        bundle_id INTEGER NOT NULL REFERENCES bundles(id) ON DELETE CASCADE,
        digest    TEXT NOT NULL REFERENCES blobs(digest),
        PRIMARY KEY (bundle_id, digest)
      );
      CREATE TABLE events (
        id      INTEGER PRIMARY KEY,
        at      TEXT NOT NULL,
        kind    TEXT NOT NULL,
        subject TEXT,
        outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed', 'info')),
        reason  TEXT,
        message TEXT,
        details TEXT
      );
      CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
      CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    `,
  },
  {
    version: 2,
    description: 'images loaded into the engine, and the bundles that brought them',
    sql: `
      CREATE TABLE images (
        id              TEXT PRIMARY KEY,
        refs            TEXT NOT NULL,
        first_loaded_at TEXT NOT NULL,
        last_checked_at TEXT NOT NULL
      );
      CREATE TABLE bundle_images (
        bundle_id INTEGER NOT NULL REFERENCES bundles(id) ON DELETE CASCADE,
        image_id  TEXT NOT NULL REFERENCES images(id),
        PRIMARY KEY (bundle_id, image_id)
      );
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
