/**
 * A damaged journal is named at start, never used: every command that opens
 * it (reading or writing) stops with exit 3, reason journal-corrupt, and a
 * hint naming the recovery path; the file is left byte for byte as it was.
 * Then the recovery path of docs/journal.md, run for real with Debian's
 * sqlite3, gives back a journal airlock opens, with what survived in it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, open, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Journal } from '../../src/journal/journal.js';
import { DeploymentRecords } from '../../src/journal/deployments.js';
import { runAirlock } from '../helpers/apply.js';
import { tempDir } from '../helpers/fixtures.js';

let work: { dir: string; cleanup: () => Promise<void> };
/** A sound journal with deployments and a few hundred events, made once and copied for each case. */
let pristine: string;

before(async () => {
  work = await tempDir('airlock-journal-corrupt-');
  pristine = join(work.dir, 'pristine');
  const journal = Journal.open(pristine);
  const deployments = new DeploymentRecords(journal);
  const at = new Date('2026-01-01T00:00:00Z');
  for (let i = 1; i <= 3; i++) {
    const id = deployments.start({ stack: 'web', bundleId: null, kind: 'apply', replaces: i > 1 ? i - 1 : null, appliedBy: 'op@host', source: `demo-1.${i}.0.airlock` }, at);
    deployments.recordServices(id, [{ name: 'web_web', before: null, after: { Name: 'web_web', Labels: { release: String(i) } }, imageRef: 'demo/web', imageId: `sha256:${i}` }]);
    deployments.finish(id, 'committed');
  }
  // Enough events for many pages, with fixed times and sizes, so the file's layout is the same every run.
  for (let i = 0; i < 600; i++) journal.record({ kind: 'bundle.import', outcome: 'ok', subject: `demo ${String(i).padStart(4, '0')}`, message: 'm'.repeat(200) }, at);
  journal.close();
});

after(async () => {
  await work.cleanup();
});

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** `n` bytes that look like garbage but are the same every run. */
function garbage(n: number): Buffer {
  const out: Buffer[] = [];
  for (let h = Buffer.from('airlock'); Buffer.concat(out).length < n; ) out.push((h = createHash('sha256').update(h).digest()));
  return Buffer.concat(out).subarray(0, n);
}

/** A copy of the pristine journal with `bytes` written at `offset` of journal.db: what a bad sector or a torn write leaves. */
async function damaged(name: string, where: (db: Database.Database) => number, bytes: Buffer): Promise<string> {
  const dir = join(work.dir, name);
  await mkdir(dir, { recursive: true });
  cpSync(join(pristine, 'journal.db'), join(dir, 'journal.db'));
  const db = new Database(join(dir, 'journal.db'), { readonly: true });
  const offset = where(db);
  db.close();
  const fh = await open(join(dir, 'journal.db'), 'r+');
  await fh.write(bytes, 0, bytes.length, offset);
  await fh.close();
  return dir;
}

/** The page size and the leaf pages of a table, from SQLite's dbstat table. */
function leafPages(db: Database.Database, table: string): { pageSize: number; pages: number[] } {
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const pages = (db.prepare(`SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno`).all(table) as { pageno: number }[]).map((r) => r.pageno);
  return { pageSize, pages };
}

const CASES = [
  {
    what: 'a sector of zeros at the start of a page in the middle of the file (a lost write)',
    where: (db: Database.Database) => {
      const { pageSize, pages } = leafPages(db, 'events');
      return (pages[Math.floor(pages.length / 2)]! - 1) * pageSize;
    },
    bytes: Buffer.alloc(512),
    message: /is damaged: .*(malformed|btreeInitPage)/,
  },
  {
    what: 'garbage in the middle of a page of the event log (bit rot)',
    where: (db: Database.Database) => {
      const { pageSize, pages } = leafPages(db, 'events');
      return (pages[Math.floor(pages.length / 2)]! - 1) * pageSize + pageSize / 2;
    },
    bytes: garbage(300),
    message: /is damaged: .*(out of order|malformed|out of range|Tree \d+ page \d+)/,
  },
  {
    what: 'the first page overwritten (the file header gone)',
    where: () => 0,
    bytes: garbage(100),
    message: /is damaged: file is not a database/,
  },
];

