/**
 * The FTP channel under a hostile server, for real: a fake server on
 * loopback (test/helpers/fake-ftp.ts) lies about sizes, trickles a byte every
 * few seconds, or drops mid-transfer, against the real agent process, a real
 * dockerd, a real journal and, for the size cap, a small tmpfs state disk.
 * docs/security.md ("The FTP channel") names what each test proves.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { FtpSource, type FtpSourceConfig } from '../../src/agent/inbox/ftp-source.js';
import { isInboxName } from '../../src/agent/inbox/part-sets.js';
import { AgentProcess, writeAgentConfig } from '../helpers/agent.js';
import { buildRelease, deployments, startBench, type Bench } from '../helpers/apply.js';
import { readJournal } from '../helpers/journal-read.js';
import { startFakeFtp } from '../helpers/fake-ftp.js';
import { tempDir } from '../helpers/fixtures.js';
import { captureLog } from '../helpers/log-capture.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

let bench: Bench;
let capped: string;
let trickled: string;

before(async () => {
  bench = await startBench('airlock-hostile-ftp-');
  capped = await buildRelease(bench, { version: '1.0.0', stack: 'hostilea', repo: 'hostileftp' });
  trickled = await buildRelease(bench, { version: '1.0.0', stack: 'hostileb', repo: 'hostileftp' });
});
after(() => bench?.close());

/** Total bytes of the files under `dir` (0 when it does not exist yet). */
async function bytesUnder(dir: string): Promise<number> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  let total = 0;
  for (const e of entries) if (e.isFile()) total += await stat(join(e.parentPath, e.name)).then((s) => s.size, () => 0);
  return total;
}

/** Samples `dir`'s size every 20 ms until stopped; returns the largest seen. */
function watchSize(dir: string): { stop(): Promise<number> } {
  let max = 0;
  let on = true;
  const loop = (async () => {
    while (on) {
      max = Math.max(max, await bytesUnder(dir));
      await sleep(20);
    }
  })();
  return {
    async stop() {
      on = false;
      await loop;
      return max;
    },
  };
}

function integrity(state: string): string {
  return readJournal(state, (j) => j.integrity());
}

/** Drops a bundle into a folder inbox whole, then its marker. */
async function drop(bundle: string, inbox: string, name: string): Promise<void> {
  await copyFile(bundle, join(inbox, `.${name}.tmp`));
  await rename(join(inbox, `.${name}.tmp`), join(inbox, name));
  await writeFile(join(inbox, `${name}.ready`), '');
}

