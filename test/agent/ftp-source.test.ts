/**
 * The FTP inbox source against a real vsftpd on loopback: slow uploads,
 * markers, resumed downloads, settling, read-only by default, and errors.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, chmod, utimes, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FtpSource, type FtpSourceConfig } from '../../src/agent/inbox/ftp-source.js';
import { AirlockError } from '../../src/errors/index.js';
import { tempDir } from '../helpers/fixtures.js';
import { captureLog } from '../helpers/log-capture.js';
import { sha256File } from '../helpers/images.js';
import { downloads, freePort, ftpCommands, slowUpload, startVsftpd, upload, vsftpdSkipReason, type Vsftpd } from '../helpers/vsftpd.js';

const skip = vsftpdSkipReason();
const MiB = 1024 * 1024;

function config(server: Vsftpd | { url: string }, over: Partial<FtpSourceConfig> = {}): FtpSourceConfig {
  return {
    name: 'drop',
    url: server.url,
    match: (n) => n.endsWith('.airlock'),
    complete: { mode: 'stable', polls: 2 },
    deleteAfter: false,
    timeoutMs: 10_000,
    ...over,
  };
}

/** Polls until `done` says yes or the deadline passes; returns the last result. */
async function pollUntil(src: FtpSource, done: (paths: string[]) => boolean, what: string, ms = 20_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await src.poll();
    if (done(r)) return r;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last poll returned ${JSON.stringify(r)}`);
    await sleep(200);
  }
}

async function writeRandom(path: string, bytes: number): Promise<Buffer> {
  const data = randomBytes(bytes);
  await writeFile(path, data);
  return data;
}

/** The agent's side: take a file out of ready/ and settle it. */
async function consume(src: FtpSource, path: string, dir: string): Promise<string> {
  await mkdir(join(dir, 'processed'), { recursive: true });
  const to = join(dir, 'processed', `${Date.now()}-${path.split('/').pop()}`);
  await rename(path, to);
  await src.settle(path);
  return to;
}

describe('FTP inbox source against a real vsftpd', { skip }, () => {
  test('a slow upload is not taken while it runs, and arrives byte-identical once complete', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const server = await startVsftpd(dir);
    t.after(server.stop);
    const { log, events } = captureLog();
    const spool = join(dir, 'spool');
    const src = new FtpSource(config(server), spool, log);
    const file = join(dir, 'slow.airlock');
    await writeRandom(file, 3 * MiB);
    const remote = join(server.uploadDir, 'slow.airlock');

    const up = slowUpload(file, `${server.url}slow.airlock`, MiB);
    t.after(() => void (up.finished || up.child.kill()));
    let pollsWhileGrowing = 0;
    while (!up.finished) {
      const size = (await stat(remote).catch(() => undefined))?.size;
      const got = await src.poll();
      if (up.finished) break; // the upload ended during this poll: no claim either way
      assert.deepEqual(got, [], `taken while the upload was still running (remote size ${size})`);
      if (size !== undefined && size < 3 * MiB) pollsWhileGrowing++;
      await sleep(300);
    }
    await up.done;
    assert.ok(pollsWhileGrowing >= 2, `polled ${pollsWhileGrowing} times while the file grew`);

    const ready = await pollUntil(src, (r) => r.length > 0, 'the finished upload');
    assert.deepEqual(ready, [join(spool, 'ready', 'slow.airlock')]);
    assert.equal(await sha256File(ready[0]!), await sha256File(file));
    const started = events('download started');
    assert.equal(started.length, 1);
    assert.equal(started[0]!.name, 'slow.airlock');
    assert.equal(started[0]!.source, 'drop');
    assert.equal(started[0]!.bytes, String(3 * MiB));
    assert.equal(events('download finished')[0]!.bytes, String(3 * MiB));
    assert.deepEqual((await readdir(spool)).sort(), ['meta', 'ready'], 'nothing left behind in the spool');

    // Waiting for the agent: returned again, never fetched twice.
    assert.deepEqual(await src.poll(), ready);
    assert.equal(events('download started').length, 1);
  });

  test('marker mode: a file is taken only once NAME.done exists, and not by a marker older than the file', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const server = await startVsftpd(dir);
    t.after(server.stop);
    const { log } = captureLog();
    const spool = join(dir, 'spool');
    const src = new FtpSource(config(server, { complete: { mode: 'marker', suffix: '.done' } }), spool, log);

    const data = await writeRandom(join(server.uploadDir, 'a.airlock'), 200_000);
    for (let i = 0; i < 3; i++) assert.deepEqual(await src.poll(), [], 'no marker yet');
    await writeFile(join(server.uploadDir, 'a.airlock.done'), '');
    const got = await src.poll();
    assert.deepEqual(got, [join(spool, 'ready', 'a.airlock')]);
    assert.deepEqual(await readFile(got[0]!), data);

    // A marker left from an earlier upload under the same name does not count for a newer file.
    await writeRandom(join(server.uploadDir, 'b.airlock'), 1000);
    await writeFile(join(server.uploadDir, 'b.airlock.done'), '');
    const old = new Date(Date.now() - 3600_000);
    await utimes(join(server.uploadDir, 'b.airlock.done'), old, old);
    assert.deepEqual(await src.poll(), got, 'stale marker ignored');
    const now = new Date();
    await utimes(join(server.uploadDir, 'b.airlock.done'), now, now);
    assert.deepEqual(await src.poll(), [...got, join(spool, 'ready', 'b.airlock')]);
  });

  test('an interrupted download resumes where it stopped: only the remaining bytes cross the wire', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    // Throttled so the download is still running when the test interrupts it.
    const server = await startVsftpd(dir, { maxRate: MiB });
    t.after(server.stop);
    const total = 3 * MiB;
    const data = await writeRandom(join(server.uploadDir, 'big.airlock'), total);
    const spool = join(dir, 'spool');
    const first = captureLog();
    const src = new FtpSource(config(server), spool, first.log);
    assert.deepEqual(await src.poll(), [], 'first sight: not complete yet');

    const ac = new AbortController();
    const polling = src.poll(ac.signal);
    const partial = join(spool, 'big.airlock.download');
    const deadline = Date.now() + 30_000;
    while (((await stat(partial).catch(() => undefined))?.size ?? 0) < 256 * 1024) {
      assert.ok(Date.now() < deadline, 'the download never got going');
      await sleep(20);
    }
    ac.abort();
    await assert.rejects(polling, (e: Error) => e.name === 'AbortError');
    const have = (await stat(partial)).size;
    assert.ok(have > 0 && have < total, `partial of ${have} bytes`);
    assert.deepEqual(await readFile(partial), data.subarray(0, have), 'the partial is a prefix of the file');
    assert.equal(first.events('download interrupted; the next poll resumes it')[0]?.offset, String(have));

    // A restarted agent (a new source on the same spool) resumes at once: the partial proves the file was complete.
    const second = captureLog();
    const again = new FtpSource(config(server), spool, second.log);
    const got = await again.poll();
    assert.deepEqual(got, [join(spool, 'ready', 'big.airlock')]);
    assert.equal(await sha256File(got[0]!), `sha256:${createHash('sha256').update(data).digest('hex')}`);
    const resumed = second.events('download resumed');
    assert.equal(resumed.length, 1);
    assert.equal(resumed[0]!.offset, String(have));
    assert.equal(resumed[0]!.bytes, String(total - have));
    assert.equal(second.events('download finished')[0]!.bytes, String(total - have));
    assert.ok((await ftpCommands(server.logFile)).includes(`REST ${have}`));
    // The server's own account: the resumed transfer sent exactly the missing bytes.
    const ok = (await downloads(server.logFile, '/upload/big.airlock')).filter((d) => d.ok);
    assert.deepEqual(ok, [{ ok: true, bytes: total - have }]);
    assert.deepEqual((await readdir(spool)).sort(), ['meta', 'ready']);
  });

  test('a settled file is never fetched again; a new upload under the same name is', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const server = await startVsftpd(dir);
    t.after(server.stop);
    const { log, events } = captureLog();
    const spool = join(dir, 'spool');
    const src = new FtpSource(config(server), spool, log);
    const v1 = join(dir, 'v1');
    await writeRandom(v1, 100_000);
    await upload(v1, `${server.url}c.airlock`);

    const [path] = await pollUntil(src, (r) => r.length === 1, 'c.airlock');
    const kept = await consume(src, path!, dir);
    assert.equal(await sha256File(kept), await sha256File(v1));
    const settled = JSON.parse(await readFile(join(spool, 'settled.json'), 'utf8')) as { files: Record<string, { size: number; modify?: string }> };
    assert.equal(settled.files['c.airlock']?.size, 100_000);
    assert.ok(settled.files['c.airlock']?.modify, 'the modify time (MDTM) is part of what is remembered');

    for (let i = 0; i < 4; i++) assert.deepEqual(await src.poll(), []);
    // A restarted agent remembers too.
    assert.deepEqual(await new FtpSource(config(server), spool, log).poll(), []);
    const retrs = async () => (await ftpCommands(server.logFile)).filter((c) => c === 'RETR c.airlock').length;
    assert.equal(await retrs(), 1);

    // Re-uploaded with other content: a new candidate.
    const v2 = join(dir, 'v2');
    await writeRandom(v2, 120_000);
    await upload(v2, `${server.url}c.airlock`);
    const [path2] = await pollUntil(src, (r) => r.length === 1, 'the new c.airlock');
    assert.equal(await sha256File(path2!), await sha256File(v2));
    await consume(src, path2!, dir);
    assert.equal(await retrs(), 2);

    // Same size, other modify time: a new upload as well.
    const v3 = randomBytes(120_000);
    await writeFile(join(server.uploadDir, 'c.airlock'), v3);
    const earlier = new Date(Date.now() - 7200_000);
    await utimes(join(server.uploadDir, 'c.airlock'), earlier, earlier);
    const [path3] = await pollUntil(src, (r) => r.length === 1, 'c.airlock with a new modify time');
    assert.deepEqual(await readFile(path3!), v3);
    assert.equal(events('download started').length, 3);
  });

  test('by default nothing on the server is written or deleted; with deleteAfter the settled file and its marker go', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    // The server would let this user delete and upload: staying read-only is the source's own doing.
    const server = await startVsftpd(dir, { allowDelete: true });
    t.after(server.stop);
    await writeRandom(join(server.uploadDir, 'r1.airlock'), 50_000);
    await writeFile(join(server.uploadDir, 'r1.airlock.done'), '');
    await writeFile(join(server.uploadDir, 'other.txt'), 'not a bundle\n');
    const snapshot = async (folder: string) => {
      const out: Record<string, { size: number; mtimeMs: number; ino: number; mode: number }> = {};
      for (const n of (await readdir(folder)).sort()) {
        const s = await stat(join(folder, n));
        out[n] = { size: s.size, mtimeMs: s.mtimeMs, ino: s.ino, mode: s.mode };
      }
      return out;
    };
    const before = { root: await snapshot(server.root), upload: await snapshot(server.uploadDir) };

    const { log } = captureLog();
    const src = new FtpSource(config(server, { complete: { mode: 'marker', suffix: '.done' } }), join(dir, 'spool'), log);
    const [path] = await pollUntil(src, (r) => r.length === 1, 'r1.airlock');
    await consume(src, path!, dir);
    for (let i = 0; i < 2; i++) assert.deepEqual(await src.poll(), []);
    assert.deepEqual({ root: await snapshot(server.root), upload: await snapshot(server.uploadDir) }, before, 'server folders unchanged');
    const commands = await ftpCommands(server.logFile);
    const writes = commands.filter((c) => /^(STOR|STOU|APPE|DELE|RNFR|RNTO|MKD|XMKD|RMD|XRMD|SITE|MFMT|MFCT|MFF)\b/i.test(c));
    assert.deepEqual(writes, [], 'no write command was sent');
    assert.deepEqual(commands.filter((c) => c.startsWith('RETR')), ['RETR r1.airlock']);
    assert.ok(!commands.some((c) => c.includes('other.txt')), 'files that do not match are not even looked at');

    // deleteAfter: a second source with a spool of its own.
    const del = captureLog();
    const deleting = new FtpSource(
      config(server, { name: 'drop-del', complete: { mode: 'marker', suffix: '.done' }, deleteAfter: true }),
      join(dir, 'spool-del'),
      del.log,
    );
    const [p2] = await pollUntil(deleting, (r) => r.length === 1, 'r1.airlock for the deleting source');
    assert.ok((await readdir(server.uploadDir)).includes('r1.airlock'), 'nothing deleted before settle');
    await consume(deleting, p2!, dir);
    await deleting.idle(); // settle records at once; the deletion follows on the connection
    assert.deepEqual((await readdir(server.uploadDir)).sort(), ['other.txt']);
    const dele = (await ftpCommands(server.logFile)).filter((c) => c.startsWith('DELE'));
    assert.deepEqual(dele, ['DELE r1.airlock.done', 'DELE r1.airlock'], 'marker first, then the file');
    assert.deepEqual(await deleting.poll(), []);
    assert.deepEqual(await src.poll(), []);
  });

  test('a file the server will not send is skipped with one warning; the others still come', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const server = await startVsftpd(dir);
    t.after(server.stop);
    // Mode 0600: what vsftpd makes of an upload without anon_umask; anonymous users may not read it.
    await writeRandom(join(server.uploadDir, 'locked.airlock'), 10_000);
    await chmod(join(server.uploadDir, 'locked.airlock'), 0o600);
    await writeRandom(join(server.uploadDir, 'open.airlock'), 10_000);
    const { log, events } = captureLog();
    const spool = join(dir, 'spool');
    const src = new FtpSource(config(server), spool, log);
    await pollUntil(src, (r) => r.length === 1, 'open.airlock');
    for (let i = 0; i < 3; i++) assert.deepEqual(await src.poll(), [join(spool, 'ready', 'open.airlock')]);
    const warned = events('the server refused to send a file; skipping it');
    assert.equal(warned.length, 1);
    assert.equal(warned[0]!.name, 'locked.airlock');
    assert.match(warned[0]!.hint ?? '', /anon_umask/);
  });

  test('a password file logs in, and the password never reaches the log or an error', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const password = 'pw-7f3e9a1c';
    const server = await startVsftpd(dir, { password });
    t.after(server.stop);
    await writeRandom(join(server.uploadDir, 'p.airlock'), 5000);
    const good = join(dir, 'good.pw');
    await writeFile(good, `${password}\n`, { mode: 0o600 });
    const bad = join(dir, 'bad.pw');
    await writeFile(bad, 'pw-wrong-5150\n', { mode: 0o600 });

    const { log, lines } = captureLog();
    const src = new FtpSource(config(server, { passwordFile: good }), join(dir, 'spool'), log);
    await pollUntil(src, (r) => r.length === 1, 'p.airlock');

    const wrong = new FtpSource(config(server, { passwordFile: bad }), join(dir, 'spool-bad'), log);
    const err = await wrong.poll().then(
      () => assert.fail('logged in with a wrong password'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof AirlockError);
    assert.equal(err.kind, 'remote');
    assert.equal(err.reason, 'ftp-login');
    assert.match(err.message, /"drop"/);
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${server.port}`));
    const missing = new FtpSource(config(server, { passwordFile: join(dir, 'nope.pw') }), join(dir, 'spool-x'), log);
    await assert.rejects(missing.poll(), (e: AirlockError) => e.kind === 'config' && e.message.includes('passwordFile'));

    const everything = [...lines, err.message, err.hint ?? '', JSON.stringify(err.toJSON())].join('\n');
    assert.ok(!everything.includes(password) && !everything.includes('pw-wrong-5150'), 'no password in logs or errors');
  });

  test('ftps:// with explicit TLS and a CA file', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const server = await startVsftpd(dir, { tls: true });
    t.after(server.stop);
    const data = await writeRandom(join(server.uploadDir, 's.airlock'), 300_000);
    const { log } = captureLog();
    const src = new FtpSource(config(server, { tls: { caFile: server.caFile! } }), join(dir, 'spool'), log);
    const [path] = await pollUntil(src, (r) => r.length === 1, 's.airlock over TLS');
    assert.deepEqual(await readFile(path!), data);

    // Without the CA the self-signed server is not trusted.
    const untrusted = new FtpSource(config(server), join(dir, 'spool-2'), log);
    await assert.rejects(untrusted.poll(), (e: AirlockError) => e.kind === 'remote' && /self[- ]signed/i.test(e.message));
  });

  test('an unreachable server or a missing folder is a remote error naming the source and the server', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const port = await freePort();
    const { log } = captureLog();
    const src = new FtpSource(config({ url: `ftp://127.0.0.1:${port}/upload/` }), join(dir, 'spool'), log);
    const err = await src.poll().then(
      () => assert.fail('polled a server that is not there'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof AirlockError);
    assert.equal(err.kind, 'remote');
    assert.equal(err.exitCode, 17);
    assert.equal(err.reason, 'ftp-unreachable');
    assert.match(err.message, /FTP source "drop"/);
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));

    // A server that accepts the connection and never greets: timeoutMs ends the wait.
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    t.after(() => void silent.close());
    const silentPort = (silent.address() as AddressInfo).port;
    const mute = new FtpSource(config({ url: `ftp://127.0.0.1:${silentPort}/upload/` }, { timeoutMs: 500 }), join(dir, 'spool-1'), log);
    await assert.rejects(mute.poll(), (e: AirlockError) => e.kind === 'remote' && e.reason === 'ftp-unreachable' && /timeout/i.test(e.message));

    const server = await startVsftpd(dir);
    t.after(server.stop);
    const noFolder = new FtpSource(config({ url: `ftp://127.0.0.1:${server.port}/no-such-folder/` }), join(dir, 'spool-2'), log);
    await assert.rejects(noFolder.poll(), (e: AirlockError) => e.kind === 'remote' && e.reason === 'ftp-refused' && e.message.includes('no-such-folder'));
  });
});