for (const c of CASES) {
  test(`a damaged journal is refused at start: ${c.what}`, async () => {
    const dir = await damaged(c.what.replace(/\W+/g, '-'), c.where, c.bytes);
    const file = join(dir, 'journal.db');
    const before = sha(file);
    // The engine is never reached: the journal is checked first.
    const env = { DOCKER_HOST: 'unix:///nonexistent/docker.sock' };
    const trust = join(work.dir, 'trust');
    await mkdir(trust, { recursive: true });
    for (const args of [['history'], ['status'], ['recover'], ['rollback', 'web'], ['bundle', 'apply', join(dir, 'no-such.airlock'), '--trust', trust]]) {
      const r = await runAirlock([...args, '--state', dir, '--json'], env);
      assert.equal(r.code, 3, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      const err = JSON.parse(r.stdout) as { reason: string; message: string; hint: string; subject: string };
      assert.equal(err.reason, 'journal-corrupt', args.join(' '));
      assert.equal(err.subject, file);
      assert.match(err.message, c.message);
      assert.match(err.hint, /stop airlock, move .*journal\.db \(with its -wal and -shm files\) aside/);
      assert.match(err.hint, /sqlite3 \.recover or \.dump, as docs\/journal\.md describes; never delete it, nor the content store/);
    }
    const plain = await runAirlock(['history', '--state', dir], env);
    assert.equal(plain.code, 3);
    assert.match(plain.stderr, /^airlock: error: journal .* is damaged: .*\n {2}hint: stop airlock/);
    // Nothing wrote to it, nothing replaced it: a reader may leave SQLite's -shm and an empty -wal, no more.
    assert.equal(sha(file), before);
    const files = (await readdir(dir)).filter((f) => f.startsWith('journal.db')).sort();
    assert.ok(files.every((f) => ['journal.db', 'journal.db-shm', 'journal.db-wal'].includes(f)), files.join(', '));
    if (files.includes('journal.db-wal')) assert.equal(statSync(join(dir, 'journal.db-wal')).size, 0);
  });
}

const hasSqlite3 = spawnSync('sqlite3', ['--version']).status === 0;

test('the recovery path of docs/journal.md gives back a journal airlock opens', { skip: !hasSqlite3 && 'no sqlite3 CLI on this machine' }, async () => {
  const dir = await damaged('recovered', CASES[0]!.where, CASES[0]!.bytes);
  // The steps of docs/journal.md, as an operator would type them (less stopping the agent).
  const script = `
set -eu
cd "$1"
mkdir journal-damaged
for f in journal.db journal.db-wal journal.db-shm; do if [ -e "$f" ]; then mv "$f" journal-damaged/; fi; done
V=$(sqlite3 journal-damaged/journal.db 'PRAGMA user_version')
if ! sqlite3 journal-damaged/journal.db .recover > journal-damaged/salvage.sql 2>/dev/null; then
  sqlite3 journal-damaged/journal.db .dump > journal-damaged/salvage.sql
  sed -i 's/^ROLLBACK; -- due to errors$/COMMIT;/' journal-damaged/salvage.sql
fi
sqlite3 journal.db < journal-damaged/salvage.sql
sqlite3 journal.db "PRAGMA user_version = $V; PRAGMA journal_mode = WAL;" > /dev/null
sqlite3 journal.db 'PRAGMA integrity_check'
`;
  await writeFile(join(work.dir, 'recover.sh'), script);
  const r = spawnSync('bash', [join(work.dir, 'recover.sh'), dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'ok');
  assert.ok(existsSync(join(dir, 'journal-damaged', 'journal.db')), 'the damaged copy is kept');

  const history = await runAirlock(['history', 'web', '--state', dir, '--json']);
  assert.equal(history.code, 0, history.stdout + history.stderr);
  assert.deepEqual(
    (JSON.parse(history.stdout) as { id: number; status: string }[]).map((d) => [d.id, d.status]),
    [[3, 'committed'], [2, 'committed'], [1, 'committed']],
  );
  // Only the damaged page of the event log is lost; a writing open finds a sound journal at the current schema.
  const journal = Journal.open(dir);
  const events = journal.events({ limit: 10_000 }).length;
  assert.ok(events > 500 && events < 600, `${events} events survived`);
  journal.close();
});
