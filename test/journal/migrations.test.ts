/**
 * The journal's schema over time: a database from every earlier schema
 * version migrates to the current one with its rows intact; a journal from a
 * newer airlock is refused and left as it is; the pragmas the crash rules
 * depend on (WAL, synchronous=FULL, foreign keys) are in effect.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { readJournal } from '../helpers/journal-read.js';
import { Journal } from '../../src/journal/journal.js';
import { DeploymentRecords } from '../../src/journal/deployments.js';
import { Operations } from '../../src/journal/operations.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/journal/migrations.js';
import { runAirlock } from '../helpers/apply.js';
import { tempDir } from '../helpers/fixtures.js';

let work: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  work = await tempDir('airlock-journal-migrations-');
});
after(async () => {
  await work.cleanup();
});

/** Rows a host would have written while its journal was at each version, one function per migration. */
const SEED: Record<number, (db: Database.Database) => void> = {
  1: (db) => {
    db.prepare(
      `INSERT INTO bundles (id, name, version, manifest_digest, key_id, created, expires, imported_at, manifest, signature) VALUES (1, 'demo', '1.0.0', 'sha256:aa', 'key1', '2026-01-01T00:00:00Z', NULL, '2026-01-02T00:00:00Z', ?, ?)`,
    ).run(Buffer.from('{"name":"demo"}'), Buffer.from([1, 2, 3]));
    db.prepare(`INSERT INTO blobs (digest, size, kind, stored_at) VALUES ('sha256:b1', 10, 'layer', '2026-01-02T00:00:00Z')`).run();
    db.prepare(`INSERT INTO bundle_blobs (bundle_id, digest) VALUES (1, 'sha256:b1')`).run();
    db.prepare(`INSERT INTO events (at, kind, subject, outcome, reason, message, details) VALUES ('2026-01-02T00:00:00Z', 'bundle.import', 'demo 1.0.0', 'ok', NULL, 'imported', '{"blobs":1}')`).run();
    db.prepare(`INSERT INTO events (at, kind, subject, outcome, reason, message, details) VALUES ('2026-01-02T00:00:01Z', 'bundle.import', 'demo 0.9.0', 'refused', 'downgrade', 'older', NULL)`).run();
  },
  2: (db) => {
    db.prepare(`INSERT INTO images (id, refs, first_loaded_at, last_checked_at) VALUES ('sha256:i1', '["demo/web:1.0.0"]', '2026-01-02T00:00:00Z', '2026-01-02T00:00:00Z')`).run();
    db.prepare(`INSERT INTO bundle_images (bundle_id, image_id) VALUES (1, 'sha256:i1')`).run();
  },
  3: (db) => {
    db.prepare(
      `INSERT INTO deployments (id, stack, bundle_id, kind, status, step, replaces, restores, started_at, finished_at, applied_by, source, reason, recoveries) VALUES (1, 'web', 1, 'apply', 'committed', 'cleanup', NULL, NULL, '2026-01-03T00:00:00Z', '2026-01-03T00:01:00Z', 'op@host', 'demo.airlock', NULL, 0)`,
    ).run();
    db.prepare(`INSERT INTO deployment_services (deployment_id, name, spec_before, spec_after, image_ref, image_id) VALUES (1, 'web_web', NULL, '{"Name":"web_web"}', 'demo/web:1.0.0', 'sha256:i1')`).run();
    db.prepare(`INSERT INTO deployment_objects (deployment_id, kind, name, spec, data_digest) VALUES (1, 'config', 'web_conf-0123456789', '{"Name":"web_conf-0123456789"}', 'sha256:b1')`).run();
    db.prepare(`INSERT INTO apply_steps (deployment_id, step, started_at, finished_at, outcome, detail) VALUES (1, 'verify', '2026-01-03T00:00:00Z', '2026-01-03T00:00:01Z', 'ok', NULL)`).run();
  },
  4: (db) => {
    db.prepare(`INSERT INTO agent_queue (bundle_id, source, queued_at, state, attempts, finished_at, reason) VALUES (1, '/var/lib/airlock/inbox/demo.airlock', '2026-01-04T00:00:00Z', 'applied', 1, '2026-01-04T02:00:00Z', NULL)`).run();
  },
  7: (db) => {
    db.prepare(
      `INSERT INTO engine_changes (kind, bundle_id, form, version, status, step, started_at, applied_by) VALUES ('install', NULL, 'static', '28.5.2', 'committed', 'done', '2026-01-05T00:00:00Z', 'op@host')`,
    ).run();
  },
  8: (db) => {
    db.prepare(
      `INSERT INTO operations (kind, node, status, step, who, why, started_at, finished_at, details) VALUES ('drain', 'n0de1d', 'done', 'done', 'op@jump', 'kernel patch', '2026-01-06T00:00:00Z', '2026-01-06T00:02:00Z', '{"services":[]}')`,
    ).run();
  },
};

