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
  {
    version: 3,
    description: 'deployments with exact service specs before and after, their steps, and the apply lock',
    sql: `
      CREATE TABLE deployments (
        id          INTEGER PRIMARY KEY,
        stack       TEXT NOT NULL,
        bundle_id   INTEGER REFERENCES bundles(id),
        kind        TEXT NOT NULL CHECK (kind IN ('apply', 'rollback')),
        status      TEXT NOT NULL CHECK (status IN ('running', 'committed', 'failed', 'rolled-back')),
        step        TEXT NOT NULL,
        replaces    INTEGER REFERENCES deployments(id),
        restores    INTEGER REFERENCES deployments(id),
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        applied_by  TEXT NOT NULL,
        source      TEXT,
        reason      TEXT,
        recoveries  INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX deployments_by_stack ON deployments(stack, id);
      CREATE TABLE deployment_services (
        deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        spec_before   TEXT,
        spec_after    TEXT,
        image_ref     TEXT,
        image_id      TEXT,
        PRIMARY KEY (deployment_id, name)
      );
      CREATE TABLE deployment_objects (
        deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
        kind          TEXT NOT NULL CHECK (kind IN ('network', 'secret', 'config')),
        name          TEXT NOT NULL,
        spec          TEXT NOT NULL,
        data_digest   TEXT,
        PRIMARY KEY (deployment_id, kind, name)
      );
      CREATE TABLE apply_steps (
        id            INTEGER PRIMARY KEY,
        deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
        step          TEXT NOT NULL,
        started_at    TEXT NOT NULL,
        finished_at   TEXT,
        outcome       TEXT CHECK (outcome IN ('ok', 'failed')),
        detail        TEXT
      );
      CREATE TABLE apply_lock (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        pid        INTEGER NOT NULL,
        host       TEXT NOT NULL,
        what       TEXT NOT NULL,
        started_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 4,
    description: 'the agent queue: bundles imported from the inbox that wait for a maintenance window',
    sql: `
      CREATE TABLE agent_queue (
        bundle_id   INTEGER PRIMARY KEY REFERENCES bundles(id),
        source      TEXT NOT NULL,
        queued_at   TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('waiting', 'applied', 'failed', 'superseded')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        finished_at TEXT,
        reason      TEXT
      );
    `,
  },
  {
    version: 5,
    description: 'the apply lock names its holder beyond the pid: boot id, process start time and uid, so a reused pid never holds it',
    sql: `
      ALTER TABLE apply_lock ADD COLUMN boot_id TEXT;
      ALTER TABLE apply_lock ADD COLUMN start_time TEXT;
      ALTER TABLE apply_lock ADD COLUMN uid INTEGER;
    `,
  },
  {
    version: 6,
    description: 'sealed secrets: a secret or config whose data_digest names the sealed blob it came in, opened again when it is recreated',
    sql: `
      ALTER TABLE deployment_objects ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0 CHECK (sealed IN (0, 1));
    `,
  },
  {
    version: 7,
    description: 'engine changes: the Docker Engine installed, upgraded or rolled back from an engine bundle, step by step, and what ran before',
    sql: `
      CREATE TABLE engine_changes (
        id                 INTEGER PRIMARY KEY,
        kind               TEXT NOT NULL CHECK (kind IN ('install', 'upgrade', 'rollback')),
        bundle_id          INTEGER REFERENCES bundles(id),
        form               TEXT NOT NULL,
        version            TEXT NOT NULL,
        previous_form      TEXT,
        previous_version   TEXT,
        previous_bundle_id INTEGER REFERENCES bundles(id),
        status             TEXT NOT NULL CHECK (status IN ('running', 'committed', 'failed', 'rolled-back')),
        step               TEXT NOT NULL,
        drained_node       TEXT,
        started_at         TEXT NOT NULL,
        finished_at        TEXT,
        applied_by         TEXT NOT NULL,
        reason             TEXT,
        recoveries         INTEGER NOT NULL DEFAULT 0
      );
    `,
  },
  {
    version: 8,
    description: 'operations on swarm nodes (drain, activate, pause): who, when, why, how far, and what to put back after a crash',
    sql: `
      CREATE TABLE operations (
        id          INTEGER PRIMARY KEY,
        kind        TEXT NOT NULL CHECK (kind IN ('drain', 'activate', 'pause')),
        node        TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
        step        TEXT NOT NULL,
        who         TEXT NOT NULL,
        why         TEXT,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        reason      TEXT,
        details     TEXT NOT NULL DEFAULT '{}'
      );
      CREATE INDEX operations_running ON operations(status) WHERE status = 'running';
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
