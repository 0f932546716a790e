/**
 * Hostile input to the inbox and the state dir, done for real: a local user
 * who may write the inbox (often the FTP upload folder) plants symbolic
 * links where the agent writes; another user tries to read secrets at rest;
 * a root command writes a state dir the agent's user owns; four commands
 * start on a new state dir at once. Each test checks that nothing outside
 * the state and inbox changed and that the journal is whole, rows and all.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, copyFile, lstat, mkdir, readdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import YAML from 'yaml';
import { SCHEMA_VERSION } from '../../src/journal/migrations.js';
import { AgentProcess, writeAgentConfig } from '../helpers/agent.js';
import { buildRelease, runAirlock, startBench, type Bench, type RunResult } from '../helpers/apply.js';
import { readJournal } from '../helpers/journal-read.js';
import { cliArgv } from '../helpers/fixtures.js';

let bench: Bench;
before(async () => {
  bench = await startBench('airlock-hostile-inbox-');
  // Other users run airlock below in some tests: they must reach the bench (mkdtemp made it 0700).
  await chmod(bench.dir, 0o755);
});
after(async () => {
  await bench?.close();
});

const env = () => ({ DOCKER_HOST: bench.daemon.dockerHost });
const NOBODY = { uid: 65534, gid: 65534 };
/** A local user with no name and no group in common with anyone: "another user". */
const STRANGER = 23456;

/** Every path under `dir` (not following links) with what it is: content hash, link target, owner and mode. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string, rel: string) => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(p);
      const who = `${st.uid}:${st.gid}:${(st.mode & 0o7777).toString(8)}`;
      if (st.isSymbolicLink()) out[r] = `link ${await readlink(p)}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${who}`;
        await walk(p, r);
      } else out[r] = `file ${who} ${createHash('sha256').update(await readFile(p)).digest('hex')}`;
    }
  };
  await walk(dir, '');
  return out;
}

/** The journal passes SQLite's integrity check, and its rows are the ones a test expects. */
function journalWhole(state: string): { bundles: string[]; events: { kind: string; outcome: string; reason: string | null; subject: string | null }[]; version: number } {
  return readJournal(state, (j) => {
    assert.equal(j.integrity(), 'ok');
    return {
      bundles: j.bundles().map((b) => `${b.name} ${b.version}`),
      events: j.events().map(({ kind, outcome, reason, subject }) => ({ kind, outcome, reason, subject })),
      version: j.schemaVersion(),
    };
  });
}

/** Drops a file into the inbox the way an upload ends: written aside, then renamed in. */
async function drop(from: string | Buffer, inbox: string, name: string): Promise<void> {
  const tmp = join(inbox, `.${name}.upload`);
  if (typeof from === 'string') await copyFile(from, tmp);
  else await writeFile(tmp, from);
  await rename(tmp, join(inbox, name));
}