test('a server that lists 100 B and sends 400 MiB gets at most 100 B into the spool of a small state disk; the journal and the folder inbox go on', async () => {
  const ftp = await startFakeFtp({
    'big.airlock': { data: 400 * MiB, listed: 100 },
    // Listed truthfully, but the state disk cannot hold it and keep the journal's margin.
    'huge.airlock': { data: 1024 * MiB },
  });
  const dir = join(bench.dir, 'capped');
  const state = join(dir, 'state');
  await mkdir(state, { recursive: true });
  // 320 MiB: the import's 256 MiB spare plus room for the journal and one small bundle, no more.
  await run('mount', ['-t', 'tmpfs', '-o', 'size=320m,mode=0755', 'airlock-hostile-ftp', state]);
  let agent: AgentProcess | undefined;
  let size: { stop(): Promise<number> } | undefined;
  try {
    const layout = await writeAgentConfig(dir, bench.signer.trustDir, {
      inbox: {
        poll: '*/1 * * * * *',
        complete: { mode: 'marker', markerSuffix: '.ready' },
        sources: [{ type: 'ftp', name: 'liar', url: ftp.url, timeout: '5s', complete: { mode: 'stable' } }],
      },
    });
    const spool = join(state, 'spool', 'liar');
    size = watchSize(spool);
    agent = new AgentProcess(layout.config, { DOCKER_HOST: bench.daemon.dockerHost });
    const refused = await agent.waitFor(/msg="the server sent more than the listed size; the file is refused until its listing changes"/, 30_000);
    assert.match(refused, /name=big\.airlock size=100 /);
    await agent.waitFor(/msg="not enough free disk in the spool folder; skipping the file for now" .*name=huge\.airlock/, 30_000);

    // The agent still serves the folder inbox, on the same state disk.
    await drop(capped, layout.inbox, 'capped.airlock');
    await agent.waitFor(/msg="stack deployed" .*stack=hostilea/, 120_000);
    // Several more polls: the liar is not asked again while its listing is the same; the other file never.
    await sleep(3000);
    const most = await size.stop();
    assert.ok(most <= 100 + 4096, `the spool held ${most} bytes (listed 100; meta files aside)`);
    assert.equal(ftp.retrs('big.airlock'), 1, ftp.commands.join('\n'));
    assert.equal(ftp.retrs('huge.airlock'), 0);
    assert.deepEqual(await readdir(join(spool, 'ready')).catch(() => []), []);
    assert.equal(agent.lines(/msg="the server sent more than the listed size/).length, 1, 'said once');
    assert.deepEqual(await readdir(join(layout.inbox, 'done')), ['capped.airlock']);
    const { code } = await agent.stop();
    assert.equal(code, 0, agent.log);
    assert.equal(integrity(state), 'ok');
    assert.equal(deployments(state).at(-1)?.status, 'committed');
  } finally {
    await size?.stop();
    await agent?.stop();
    await ftp.stop();
    await run('umount', [state]);
  }
});

test('a server that trickles a byte every 3 s is stopped at its deadline and resumed later; meanwhile a folder bundle is imported and deployed within one poll plus its import', async (t) => {
  // 200 B at a minimum of 20 B/s: stopped after 5 s (the idle timeout) + 10 s, however steadily it trickles.
  const slow = randomBytes(200);
  const ftp = await startFakeFtp({ 'slow.airlock': { data: slow, trickleMs: 3000 } });
  const dir = join(bench.dir, 'trickled');
  const pollS = 2;
  const layout = await writeAgentConfig(dir, bench.signer.trustDir, {
    inbox: {
      poll: `*/${pollS} * * * * *`,
      watch: false,
      complete: { mode: 'marker', markerSuffix: '.ready' },
      sources: [{ type: 'ftp', name: 'trickle', url: ftp.url, timeout: '5s', minRate: 20, complete: { mode: 'stable' } }],
    },
  });
  const agent = new AgentProcess(layout.config, { DOCKER_HOST: bench.daemon.dockerHost });
  try {
    await agent.waitFor(/msg="download started" .*name=slow\.airlock/, 30_000);
    const started = Date.now();
    await sleep(1000);

    const at = agent.mark;
    const dropped = Date.now();
    await drop(trickled, layout.inbox, 'trickled.airlock');
    await agent.waitFor(/msg="importing bundle"/, 60_000, at);
    const importing = Date.now();
    await agent.waitFor(/msg="bundle imported"/, 60_000, at);
    const imported = Date.now();
    await agent.waitFor(/msg="stack deployed" .*stack=hostileb/, 120_000, at);
    const deployed = Date.now();
    const importMs = imported - importing;
    const latencyMs = imported - dropped;
    t.diagnostic(`measured: dropped → imported ${latencyMs} ms (poll interval ${pollS * 1000} ms, import ${importMs} ms); deployed after ${deployed - dropped} ms`);
    assert.ok(latencyMs <= pollS * 1000 + importMs + 500, `imported ${latencyMs} ms after the drop; bound ${pollS * 1000} + ${importMs} ms`);
    // All of it while the trickle went on.
    assert.deepEqual(agent.lines(/msg="download (finished|too slow)/), [], 'the trickle had ended');
    assert.ok((ftp.sent.get('slow.airlock') ?? 0) < slow.length);

    const stopped = await agent.waitFor(/msg="download too slow: stopped at its deadline; the next poll resumes it" .*name=slow\.airlock/, 30_000);
    const elapsed = (Date.now() - started) / 1000;
    assert.ok(elapsed < 20, `stopped after ${elapsed} s (deadline 15 s)`);
    assert.match(stopped, /deadline_s=15 /);
    const resumed = await agent.waitFor(/msg="download resumed" .*name=slow\.airlock/, 30_000);
    const offset = Number(/offset=(\d+)/.exec(resumed)?.[1]);
    assert.ok(offset > 0 && offset < slow.length, resumed);
    for (let i = 0; i < 50 && !ftp.commands.includes(`REST ${offset}`); i++) await sleep(100);
    assert.ok(ftp.commands.includes(`REST ${offset}`), ftp.commands.join('\n'));
  } finally {
    const { code } = await agent.stop();
    await ftp.stop();
    assert.equal(code, 0, agent.log);
  }
  assert.equal(integrity(layout.state), 'ok');
  assert.equal(deployments(layout.state).at(-1)?.status, 'committed');
});

function sourceConfig(url: string, over: Partial<FtpSourceConfig> = {}): FtpSourceConfig {
  return { name: 'drop', url, match: isInboxName, complete: { mode: 'stable', polls: 2 }, deleteAfter: false, timeoutMs: 5000, ...over };
}

test('a server that drops the connection mid-transfer leaves a partial no larger than what came, resumed byte-identical at the next poll', async () => {
  const data = randomBytes(3 * MiB);
  const ftp = await startFakeFtp({ 'cut.airlock': { data, dropAfter: MiB } });
  const work = await tempDir('airlock-hostile-drop-');
  const cap = captureLog();
  const src = new FtpSource(sourceConfig(ftp.url), join(work.dir, 'spool'), cap.log);
  try {
    for (let i = 0; i < 5 && cap.events('download interrupted; the next poll resumes it').length === 0; i++) assert.deepEqual(await src.poll().catch(() => []), []);
    const [cut] = cap.events('download interrupted; the next poll resumes it');
    assert.ok(cut, cap.lines.join('\n'));
    // What arrived before the server vanished, and no more than it sent.
    const offset = Number(cut.offset);
    assert.ok(offset > 0 && offset <= MiB, `kept ${offset} bytes`);
    assert.ok((await bytesUnder(join(work.dir, 'spool'))) <= MiB + 4096, 'the spool holds no more than the server sent');

    ftp.files.get('cut.airlock')!.dropAfter = undefined;
    const ready = await src.poll();
    assert.equal(ready.length, 1, cap.lines.join('\n'));
    assert.equal(createHash('sha256').update(await readFile(ready[0]!)).digest('hex'), createHash('sha256').update(data).digest('hex'));
    assert.ok(ftp.commands.includes(`REST ${offset}`), ftp.commands.join('\n'));
    assert.equal(ftp.sent.get('cut.airlock'), MiB + data.length - offset, 'only the missing bytes crossed the wire again');
  } finally {
    await src.idle();
    await ftp.stop();
    await work.cleanup();
  }
});

/** Bytes of the same length with one byte flipped past the middle: the same name and size, other content. */
function damaged(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  const at = Math.floor(out.length * 0.6);
  out.writeUInt8(out.readUInt8(at) ^ 0xff, at);
  return out;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('a server without modify times: a settled file resent with other content at the same size is found by its hash at the re-check interval and fetched again', async () => {
  const first = randomBytes(64 * 1024);
  const second = damaged(first);
  const ftp = await startFakeFtp({ 'same.airlock': { data: first } }, { modifyTimes: false });
  const work = await tempDir('airlock-hostile-recheck-');
  const spool = join(work.dir, 'spool');
  const cap = captureLog();
  const recheckMs = 1500;
  const src = new FtpSource(sourceConfig(ftp.url, { recheckMs }), spool, cap.log);
  /** Takes a ready file away as the agent does, and settles it. */
  const consume = async (path: string) => {
    const kept = join(work.dir, `taken-${Date.now()}`);
    await rename(path, kept);
    await src.settle(path);
    return readFile(kept);
  };
  const settledRecord = async () =>
    (JSON.parse(await readFile(join(spool, 'settled.json'), 'utf8')) as { files: Record<string, { size: number; modify?: string; sha256?: string }> }).files['same.airlock'];
  try {
    let ready: string[] = [];
    for (let i = 0; i < 3 && ready.length === 0; i++) ready = await src.poll();
    assert.equal(ready.length, 1, cap.lines.join('\n'));
    assert.deepEqual(await consume(ready[0]!), first);
    assert.ok(!ftp.commands.some((c) => c.startsWith('MDTM')), 'the server offered no MDTM, and none was sent');
    const rec = await settledRecord();
    assert.equal(rec?.modify, undefined);
    assert.equal(rec?.sha256, sha256(first), 'the content hash is what identifies it');

    // Resent at once: within the interval nothing crosses the wire again.
    ftp.files.set('same.airlock', { data: second });
    assert.deepEqual(await src.poll(), []);
    assert.equal(ftp.retrs('same.airlock'), 1);

    await sleep(recheckMs + 100);
    assert.deepEqual(await src.poll(), [], 'the re-check hashes, it does not spool');
    assert.equal(ftp.retrs('same.airlock'), 2);
    const [changed] = cap.events('a settled file has new content under the same name and size; it is fetched again');
    assert.equal(changed?.was, sha256(first));
    assert.equal(changed?.now, sha256(second));
    assert.equal(await settledRecord(), undefined);
    assert.deepEqual(await readdir(join(spool, 'ready')), []);

    // A new file now: complete once stable, fetched, byte-identical.
    ready = [];
    for (let i = 0; i < 3 && ready.length === 0; i++) ready = await src.poll();
    assert.equal(ready.length, 1, cap.lines.join('\n'));
    assert.deepEqual(await consume(ready[0]!), second);
    assert.equal((await settledRecord())?.sha256, sha256(second));

    // Unchanged at the next re-check: one transfer into the hash, nothing fetched.
    await sleep(recheckMs + 100);
    assert.deepEqual(await src.poll(), []);
    assert.deepEqual(await src.poll(), []);
    assert.equal(ftp.retrs('same.airlock'), 4, 'fetch, re-check, fetch, re-check');
    assert.equal(cap.events('download started').length, 2);
    assert.deepEqual(ftp.deleted, [], 'read-only');
  } finally {
    await src.idle();
    await ftp.stop();
    await work.cleanup();
  }
});

test('a server without modify times: a damaged bundle is quarantined, the good one of the same name and size that replaced it is fetched, imported and deployed, and deleteAfter deletes only content it fetched', async () => {
  const good = await buildRelease(bench, { version: '1.0.0', stack: 'hostilec', repo: 'hostileftp' });
  const goodBytes = await readFile(good);
  const bad = damaged(goodBytes);
  // The vendor re-uploads the good bundle right after the agent fetched the damaged one: before the agent settles and deletes it.
  const ftp = await startFakeFtp({ 'app.airlock': { data: bad, then: { data: goodBytes } } }, { modifyTimes: false });
  const dir = join(bench.dir, 'resent');
  const layout = await writeAgentConfig(dir, bench.signer.trustDir, {
    inbox: {
      poll: '*/1 * * * * *',
      watch: false,
      sources: [{ type: 'ftp', name: 'resend', url: ftp.url, timeout: '5s', deleteAfter: true, complete: { mode: 'stable' } }],
    },
  });
  const agent = new AgentProcess(layout.config, { DOCKER_HOST: bench.daemon.dockerHost });
  try {
    const quarantined = await agent.waitFor(/msg="bundle refused and quarantined"/, 60_000);
    assert.match(quarantined, /file=app\.airlock/);
    const reason = (await readFile(join(layout.inbox, 'quarantine', 'app.airlock.reason'), 'utf8')).toString();
    assert.match(reason, /file: app\.airlock/);
    assert.match(reason, /exit_code: 1[12]/);
    const changed = await agent.waitFor(/msg="a settled file has new content under the same name and size; it is fetched again"/, 30_000);
    assert.match(changed, new RegExp(`was=${sha256(bad)} now=${sha256(goodBytes)}`));
    await agent.waitFor(/msg="stack deployed" .*stack=hostilec/, 120_000);
    await agent.waitFor(/msg="deleted on server" .*name=app\.airlock/, 30_000);
    await sleep(2500); // more polls: nothing is fetched or deleted again
    const { code } = await agent.stop();
    assert.equal(code, 0, agent.log);
  } finally {
    await agent.stop();
    await ftp.stop();
  }
  // Damaged fetch, its re-check before deleting (other content: kept), good fetch, its re-check (same: deleted).
  assert.equal(ftp.retrs('app.airlock'), 4, ftp.commands.join('\n'));
  assert.deepEqual(
    ftp.deleted.map((d) => ({ name: d.name, sha256: sha256(d.data as Buffer) })),
    [{ name: 'app.airlock', sha256: sha256(goodBytes) }],
    'deleted once, and only the content that was fetched and imported',
  );
  const dele = ftp.commands.indexOf('DELE app.airlock');
  assert.equal(ftp.commands.lastIndexOf('RETR app.airlock') < dele, true, 'the last transfer (the re-check) came before the delete');
  assert.deepEqual((await readdir(join(layout.inbox, 'quarantine'))).sort(), ['app.airlock', 'app.airlock.reason']);
  assert.deepEqual(await readdir(join(layout.inbox, 'done')), ['app.airlock']);
  assert.equal(sha256(await readFile(join(layout.inbox, 'done', 'app.airlock'))), sha256(goodBytes));
  assert.equal(sha256(await readFile(join(layout.inbox, 'quarantine', 'app.airlock'))), sha256(bad));
  assert.equal(integrity(layout.state), 'ok');
  const deployed = deployments(layout.state);
  assert.equal(deployed.length, 1);
  assert.equal(deployed[0]?.status, 'committed');
  assert.equal(
    readJournal(layout.state, (j) => j.events({ kind: 'inbox.quarantine' }).length),
    1,
  );
});