const tables = (db: Database.Database): string[] =>
  (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);

function dumpRows(db: Database.Database): Record<string, unknown[]> {
  return Object.fromEntries(tables(db).map((t) => [t, db.prepare(`SELECT * FROM "${t}" ORDER BY rowid`).all()]));
}

/** A journal as airlock left it at schema `version`, with rows in every table of that schema. */
function journalAt(dir: string, version: number): Record<string, unknown[]> {
  const db = new Database(join(dir, 'journal.db'));
  try {
    db.pragma('journal_mode = WAL');
    for (const m of MIGRATIONS.filter((m) => m.version <= version)) {
      db.exec(m.sql);
      SEED[m.version]?.(db);
      db.pragma(`user_version = ${m.version}`);
    }
    return dumpRows(db);
  } finally {
    db.close();
  }
}

test('migrations are numbered 1..N in order, and the schema version is the last', () => {
  assert.deepEqual(
    MIGRATIONS.map((m) => m.version),
    MIGRATIONS.map((_, i) => i + 1),
  );
  assert.equal(SCHEMA_VERSION, MIGRATIONS.length);
});

test('a released migration is never edited: hosts have already run it', () => {
  // Add a line here for each new migration once it is released; never change one.
  const RELEASED: Record<number, string> = {
    1: '9fa04a0946f6',
    2: '518f9d54a69f',
    3: '1ebc1891846a',
  };
  for (const m of MIGRATIONS) {
    const digest = createHash('sha256').update(m.sql).digest('hex').slice(0, 12);
    if (RELEASED[m.version] !== undefined) assert.equal(digest, RELEASED[m.version], `migration ${m.version} (${m.description}) was changed; add a new migration instead`);
  }
});

for (let from = 0; from <= SCHEMA_VERSION; from++) {
  test(`a journal at schema ${from} opens at schema ${SCHEMA_VERSION} with every row intact`, async () => {
    const dir = join(work.dir, `v${from}`);
    await mkdir(dir, { recursive: true });
    const rows = journalAt(dir, from);

    const journal = Journal.open(dir);
    try {
      assert.equal(journal.schemaVersion(), SCHEMA_VERSION);
      const now = dumpRows(journal.db);
      // Columns added since keep their defaults (deployment_objects.sealed: 0, a value kept in clear as before).
      const asBefore = (list: unknown[] | undefined, like: unknown[]) =>
        (list ?? []).map((r) => Object.fromEntries(Object.entries(r as object).filter(([k]) => like.length === 0 || k in (like[0] as object))));
      for (const [table, before] of Object.entries(rows)) assert.deepEqual(asBefore(now[table], before), before, `rows of ${table} after migrating from ${from}`);
      if (from >= 3 && from < 6) assert.ok((now['deployment_objects'] as { sealed: number }[]).every((r) => r.sealed === 0));
      // Every table of every migration is there, and the migrated journal is sound.
      const fresh = new Database(':memory:');
      for (const m of MIGRATIONS) fresh.exec(m.sql);
      assert.deepEqual(tables(journal.db), tables(fresh));
      fresh.close();
      assert.deepEqual(journal.db.pragma('foreign_key_check'), []);
      assert.equal(journal.db.pragma('integrity_check', { simple: true }), 'ok');
      // What was there still works as before: the event log stays append-only, deployments read back.
      journal.record({ kind: 'drift', outcome: 'info' });
      assert.throws(() => journal.db.prepare(`DELETE FROM events`).run(), /append-only/);
      if (from >= 3) assert.equal(new DeploymentRecords(journal).current('web')?.bundle_version, '1.0.0');
      if (from >= 8) assert.deepEqual(new Operations(journal).list().map((o) => [o.kind, o.node, o.status, o.who, o.why]), [['drain', 'n0de1d', 'done', 'op@jump', 'kernel patch']]);
    } finally {
      journal.close();
    }
    // Migrating is done once: opening again changes nothing.
    const again = Journal.open(dir);
    assert.equal(again.schemaVersion(), SCHEMA_VERSION);
    again.close();
  });
}