test('a bad config is a config error naming the key', () => {
  const { log } = captureLog();
  const base = config({ url: 'ftp://127.0.0.1/upload/' });
  const refuses = (over: Partial<FtpSourceConfig>, key: string, not?: string) =>
    assert.throws(
      () => new FtpSource({ ...base, ...over }, '/nonexistent', log),
      (e: unknown) => {
        assert.ok(e instanceof AirlockError, String(e));
        assert.equal(e.kind, 'config');
        assert.equal(e.exitCode, 3);
        assert.equal(e.subject, key);
        assert.ok(e.message.includes(`"drop": ${key}:`), e.message);
        if (not) assert.ok(!e.message.includes(not), `"${not}" in ${e.message}`);
        return true;
      },
    );
  refuses({ url: 'http://127.0.0.1/upload/' }, 'url');
  refuses({ url: 'sftp://127.0.0.1/upload/' }, 'url');
  refuses({ url: 'ftp://user:hunter2@127.0.0.1/upload/' }, 'url', 'hunter2');
  refuses({ url: 'ftp://a@127.0.0.1/upload/', user: 'b' }, 'user');
  refuses({ tls: { caFile: '/ca.pem' } }, 'tls');
  refuses({ complete: { mode: 'stable', polls: 1 } }, 'complete.polls');
  refuses({ complete: { mode: 'marker', suffix: '' } }, 'complete.suffix');
  refuses({ complete: { mode: 'marker', suffix: '/x' } }, 'complete.suffix');
  refuses({ timeoutMs: 0 }, 'timeoutMs');
  assert.throws(() => new FtpSource({ ...base, name: '../x' }, '/nonexistent', log), (e: AirlockError) => e.kind === 'config' && e.subject === 'name');
  // Good ones pass.
  new FtpSource({ ...base, url: 'ftps://bob@ftp.example.internal:2121/drop/', tls: { rejectUnauthorized: true } }, '/nonexistent', log);
});
