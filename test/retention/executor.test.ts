import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { AirlockError } from '../../src/errors/index.js';
import { contentStoreOf } from '../../src/store/state-dir.js';
import { readJournal } from '../helpers/journal-read.js';
import { Journal } from '../../src/journal/journal.js';
import { prune } from '../../src/retention/index.js';
import type { ContentStore } from '../../src/store/content-store.js';
import { tempDir } from '../helpers/fixtures.js';

// The executor without an engine: a journal written by hand, a real content store.
let work: { dir: string; cleanup: () => Promise<void> };
let state: string;
let store: ContentStore;
const d: Record<string, string> = {};

before(async () => {
  work = await tempDir('airlock-prune-exec-');
  state = join(work.dir, 'state');
  store = contentStoreOf(state);
  for (const name of ['v1-only', 'v2-only', 'shared', 'secret-v1', 'secret-v2']) d[name] = await store.putBytes(Buffer.from(`${name} bytes\n`));
  const journal = Journal.open(state);
  const db = journal.db;
  const manifest = (version: string, blobs: string[]) =>
    Buffer.from(JSON.stringify({ format: 'airlock.bundle.v1', name: 'demo', version, description: '', created: '2025-01-01T00:00:00Z', expires: null, blobs: blobs.map((digest) => ({ digest, size: 13, kind: 'file', encoding: 'identity' })), stacks: [], images: [], files: [] }));
  const addBundle = db.prepare(`INSERT INTO bundles (id, name, version, manifest_digest, key_id, created, expires, imported_at, manifest, signature) VALUES (?, 'demo', ?, ?, 'k', 'c', NULL, 'i', ?, x'00')`);
  addBundle.run(1, '1.0.0', 'm1', manifest('1.0.0', [d['v1-only']!, d.shared!]));
  addBundle.run(2, '2.0.0', 'm2', manifest('2.0.0', [d['v2-only']!, d.shared!]));
  for (const [bundle, blobs] of [[1, ['v1-only', 'shared']], [2, ['v2-only', 'shared']]] as const) {
    for (const b of blobs) {
      db.prepare(`INSERT OR IGNORE INTO blobs (digest, size, kind, stored_at) VALUES (?, 13, 'file', 'now')`).run(d[b]);
      db.prepare(`INSERT INTO bundle_blobs (bundle_id, digest) VALUES (?, ?)`).run(bundle, d[b]);
    }
  }
  db.prepare(`INSERT INTO images (id, refs, first_loaded_at, last_checked_at) VALUES ('sha256:img1', '["demo/web:1.0.0"]', 'now', 'now')`).run();
  db.prepare(`INSERT INTO bundle_images (bundle_id, image_id) VALUES (1, 'sha256:img1')`).run();
  for (const [id, bundle, secret] of [[1, 1, 'secret-v1'], [2, 2, 'secret-v2']] as const) {
    db.prepare(`INSERT INTO deployments (id, stack, bundle_id, kind, status, step, started_at, applied_by) VALUES (?, 'web', ?, 'apply', 'committed', 'done', 'now', 'test')`).run(id, bundle);
    db.prepare(`INSERT INTO deployment_objects (deployment_id, kind, name, spec, data_digest) VALUES (?, 'secret', 'web_s', '{}', ?)`).run(id, d[secret]);
  }
  journal.close();
});

after(() => work.cleanup());

const has = (name: string) => existsSync(store.pathOf(d[name]!));

