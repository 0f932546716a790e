/**
 * A missing or empty journal never means "deploy nothing". With services
 * running from earlier applies, the journal is taken away (deleted, emptied,
 * replaced by a fresh one); status, history, rollback and recover must refuse
 * or say clearly what they see, and no running service may be removed or
 * changed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildRelease, cliFor, startBench, type Bench } from '../helpers/apply.js';

let bench: Bench;
let run: ReturnType<typeof cliFor>;
let v2: string;
let journalFile: string;

/** Every service of the stack with its id, version and spec: an update or a re-create changes one of them. */
async function snapshot(): Promise<string> {
  const services = await bench.docker.services.list({ filters: { label: ['com.docker.stack.namespace=web'] } });
  return JSON.stringify(services.map((s) => ({ id: s.ID, version: s.Version.Index, spec: s.Spec })).sort((a, b) => a.id.localeCompare(b.id)));
}

before(async () => {
  bench = await startBench('airlock-journal-missing-');
  run = cliFor(bench, join(bench.dir, 'state'));
  journalFile = join(run.state, 'journal.db');
  const v1 = await buildRelease(bench, { version: '1.0.0' });
  v2 = await buildRelease(bench, { version: '1.1.0' });
  for (const file of [v1, v2]) {
    const r = await run.apply(file);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }
});

after(async () => {
  await bench?.close();
});

/** The journal moved aside (with its -wal and -shm) for the length of `fn`, then put back. */
async function withoutJournal(fn: () => Promise<void>): Promise<void> {
  const aside = join(bench.dir, 'aside');
  for (const suffix of ['', '-wal', '-shm']) if (existsSync(journalFile + suffix)) await rename(journalFile + suffix, `${aside}${suffix}`);
  try {
    await fn();
  } finally {
    for (const suffix of ['', '-wal', '-shm']) await rm(journalFile + suffix, { force: true });
    for (const suffix of ['', '-wal', '-shm']) if (existsSync(`${aside}${suffix}`)) await rename(`${aside}${suffix}`, journalFile + suffix);
  }
}

/** Asserts the commands refuse, naming the lost journal and the stack that still runs, and touch nothing. */
async function assertRefusedUntouched(what: 'missing' | 'empty'): Promise<void> {
  const before = await snapshot();
  const lost = what === 'missing' ? /^no journal in .*state, yet the engine runs stack web \(2 services\): the journal was lost or moved/ : /^journal .*journal\.db is empty, yet the engine runs stack web \(2 services\): the journal was lost or moved/;

  for (const args of [['status'], ['history'], ['history', 'web']]) {
    const r = await run.cli([...args, '--json']);
    assert.equal(r.code, 4, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    const err = JSON.parse(r.stdout) as { reason: string; message: string; hint: string };
    assert.equal(err.reason, 'no-journal');
    assert.match(err.message, lost);
    assert.match(err.hint, /nothing was changed.*docs\/journal\.md/);
  }
  const plain = await run.cli(['status']);
  assert.equal(plain.code, 4);
  assert.match(plain.stderr, /^airlock: error: .*the engine runs stack web \(2 services\)/);

  const rollback = await run.cli(['rollback', 'web', '--json', '--timeout', '30s']);
  assert.equal(rollback.code, 4, rollback.stdout + rollback.stderr);
  const err = JSON.parse(rollback.stdout) as { reason: string; message: string };
  assert.equal(err.reason, 'no-journal');
  assert.match(err.message, /rollback restores recorded deployments, and none is recorded here/);

  const recover = await run.cli(['recover', '--json']);
  assert.equal(recover.code, 0, recover.stdout + recover.stderr);
  assert.deepEqual(JSON.parse(recover.stdout), { recovered: [] });

  // No journal was made up in its place, and the engine runs what it ran.
  if (what === 'missing') assert.equal(existsSync(journalFile), false, 'no command may create a journal in place of a lost one');
  else assert.equal(statSync(journalFile).size, 0, 'the empty journal is left as found');
  assert.equal(await snapshot(), before);
}

test('a deleted journal: status, history, rollback and recover refuse or say so, and change nothing', async () => {
  await withoutJournal(() => assertRefusedUntouched('missing'));
});

test('an empty journal file: the same, and it stays empty', async () => {
  await withoutJournal(async () => {
    await writeFile(journalFile, '');
    await assertRefusedUntouched('empty');
  });
});

test('a fresh journal that knows no deployment: status names the stacks it has no record of; rollback refuses; an apply changes nothing it need not', async () => {
  await withoutJournal(async () => {
    const before = await snapshot();
    // A writing command that needs no engine makes a fresh journal: what an operator gets after moving a damaged one aside.
    const rec = await run.cli(['recover', '--json']);
    assert.equal(rec.code, 0);
    const imported = await run.cli(['bundle', 'import', v2, '--trust', bench.signer.trustDir, '--no-load', '--json']);
    assert.equal(imported.code, 0, imported.stdout + imported.stderr);
    assert.ok(existsSync(journalFile));

    const status = await run.cli(['status', '--json']);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    const s = JSON.parse(status.stdout) as { stacks: unknown[]; unrecorded: { stack: string; services: string[] }[] };
    assert.deepEqual(s.stacks, []);
    assert.deepEqual(s.unrecorded, [{ stack: 'web', services: ['web_web', 'web_worker'] }]);
    const text = await run.cli(['status']);
    assert.match(text.stdout, /stack web runs 2 services \(web_web, web_worker\) that this journal has no record of/);

    const history = await run.cli(['history', '--json']);
    assert.equal(history.code, 0);
    assert.deepEqual(JSON.parse(history.stdout), []);

    const rollback = await run.cli(['rollback', 'web', '--json']);
    assert.equal(rollback.code, 4);
    assert.equal((JSON.parse(rollback.stdout) as { reason: string }).reason, 'no-deployment');
    assert.equal(await snapshot(), before);

    // Applying the release that runs records it again, as the engine holds it: no service is removed, re-created or updated.
    const again = await run.apply(v2);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(await snapshot(), before);
    const services = run.journal((j) => j.services().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((s) => ({ name: s.name, had: s.spec_before === null ? 0 : 1 })));
    assert.deepEqual(services, [
      { name: 'web_web', had: 1 },
      { name: 'web_worker', had: 1 },
    ]);
  });
});