/** The CLI as another user (setpriv, no extra groups), on the tests' runtime. */
function runAs(user: { uid: number; gid: number }, args: string[]): Promise<RunResult> {
  return new Promise((res, rej) => {
    const child = spawn('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', process.execPath, ...cliArgv(args)], {
      env: { ...process.env, ...env(), HOME: '/' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', rej);
    child.on('close', (code, signal) => res({ code: code ?? -1, signal, stdout, stderr }));
  });
}

/** Whether `user` can read `path` (a real open by a real process of that user). */
function canRead(user: { uid: number; gid: number }, path: string): Promise<boolean> {
  return new Promise((res) => {
    const child = spawn('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', 'head', '-c1', path], { stdio: 'ignore' });
    child.on('close', (code) => res(code === 0));
  });
}

test('links planted in the inbox redirect no write: the reason file, done/, quarantine/ and the bundle names are never followed', async () => {
  const good = await buildRelease(bench, { version: '1.0.0', stack: 'hlinks', repo: 'hlinks' });
  const second = await buildRelease(bench, { version: '1.1.0', stack: 'hlinks', repo: 'hlinks' });
  const layout = await writeAgentConfig(join(bench.dir, 'links'), bench.signer.trustDir, { apply: { mode: 'import-only' } });
  // The journal already holds history: a bundle imported by an operator.
  const first = await runAirlock(['bundle', 'import', good, '--trust', bench.signer.trustDir, '--state', layout.state], env());
  assert.equal(first.code, 0, first.stdout + first.stderr);
  // What the local user aims at outside the inbox and the state dir.
  const victim = join(bench.dir, 'links-victim');
  await mkdir(join(victim, 'elsewhere'), { recursive: true });
  await writeFile(join(victim, 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  const journalPath = join(layout.state, 'journal.db');
  // The attack of the issue: quarantine/bad.airlock.reason is a link to the journal.
  await mkdir(join(layout.inbox, 'quarantine'), { recursive: true });
  await symlink(journalPath, join(layout.inbox, 'quarantine', 'bad.airlock.reason'));
  // A bundle name in the inbox that is a link (to the journal, and to a file elsewhere).
  await symlink(journalPath, join(layout.inbox, 'journal.airlock'));
  await symlink(join(victim, 'passwd'), join(layout.inbox, 'passwd.airlock'));
  const outside = await tree(victim);

  const agent = new AgentProcess(layout.config, env());
  try {
    await agent.waitFor(/msg="agent started"/);
    await drop(randomBytes(4096), layout.inbox, 'bad.airlock');
    await agent.waitFor(/msg="bundle refused and quarantined" .*file=bad\.airlock/, 60_000);
    // The reason is a file of its own; the link was replaced, the journal never written through it.
    const reasonPath = join(layout.inbox, 'quarantine', 'bad.airlock.reason');
    assert.ok((await lstat(reasonPath)).isFile(), 'the planted link was replaced by a regular file');
    const reason = YAML.parse(await readFile(reasonPath, 'utf8')) as Record<string, unknown>;
    assert.equal(reason.file, 'bad.airlock');
    assert.deepEqual((await readdir(join(layout.inbox, 'quarantine'))).sort(), ['bad.airlock', 'bad.airlock.reason']);
    // The linked bundle names: said once each, never opened or moved.
    await agent.waitFor(/msg="inbox entry refused: only regular files are taken, and links are never followed" .*file=journal\.airlock .*entry="a symbolic link \(to [^)]*journal\.db\)"/);
    await agent.waitFor(/msg="inbox entry refused: .*file=passwd\.airlock .*entry="a symbolic link \(to [^)]*passwd\)"/);
    assert.equal(await readlink(join(layout.inbox, 'journal.airlock')), journalPath);

    // done/ swapped for a link to a folder elsewhere: the bundle is imported, and stays in the inbox until done/ is real.
    await rm(join(layout.inbox, 'done'), { recursive: true, force: true });
    await symlink(join(victim, 'elsewhere'), join(layout.inbox, 'done'));
    const mark = agent.mark;
    await drop(second, layout.inbox, 'release.airlock');
    const refused = await agent.waitFor(/msg="inbox folder refused; the file stays in the inbox until the folder is fixed"/, 60_000, mark);
    assert.match(refused, /reason=inbox-link/);
    assert.match(refused, new RegExp(`error="inbox folder ${join(layout.inbox, 'done')} is a symbolic link \\(to ${join(victim, 'elsewhere')}\\): the agent never moves or writes files through a link"`));
    assert.match(refused, new RegExp(`hint="remove the link \\(rm ${join(layout.inbox, 'done')}\\);`));
    // Said once, not at every poll; the bundle is not imported again meanwhile.
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(agent.lines(/inbox folder refused/).length, 1);
    assert.equal(agent.lines(/msg="bundle imported"/).length, 1);
    assert.equal((await readdir(layout.inbox)).includes('release.airlock'), true);
    assert.deepEqual(await tree(victim), outside, 'nothing written through the done/ link');
    // The operator removes the link: the file leaves the inbox at the next poll.
    await rm(join(layout.inbox, 'done'));
    await agent.waitFor(/msg="moved out of the inbox now that its folder is usable"/, 30_000, mark);
    assert.deepEqual(await readdir(join(layout.inbox, 'done')), ['release.airlock']);

    // quarantine/ swapped for a link: a refused bundle stays in the inbox, nothing lands elsewhere.
    await rm(join(layout.inbox, 'quarantine'), { recursive: true });
    await symlink(join(victim, 'elsewhere'), join(layout.inbox, 'quarantine'));
    const mark2 = agent.mark;
    await drop(randomBytes(2048), layout.inbox, 'worse.airlock');
    await agent.waitFor(new RegExp(`msg="inbox folder refused.*error="inbox folder ${join(layout.inbox, 'quarantine')} is a symbolic link`), 60_000, mark2);
    assert.deepEqual(await tree(victim), outside, 'nothing written through the quarantine/ link');
    assert.equal((await readdir(layout.inbox)).includes('worse.airlock'), true);
  } finally {
    const end = await agent.stop();
    assert.equal(end.code, 0, agent.log);
  }
  assert.deepEqual(await tree(victim), outside);
  const j = journalWhole(layout.state);
  assert.deepEqual(j.bundles, ['demo 1.0.0', 'demo 1.1.0']);
  assert.deepEqual(
    j.events.filter((e) => e.kind.startsWith('inbox.')).map((e) => [e.kind, e.outcome, e.reason, e.subject]),
    [
      ['inbox.quarantine', 'refused', j.events.find((e) => e.kind === 'inbox.quarantine')!.reason, 'bad.airlock'],
      ['inbox.folder', 'refused', 'inbox-link', join(layout.inbox, 'done')],
      ['inbox.folder', 'refused', 'inbox-link', join(layout.inbox, 'quarantine')],
    ],
  );
});

test('a root command on a state dir the agent user owns leaves every file to that user; secrets and the journal are not readable by others', async () => {
  const bundle = await buildRelease(bench, { version: '2.0.0', stack: 'howner', repo: 'howner', files: { 'secrets/db_password': 's3cret-value\n' } });
  const again = await buildRelease(bench, { version: '2.1.0', stack: 'howner', repo: 'howner', files: { 'secrets/db_password': 's3cret-value\n' } });
  const state = join(bench.dir, 'owned-state');
  // The agent's user made the state dir, 0755 as many sites leave it.
  await mkdir(state, { mode: 0o755 });
  await chmod(state, 0o755);
  await chown(state, NOBODY.uid, NOBODY.gid);
  // A daemon socket of this test's own: the agent's user may talk to it, as the docker group would.
  await chmod(bench.daemon.socket, 0o666);

  const asRoot = await runAirlock(['bundle', 'import', bundle, '--trust', bench.signer.trustDir, '--state', state], env());
  assert.equal(asRoot.code, 0, asRoot.stdout + asRoot.stderr);
  const files = await tree(state);
  const blobs = Object.entries(files).filter(([p]) => /^blobs\/sha256\/[0-9a-f]{64}$/.test(p));
  assert.ok(blobs.length > 0);
  for (const [p, what] of Object.entries(files)) {
    assert.match(what, /^(file|dir) 65534:65534:/, `${p} belongs to the state dir's owner: ${what}`);
  }
  assert.match(files['journal.db']!, /^file 65534:65534:640 /);
  for (const [p, what] of blobs) assert.match(what, /^file 65534:65534:600 /, p);
  for (const d of ['blobs', 'blobs/sha256', 'blobs/staging']) assert.match(files[d]!, /^dir 65534:65534:700$/, d);
  // Another local user reads neither the journal (env values) nor a blob (the secret's data).
  assert.equal(await canRead({ uid: STRANGER, gid: STRANGER }, join(state, 'journal.db')), false);
  assert.equal(await canRead({ uid: STRANGER, gid: STRANGER }, join(state, blobs[0]![0])), false);

  // A store left by an older airlock (blobs 0644 in open folders) is brought to the owner's only by the next command.
  await chmod(join(state, 'blobs', 'sha256'), 0o755);
  await chmod(join(state, 'blobs'), 0o755);
  for (const [p] of blobs) await chmod(join(state, p), 0o644);
  await chmod(join(state, 'journal.db'), 0o644);
  assert.equal(await canRead({ uid: STRANGER, gid: STRANGER }, join(state, blobs[0]![0])), true, 'the attack works on the old modes');

  // The agent's user, next: imports into what root made (an internal error before).
  const asOwner = await runAs(NOBODY, ['bundle', 'import', again, '--trust', bench.signer.trustDir, '--state', state]);
  assert.equal(asOwner.code, 0, asOwner.stdout + asOwner.stderr);
  const after = await tree(state);
  for (const [p, what] of Object.entries(after)) {
    if (/^blobs\/sha256\/[0-9a-f]{64}$/.test(p)) assert.match(what, /^file 65534:65534:600 /, p);
  }
  assert.match(after['journal.db']!, /^file 65534:65534:640 /);
  assert.match(after['blobs/sha256']!, /^dir 65534:65534:700$/);
  assert.equal(await canRead({ uid: STRANGER, gid: STRANGER }, join(state, 'journal.db')), false);
  assert.equal(await canRead({ uid: STRANGER, gid: STRANGER }, join(state, blobs[0]![0])), false);
  const j = journalWhole(state);
  assert.deepEqual(j.bundles, ['demo 2.0.0', 'demo 2.1.0']);
  assert.equal(j.version, SCHEMA_VERSION);
});

test('four first imports at once on a new state dir all succeed, the schema made once', async () => {
  const bundle = await buildRelease(bench, { version: '3.0.0', stack: 'hfirst', repo: 'hfirst' });
  for (let round = 0; round < 5; round++) {
    const state = join(bench.dir, `first-${round}`);
    const runs = await Promise.all(Array.from({ length: 4 }, () => runAirlock(['bundle', 'import', bundle, '--trust', bench.signer.trustDir, '--state', state, '--json'], env())));
    for (const r of runs) assert.equal(r.code, 0, `round ${round}: ${r.stdout}${r.stderr}`);
    const j = journalWhole(state);
    assert.equal(j.version, SCHEMA_VERSION);
    assert.deepEqual(j.bundles, ['demo 3.0.0']);
    assert.equal(j.events.filter((e) => e.kind === 'bundle.import' && e.outcome === 'ok').length, 4, JSON.stringify(j.events));
  }
});
