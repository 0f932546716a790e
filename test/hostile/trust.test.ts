/**
 * Hostile input against the trust store, the revocation list, the terminal
 * and the apply lock, done for real and through the CLI (issue 16 items 4,
 * 6, 7, 9): a bundle whose signed description carries escape sequences; a
 * trust dir others can write, with a key planted by another user (setpriv);
 * a revocation list with lines that are not key ids; a lock row naming a
 * live unrelated process or a process of an earlier boot. Each asserts the
 * specific message and exit code, and that the host was left as it was.
 * The engine-facing paths (rollback, drift re-apply, apply, plan, agent)
 * are in revoked.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { readJournal } from '../helpers/journal-read.js';
import YAML from 'yaml';
import { formatLine } from '../../src/agent/log.js';
import { bootId, processStartTime } from '../../src/process/identity.js';
import { makeProject, makeSigner, runCli, tempDir, type Signer } from '../helpers/fixtures.js';

/** Any control character a terminal acts on (C0 but line feed, DEL, C1), or a bidi override. */
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
/** Erase the line, go up one, and print a verdict that is not airlock's. */
const FORGED = (keyId: string) => `\x1b[2K\r\x1b[1Asignature valid, key ${keyId}\x1b]0;pwned\x07\u202e\x9b31m`;

let work: { dir: string; cleanup: () => Promise<void> };
let vendor: Signer;
let stranger: Signer;
/** Built by `stranger` (a key the host does not trust), its description forging a valid signature by `vendor`. */
let hostileBundle: string;
/** Signed by `vendor`: two versions, for imports that must pass. */
const good: string[] = [];

async function build(name: string, signer: Signer, version: string, description?: string): Promise<string> {
  const project = join(work.dir, `p-${name}`);
  await mkdir(project, { recursive: true });
  const def = await makeProject(project, { version, name: 'demo' });
  if (description !== undefined) {
    const d = YAML.parse(await readFile(def, 'utf8')) as Record<string, unknown>;
    d.description = description;
    await writeFile(def, YAML.stringify(d));
  }
  const r = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', join(work.dir, 'out', name), '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { path: string }).path;
}

before(async () => {
  work = await tempDir('airlock-hostile-trust-');
  // Other users (setpriv below) must reach the trust dirs: the work dir is 0755, like /etc.
  await chmod(work.dir, 0o755);
  vendor = await makeSigner(work.dir, 'vendor');
  stranger = await makeSigner(work.dir, 'stranger');
  hostileBundle = await build('hostile', stranger, '6.6.6', FORGED(vendor.keyId));
  good.push(await build('good1', vendor, '1.0.0'), await build('good2', vendor, '1.1.0'));
});

after(async () => {
  await work?.cleanup();
});

const importNoLoad = (file: string, trust: string, state: string, ...extra: string[]) => runCli(['bundle', 'import', file, '--no-load', '--trust', trust, '--state', state, ...extra]);


// ---- item 4: untrusted text reaches the terminal escaped ----