test('prune without an engine: a dry run lists, a prune removes blobs and journals it; images are left alone', async () => {
  const dry = await prune({ stateDir: state, keep: 1, dryRun: true });
  assert.deepEqual(dry.bundles.map((b) => b.version), ['1.0.0']);
  assert.deepEqual(dry.blobs.map((b) => b.digest).sort(), [d['v1-only'], d['secret-v1']].sort());
  assert.equal(dry.bytes.blobs, 'v1-only bytes\n'.length + 'secret-v1 bytes\n'.length);
  assert.deepEqual(dry.skipped, [{ what: 'image', id: 'sha256:img1', reason: 'no engine to remove it from' }]);
  assert.ok(['v1-only', 'v2-only', 'shared', 'secret-v1', 'secret-v2'].every(has));

  const r = await prune({ stateDir: state, keep: 1 });
  assert.deepEqual(r.blobs.map((b) => b.digest).sort(), dry.blobs.map((b) => b.digest).sort());
  assert.equal(r.bytes.total, dry.bytes.blobs);
  assert.ok(!has('v1-only') && !has('secret-v1'));
  assert.ok(has('v2-only') && has('shared') && has('secret-v2'), 'what v2 needs, and what it shares with v1, stays');

  readJournal(state, (j) => {
    const links = (bundle: number) => j.bundleBlobs().filter((l) => l.bundle_id === bundle).map(({ digest }) => ({ digest }));
    const blobs = (digest: string | undefined) => j.blobs().filter((b) => b.digest === digest).map(({ digest }) => ({ digest }));
    assert.deepEqual(j.bundles().map((b) => b.id), [1, 2], 'bundle rows stay as history');
    assert.deepEqual(links(1), []);
    assert.equal(links(2).length, 2);
    assert.deepEqual(blobs(d['v1-only']), []);
    assert.equal(blobs(d.shared).length, 1);
    assert.equal(j.images().filter((i) => i.id === 'sha256:img1').length, 1, 'an image not removed keeps its row');
    const events = j.events({ kind: 'prune' });
    assert.equal(events.length, 1);
    assert.equal(events[0]!.id, r.event);
    assert.deepEqual(JSON.parse(events[0]!.details ?? ''), {
      keep: 1,
      bundles: [{ id: 1, name: 'demo', version: '1.0.0' }],
      blobs: 2,
      blobBytes: r.bytes.blobs,
      images: [],
      imageBytes: 0,
      bytes: r.bytes.total,
      forgotten: { images: 0, blobs: 0 },
      relinked: [],
      skipped: [{ what: 'image', id: 'sha256:img1', reason: 'no engine to remove it from' }],
    });
  });

  // Pruning again: bundle 1 is already pruned, nothing is left to remove.
  const again = await prune({ stateDir: state, keep: 1 });
  assert.deepEqual([again.bundles.length, again.blobs.length, again.bytes.total], [0, 0, 0]);
});

test('a bundle imported again after a prune gets its blob links back once it is kept', async () => {
  // As `bundle import` of the same file does today: the blobs come back, the journal rows are not relinked.
  await store.putBytes(Buffer.from('v1-only bytes\n'));
  const journal = Journal.open(state);
  journal.db.prepare(`INSERT INTO deployments (id, stack, bundle_id, kind, status, step, restores, started_at, applied_by) VALUES (3, 'web', 1, 'rollback', 'committed', 'done', 1, 'now', 'test')`).run();
  journal.close();
  const r = await prune({ stateDir: state, keep: 1 });
  assert.deepEqual(r.bundles.map((b) => b.version), ['2.0.0']);
  assert.ok(has('v1-only') && has('shared') && !has('v2-only'));
  readJournal(state, (j) => {
    assert.equal(j.bundleBlobs().filter((l) => l.bundle_id === 1).length, 2);
    const details = JSON.parse(j.events({ kind: 'prune' }).at(-1)?.details ?? '') as { relinked: number[] };
    assert.deepEqual(details.relinked, [1]);
  });
});

test('prune takes the apply lock: while an apply holds it, prune waits, then fails naming it', async () => {
  let holder: ChildProcess | undefined;
  try {
    holder = spawn('sleep', ['30'], { stdio: 'ignore' });
    const journal = Journal.open(state);
    journal.db.prepare(`INSERT OR REPLACE INTO apply_lock (id, pid, host, what, started_at) VALUES (1, ?, ?, 'bundle apply x.airlock', 'now')`).run(holder.pid, hostname());
    journal.close();
    const started = Date.now();
    await assert.rejects(prune({ stateDir: state, keep: 1, lockWaitMs: 300 }), (e: unknown) => {
      assert.ok(e instanceof AirlockError);
      assert.equal(e.reason, 'apply-locked');
      assert.match(e.message, /another apply is running: bundle apply x\.airlock/);
      return true;
    });
    assert.ok(Date.now() - started >= 250);
    // A dry run reads only, and needs no lock.
    assert.equal((await prune({ stateDir: state, keep: 1, dryRun: true })).dryRun, true);
  } finally {
    holder?.kill();
  }
});

test('prune refuses a keep below 1', async () => {
  await assert.rejects(prune({ stateDir: state, keep: 0 }), (e: unknown) => e instanceof AirlockError && e.reason === 'bad-keep');
});