test('a journal from a newer airlock is refused, by reading and by writing commands, and left as it was', async () => {
  const dir = join(work.dir, 'newer');
  await mkdir(dir, { recursive: true });
  journalAt(dir, SCHEMA_VERSION);
  const db = new Database(join(dir, 'journal.db'));
  db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  db.close();
  const before = (() => {
    const d = new Database(join(dir, 'journal.db'), { readonly: true });
    const r = dumpRows(d);
    d.close();
    return r;
  })();

  for (const args of [['history'], ['status'], ['recover'], ['rollback', 'web']]) {
    const r = await runAirlock([...args, '--state', dir, '--json'], { DOCKER_HOST: 'unix:///nonexistent/docker.sock' });
    assert.equal(r.code, 3, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    const err = JSON.parse(r.stdout) as { reason: string; message: string; hint: string };
    assert.equal(err.reason, 'journal-schema', args.join(' '));
    assert.match(err.message, new RegExp(`has schema ${SCHEMA_VERSION + 1}, newer than this airlock \\(${SCHEMA_VERSION}\\)`));
    assert.match(err.hint, /newer airlock wrote it.*never downgrade/);
  }
  const plain = await runAirlock(['history', '--state', dir]);
  assert.equal(plain.code, 3);
  assert.match(plain.stderr, /^airlock: error: journal .*journal\.db has schema \d+, newer than this airlock/);

  const d = new Database(join(dir, 'journal.db'), { readonly: true });
  assert.equal(d.pragma('user_version', { simple: true }), SCHEMA_VERSION + 1);
  assert.deepEqual(dumpRows(d), before);
  d.close();
});

test('the journal runs in WAL mode with synchronous=FULL and foreign keys on', async () => {
  const dir = join(work.dir, 'pragmas');
  const journal = Journal.open(dir);
  try {
    assert.equal(journal.db.pragma('journal_mode', { simple: true }), 'wal');
    // 2 = FULL: a commit is fsynced before it returns, so a step's start is on disk before its side effect.
    assert.equal(journal.db.pragma('synchronous', { simple: true }), 2);
    assert.equal(journal.db.pragma('foreign_keys', { simple: true }), 1);
    assert.throws(
      () => journal.db.prepare(`INSERT INTO deployment_services (deployment_id, name) VALUES (999, 'ghost')`).run(),
      (e: { code?: string }) => e.code === 'SQLITE_CONSTRAINT_FOREIGNKEY',
    );

    // A step's start is committed when beginStep returns: another connection (a later process) sees it.
    const deployments = new DeploymentRecords(journal);
    const id = deployments.start({ stack: 'web', bundleId: null, kind: 'apply', replaces: null, appliedBy: 'op@host', source: 'x' });
    deployments.beginStep(id, 'services');
    assert.equal(journal.db.inTransaction, false);
    const seen = readJournal(dir, (j) => j.deployment(id));
    assert.deepEqual({ status: seen.status, step: seen.step }, { status: 'running', step: 'services' });
  } finally {
    journal.close();
  }
  // WAL is a property of the file; the reading commands' connections get the same settings.
  const reader = Journal.open(dir, { readonly: true });
  try {
    assert.equal(reader.db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(reader.db.pragma('synchronous', { simple: true }), 2);
    assert.equal(reader.db.pragma('foreign_keys', { simple: true }), 1);
  } finally {
    reader.close();
  }
});