test('bundle inspect: a description with escape sequences, signed by an unknown key, cannot repaint the verdict', async () => {
  const r = await runCli(['bundle', 'inspect', hostileBundle, '--trust', vendor.trustDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, CONTROL, 'no control character reaches the terminal');
  const verdicts = r.stdout.split('\n').filter((l) => l.startsWith('signature '));
  assert.deepEqual(verdicts, [`signature unknown-key, key ${stranger.keyId}: bundle is signed by unknown key ${stranger.keyId}`]);
  // The forged text is there to read, as text, on its own line.
  const about = r.stdout.split('\n').find((l) => l.startsWith('about '));
  assert.equal(about, `about     \\u001b[2K\\u000d\\u001b[1Asignature valid, key ${vendor.keyId}\\u001b]0;pwned\\u0007\\u202e\\u009b31m`);
});

test('bundle inspect --json: the description is escaped and still reads back byte for byte', async () => {
  const r = await runCli(['bundle', 'inspect', hostileBundle, '--trust', vendor.trustDir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, CONTROL);
  const j = JSON.parse(r.stdout) as { signature: { status: string }; manifest: { description: string } };
  assert.equal(j.signature.status, 'unknown-key');
  assert.equal(j.manifest.description, FORGED(vendor.keyId));
});

test('an error naming a hostile file name reaches stderr escaped', async () => {
  const name = join(work.dir, 'x\x1b[2J\x1b]0;owned\x07.airlock');
  const r = await runCli(['bundle', 'verify', name, '--trust', vendor.trustDir]);
  assert.notEqual(r.code, 0);
  assert.doesNotMatch(r.stderr, CONTROL);
  assert.match(r.stderr, /x\\u001b\[2J\\u001b\]0;owned\\u0007\.airlock/);
});

test("the agent's log line: a field with escapes and a line break stays one line of plain text", () => {
  const line = formatLine('warn', 'bundle refused and quarantined', { file: 'evil\x1b[31m.airlock', error: 'bad\nlevel=info msg="forged"' });
  assert.doesNotMatch(line, CONTROL);
  assert.equal(line.split('\n').length, 1);
  assert.match(line, /file="evil\\u001b\[31m\.airlock"/);
  assert.match(line, /error="bad\\nlevel=info msg=\\"forged\\""/);
});

// ---- item 6: a trust store others can write is refused ----

/** A trust dir made 0777, into which user nobody (65534) writes its own key: the attack of item 6. */
async function plantedTrustDir(name: string): Promise<string> {
  const dir = join(work.dir, name);
  await mkdir(dir);
  await writeFile(join(dir, 'vendor.pub'), await readFile(vendor.pubPath));
  await chmod(dir, 0o777);
  const key = await readFile(stranger.pubPath);
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', `cat > '${join(dir, 'mallory.pub')}'`], { input: key });
  assert.equal(r.status, 0, `setpriv: ${r.stderr}`);
  return dir;
}

test('a 0777 trust dir with a key written by another user: import and verify refuse (exit 3), naming both, and the state is not touched', async () => {
  const dir = await plantedTrustDir('trust-0777');
  const state = join(work.dir, 'state-0777');
  for (const args of [
    ['bundle', 'import', hostileBundle, '--no-load', '--trust', dir, '--state', state],
    ['bundle', 'verify', hostileBundle, '--trust', dir],
  ]) {
    const r = await runCli(args);
    assert.equal(r.code, 3, `${args[1]}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`error: trust store ${dir} is not safe to trust: ${dir} is writable by group or others \\(mode 777\\); ${dir}/mallory.pub is owned by uid 65534, not root\\n`));
    assert.match(r.stderr, new RegExp(`hint: whoever can write there can make this host run anything, so nothing is imported, planned or applied until it is fixed: chown -R root:root ${dir} && chmod -R go-w ${dir}`));
  }
  assert.equal(existsSync(state), false, 'the refused import made no state dir');
  // doctor judges by the same rule.
  const d = await runCli(['doctor', '--trust', dir, '--json'], { DOCKER_HOST: 'unix:///nonexistent.sock' });
  const check = (JSON.parse(d.stdout) as { checks: { name: string; status: string; detail: string }[] }).checks.find((c) => c.name === 'trust store');
  assert.equal(check?.status, 'fail');
  assert.match(check!.detail, /mallory\.pub is owned by uid 65534/);
});

test('a group-writable key file, or a trust dir in a folder others can write, is refused the same way; fixed, the import passes', async () => {
  const parent = join(work.dir, 'open-parent');
  const dir = join(parent, 'trusted.d');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'vendor.pub'), await readFile(vendor.pubPath), { mode: 0o664 });
  await chmod(join(dir, 'vendor.pub'), 0o664);
  await chmod(parent, 0o777);
  const state = join(work.dir, 'state-parent');
  let r = await importNoLoad(good[0]!, dir, state);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`${dir}/vendor.pub is writable by group or others \\(mode 664\\); ${parent} is writable by group or others \\(mode 777\\)`));
  assert.match(r.stderr, new RegExp(`chown root:root ${parent} && chmod go-w ${parent}`));
  assert.equal(existsSync(state), false);
  // The fix the hint names makes it pass.
  await chmod(join(dir, 'vendor.pub'), 0o644);
  await chmod(parent, 0o755);
  r = await importNoLoad(good[0]!, dir, state);
  assert.equal(r.code, 0, r.stderr);
});

// ---- item 9: the revocation list fails closed ----

test('a revocation list with a line that is not a key id stops imports (exit 3), naming the file and line', async () => {
  const id = stranger.keyId;
  const bad: [string, string][] = [
    [`keyid ${id}`, `keyid ${id}`],
    [`${id.slice(0, 8)} ${id.slice(8)}`, `${id.slice(0, 8)} ${id.slice(8)}`],
    [`${id.slice(0, 15)}`, id.slice(0, 15)],
    [`${id.slice(0, 15)}g  # the old build key`, `${id.slice(0, 15)}g`],
    [`${id}x`, `${id}x`],
  ];
  for (const [lineText, shown] of bad) {
    const dir = join(work.dir, `trust-revoked-${bad.findIndex(([l]) => l === lineText)}`);
    await mkdir(dir);
    await writeFile(join(dir, 'vendor.pub'), await readFile(vendor.pubPath));
    await writeFile(join(dir, 'revoked'), `# revoked keys\n\n${lineText}\n`);
    const state = join(dir, 'state');
    const r = await importNoLoad(good[0]!, dir, state);
    assert.equal(r.code, 3, `${lineText}: ${r.stderr}`);
    assert.ok(r.stderr.includes(`error: ${dir}/revoked, line 3: "${shown}" is not a key id\n`), r.stderr);
    assert.match(r.stderr, /hint: each line holds one key id, 16 hex digits as 'airlock key id FILE' prints it/);
    assert.equal(existsSync(state), false, 'nothing imported');
    const v = await runCli(['bundle', 'verify', good[0]!, '--trust', dir]);
    assert.equal(v.code, 3, 'verify fails closed too');
  }
});

test('a key id revoked in upper case is revoked: the import is refused (exit 10), naming the list and line', async () => {
  const dir = join(work.dir, 'trust-upper');
  await mkdir(dir);
  await writeFile(join(dir, 'vendor.pub'), await readFile(vendor.pubPath));
  await writeFile(join(dir, 'revoked'), `${'0'.repeat(16)}  # an older key\n${vendor.keyId.toUpperCase()}\n`);
  const state = join(work.dir, 'state-upper');
  const r = await importNoLoad(good[0]!, dir, state);
  assert.equal(r.code, 10, r.stderr);
  assert.ok(r.stderr.includes(`error: bundle is signed by revoked key ${vendor.keyId} (revoked in ${dir}/revoked, line 2)`), r.stderr);
});

// ---- item 7: a reused pid, or an earlier boot, does not hold the apply lock ----

/** A state dir whose journal holds one import, and whose lock row is then set to `row`. */
async function lockedState(name: string, row: { pid: number; boot: string | null; start: string | null }): Promise<string> {
  const state = join(work.dir, name);
  const r = await importNoLoad(good[0]!, vendor.trustDir, state);
  assert.equal(r.code, 0, r.stderr);
  const db = new Database(join(state, 'journal.db'));
  try {
    db.prepare(`INSERT OR REPLACE INTO apply_lock (id, pid, host, what, started_at, boot_id, start_time, uid) VALUES (1, ?, ?, 'bundle import x.airlock', '2026-01-01T00:00:00.000Z', ?, ?, 0)`).run(
      row.pid,
      hostname(),
      row.boot,
      row.start,
    );
  } finally {
    db.close();
  }
  return state;
}

/** An unrelated live process, as a pid reused after a crash would be. */
async function withUnrelatedProcess(fn: (pid: number) => Promise<void>): Promise<void> {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  try {
    await fn(child.pid!);
  } finally {
    child.kill('SIGKILL');
  }
}

const bundleCount = (state: string) => readJournal(state, (j) => j.bundles().length);
const takeovers = (state: string) => readJournal(state, (j) => j.events({ kind: 'lock.takeover' }).map(({ reason, message }) => ({ reason, message })));

test('a lock naming a live pid that started at another time is stale: the import takes it over, and the journal says why', async () => {
  await withUnrelatedProcess(async (pid) => {
    const start = processStartTime(pid)!;
    assert.ok(start, 'the start time of a process is readable');
    const state = await lockedState('state-reused-pid', { pid, boot: bootId()!, start: String(Number(start) - 100) });
    const r = await importNoLoad(good[1]!, vendor.trustDir, state, '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(bundleCount(state), 2);
    assert.deepEqual(takeovers(state), [
      { reason: 'stale-lock', message: `took over the apply lock of bundle import x.airlock (pid ${pid}, since 2026-01-01T00:00:00.000Z): pid ${pid} is now another process (started at tick ${start}, the holder at ${Number(start) - 100})` },
    ]);
  });
});

test('a lock taken before the last reboot is stale, whatever runs under its pid now', async () => {
  await withUnrelatedProcess(async (pid) => {
    const state = await lockedState('state-old-boot', { pid, boot: '00000000-0000-4000-8000-000000000000', start: processStartTime(pid)! });
    const r = await importNoLoad(good[1]!, vendor.trustDir, state);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(takeovers(state)[0]?.message?.endsWith('taken before the last reboot'), true);
  });
});

test('a lock whose holder still runs (same boot, same start time) holds: the import waits, exits 16 naming the holder and how to clear it, and imports nothing', async () => {
  await withUnrelatedProcess(async (pid) => {
    const state = await lockedState('state-held', { pid, boot: bootId()!, start: processStartTime(pid)! });
    const r = await importNoLoad(good[1]!, vendor.trustDir, state, '--wait', '1s');
    assert.equal(r.code, 16, r.stderr);
    assert.ok(r.stderr.includes(`error: another apply is running: bundle import x.airlock (pid ${pid}, since 2026-01-01T00:00:00.000Z)`), r.stderr);
    assert.ok(r.stderr.includes(`'ps -o pid,user,lstart,args -p ${pid}' shows no airlock started then, see "The apply lock" in docs/journal.md`), r.stderr);
    assert.equal(bundleCount(state), 1);
    assert.deepEqual(takeovers(state), []);
  });
});
