/**
 * uploadFile on a real lab host (sshd + internal-sftp in its own namespaces):
 * fresh upload, skip, resume after the connection's sshd processes are
 * killed mid-upload, a foreign partial started again from 0, a different file
 * of the same name replaced only whole, abort, and a full disk.
 *
 * Synchronisation is by progress callbacks only (the kill, the abort and the
 * disk filling happen inside onProgress), never by sleeping, and nothing
 * asserts on speed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'ssh2';
import { AirlockError } from '../../src/errors/index.js';
import { uploadFile, type UploadResult } from '../../src/remote/upload.js';
import { holdUploadLock } from '../../src/remote/upload-lock.js';
import { type Lab, type LabHost, startLab } from '../helpers/lab.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const INBOX = '/var/lib/airlock/inbox';

/** Writes `size` random bytes to path, 1 MiB at a time. */
async function randomFile(path: string, size: number): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(path, 'w');
  try {
    for (let left = size; left > 0; ) {
      const b = randomBytes(Math.min(MiB, left));
      h.update(b);
      await fh.write(b);
      left -= b.length;
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

function sha256Of(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Direct children of pid, from /proc. */
function childrenOf(pid: number): number[] {
  const kids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) kids.push(Number(p));
    } catch {
      // gone
    }
  }
  return kids;
}

function descendantsOf(pid: number): number[] {
  const out: number[] = [];
  for (const c of childrenOf(pid)) out.push(c, ...descendantsOf(c));
  return out;
}

function isAirlockError(kind: string, reason: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof AirlockError, `expected an AirlockError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.equal(e.reason, reason, e.message);
    return true;
  };
}

describe('uploadFile on a lab host', { timeout: 600_000 }, () => {
  let lab: Lab;
  let host: LabHost;
  let work: string;
  let file: string;
  let fileSha: string;
  const clients: Client[] = [];

  async function connect(): Promise<Client> {
    const c = await lab.ssh(host);
    c.on('error', () => undefined); // a killed session may report ECONNRESET after close
    clients.push(c);
    return c;
  }

  async function remoteSha(path: string): Promise<string> {
    const r = await lab.exec(host, ['sha256sum', '--', path]);
    return r.stdout.slice(0, 64);
  }

  async function remoteSize(path: string): Promise<number | undefined> {
    const r = await lab.exec(host, ['stat', '-c', '%s', '--', path], { allowFail: true });
    return r.code === 0 ? Number(r.stdout.trim()) : undefined;
  }

  async function assertDelivered(r: UploadResult, path: string, sha: string, size: number): Promise<void> {
    assert.equal(r.remotePath, path);
    assert.equal(r.size, size);
    assert.equal(r.sha256, sha);
    assert.equal(await remoteSha(path), sha, 'the file on the host has the local sha256');
    const dir = path.slice(0, path.lastIndexOf('/'));
    const name = path.slice(path.lastIndexOf('/') + 1);
    assert.equal(await remoteSize(`${dir}/.${name}.partial`), undefined, 'no partial is left');
  }

  before(async () => {
    lab = await startLab(await mkdtemp('/tmp/airlock-lab-up-'), 1);
    host = lab.hosts[0]!;
    work = await mkdtemp(join(tmpdir(), 'airlock-upload-'));
    file = join(work, 'app-1.0.0.airlock');
    fileSha = await randomFile(file, SIZE);
  });

  after(async () => {
    for (const c of clients) c.end();
    if (lab) {
      await lab.exec(host, ['umount', '/var/lib/airlock/small'], { allowFail: true }).catch(() => undefined);
      await lab.stop();
    }
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('a fresh upload sends every byte and leaves the verified file, no partial', async () => {
    const c = await connect();
    const seen: number[] = [];
    const r = await uploadFile(c, file, { remoteDir: INBOX, onProgress: (sent, total) => (assert.equal(total, SIZE), seen.push(sent)) });
    assert.equal(r.skipped, false);
    assert.equal(r.resumedFrom, 0);
    assert.equal(r.bytesSent, SIZE);
    assert.equal(seen.at(-1), SIZE, 'progress ends at the size');
    assert.ok(seen.every((v, i) => i === 0 || v >= seen[i - 1]!), 'progress never goes back');
    await assertDelivered(r, `${INBOX}/app-1.0.0.airlock`, fileSha, SIZE);
  });

  test('a second upload of the same file is skipped: nothing sent', async () => {
    const c = await connect();
    const r = await uploadFile(c, file, { remoteDir: INBOX });
    assert.equal(r.skipped, true);
    assert.equal(r.bytesSent, 0);
    assert.equal(r.sha256, fileSha);
    // With the hash given by the caller, too.
    const r2 = await uploadFile(c, file, { remoteDir: INBOX, sha256: fileSha.toUpperCase() });
    assert.equal(r2.skipped, true);
    assert.equal(r2.bytesSent, 0);
  });

  test('sshd killed mid-upload: remote/upload-interrupted, the partial stays, the retry resumes and sends only the rest', async (t) => {
    const name = 'resume.airlock';
    const path = `${INBOX}/${name}`;
    const partial = `${INBOX}/.${name}.partial`;
    const listener = host.pids.sshd;
    assert.equal(readFileSync(`/proc/${listener}/comm`, 'utf8').trim(), 'sshd', 'pids.sshd is the listening sshd');

    const c = await connect();
    // The processes serving this connection (privsep monitor and session):
    // killing them is what a network drop looks like to both ends; the
    // listener stays up for the retry.
    const sessions = descendantsOf(listener);
    assert.ok(sessions.length > 0, 'the connection has sshd processes');
    let killedAt = -1;
    await assert.rejects(
      uploadFile(c, file, {
        remoteDir: INBOX,
        remoteName: name,
        onProgress: (sent, total) => {
          if (killedAt < 0 && sent > total / 4) {
            killedAt = sent;
            for (const p of sessions) {
              try {
                process.kill(p, 'SIGKILL');
              } catch {
                // already gone
              }
            }
          }
        },
      }),
      (e: unknown) => {
        isAirlockError('remote', 'upload-interrupted')(e);
        t.diagnostic(`interrupted: ${(e as AirlockError).message}`);
        assert.match((e as AirlockError).message, /interrupted/);
        assert.match((e as AirlockError).message, new RegExp(`of ${SIZE} bytes`));
        assert.equal((e as AirlockError).hint, 'run it again: the upload resumes');
        return true;
      },
    );
    assert.ok(killedAt > SIZE / 4, 'the sessions were killed after a quarter');
    const left = await remoteSize(partial);
    assert.ok(left !== undefined && left >= killedAt && left < SIZE, `a partial of ${left} bytes stays (killed at ${killedAt})`);
    assert.equal(await remoteSize(path), undefined, 'the final name does not exist');

    const c2 = await connect();
    let first: number | undefined;
    const r = await uploadFile(c2, file, { remoteDir: INBOX, remoteName: name, onProgress: (sent) => (first ??= sent) });
    t.diagnostic(`resume: killed at ${killedAt}, partial ${left}, retry resumedFrom ${r.resumedFrom}, bytesSent ${r.bytesSent} of ${SIZE}`);
    assert.equal(r.skipped, false);
    assert.equal(r.resumedFrom, left, 'resumed at the size of the partial');
    assert.ok(r.resumedFrom > SIZE / 4);
    assert.equal(r.bytesSent, SIZE - r.resumedFrom, 'only the rest was sent');
    assert.equal(first, r.resumedFrom, 'progress starts at the resume point');
    await assertDelivered(r, path, fileSha, SIZE);
  });

  test('a partial that is a true prefix resumes; one that differs, or is longer, starts again from 0', async () => {
    const whole = readFileSync(file);
    const dir = join(host.stateDir, 'inbox'); // the host's /var/lib/airlock/inbox, seen from the jump box

    // A true prefix (as a broken run would leave it): resumed.
    await writeFile(join(dir, '.prefix.airlock.partial'), whole.subarray(0, 10 * MiB + 123));
    const c = await connect();
    const r1 = await uploadFile(c, file, { remoteDir: INBOX, remoteName: 'prefix.airlock' });
    assert.equal(r1.resumedFrom, 10 * MiB + 123);
    assert.equal(r1.bytesSent, SIZE - r1.resumedFrom);
    await assertDelivered(r1, `${INBOX}/prefix.airlock`, fileSha, SIZE);

    // Same length, different bytes at the end of the prefix: from 0.
    const wrong = Buffer.from(whole.subarray(0, 10 * MiB));
    wrong[wrong.length - 1] = wrong[wrong.length - 1]! ^ 0xff;
    await writeFile(join(dir, '.wrong.airlock.partial'), wrong);
    const r2 = await uploadFile(c, file, { remoteDir: INBOX, remoteName: 'wrong.airlock' });
    assert.equal(r2.resumedFrom, 0);
    assert.equal(r2.bytesSent, SIZE);
    await assertDelivered(r2, `${INBOX}/wrong.airlock`, fileSha, SIZE);

    // Longer than the file: from 0 (and truncated).
    await writeFile(join(dir, '.long.airlock.partial'), Buffer.concat([whole, Buffer.from('tail')]));
    const r3 = await uploadFile(c, file, { remoteDir: INBOX, remoteName: 'long.airlock', sha256: fileSha });
    assert.equal(r3.resumedFrom, 0);
    assert.equal(r3.bytesSent, SIZE);
    await assertDelivered(r3, `${INBOX}/long.airlock`, fileSha, SIZE);
  });

  test('a different file of the same name is replaced, and only whole', async () => {
    const dir = join(host.stateDir, 'inbox');
    const c = await connect();
    for (const [name, oldSize] of [
      ['same-size.airlock', SIZE],
      ['other-size.airlock', 3 * MiB],
    ] as const) {
      const target = join(dir, name);
      const old = randomBytes(oldSize);
      await writeFile(target, old);
      const oldSha = sha256Of(old);
      const oldIno = statSync(target).ino;
      let checkedMidway = false;
      const r = await uploadFile(c, file, {
        remoteDir: INBOX,
        remoteName: name,
        onProgress: (sent, total) => {
          if (!checkedMidway && sent > total / 2 && sent < total) {
            checkedMidway = true;
            // Halfway: the old file is untouched under its name; the new bytes are in the partial.
            assert.equal(statSync(target).ino, oldIno);
            assert.equal(sha256Of(readFileSync(target)), oldSha);
            assert.ok(statSync(join(dir, `.${name}.partial`)).size > 0);
          }
        },
      });
      assert.ok(checkedMidway, 'the old file was looked at halfway');
      assert.equal(r.skipped, false, `${name}: not skipped`);
      assert.equal(r.bytesSent, SIZE);
      assert.notEqual(statSync(target).ino, oldIno, `${name}: a new file took the name (rename), not rewritten in place`);
      await assertDelivered(r, `${INBOX}/${name}`, fileSha, SIZE);
    }
  });

  test('a hash mismatch on the host: integrity/upload-mismatch naming both hashes, the partial deleted, no file', async () => {
    const c = await connect();
    const claimed = 'ab'.repeat(32); // what the caller says the file is; the bytes say otherwise
    await assert.rejects(uploadFile(c, file, { remoteDir: INBOX, remoteName: 'mismatch.airlock', sha256: claimed }), (e: unknown) => {
      isAirlockError('integrity', 'upload-mismatch')(e);
      const err = e as AirlockError;
      assert.equal(err.subject, `${host.address}:${INBOX}/mismatch.airlock`);
      assert.ok(err.message.includes(claimed) && err.message.includes(fileSha), err.message);
      return true;
    });
    assert.equal(await remoteSize(`${INBOX}/.mismatch.airlock.partial`), undefined, 'the partial is deleted');
    assert.equal(await remoteSize(`${INBOX}/mismatch.airlock`), undefined, 'the name never appears');
  });

  test('an abort stops the upload with the signal reason and keeps the partial for the next run', async () => {
    const c = await connect();
    const ac = new AbortController();
    await assert.rejects(
      uploadFile(c, file, {
        remoteDir: INBOX,
        remoteName: 'aborted.airlock',
        signal: ac.signal,
        onProgress: (sent, total) => {
          if (sent > total / 10) ac.abort();
        },
      }),
      (e: unknown) => (e as Error).name === 'AbortError',
    );
    const left = await remoteSize(`${INBOX}/.aborted.airlock.partial`);
    assert.ok(left !== undefined && left > SIZE / 10 && left < SIZE, `partial of ${left} bytes`);
    const r = await uploadFile(await connect(), file, { remoteDir: INBOX, remoteName: 'aborted.airlock' });
    assert.equal(r.resumedFrom, left);
    assert.equal(r.bytesSent, SIZE - left);
    await assertDelivered(r, `${INBOX}/aborted.airlock`, fileSha, SIZE);
  });

  test('a full disk on the host: resources/remote-disk-full, before writing or in the middle', async (t) => {
    const small = '/var/lib/airlock/small'; // a 16 MiB tmpfs in the host's own mount namespace
    await lab.exec(host, ['mkdir', '-p', small]);
    await lab.exec(host, ['mount', '-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', small]);
    const c = await connect();

    // 64 MiB cannot fit: refused before a byte is written.
    await assert.rejects(uploadFile(c, file, { remoteDir: small }), (e: unknown) => {
      isAirlockError('resources', 'remote-disk-full')(e);
      t.diagnostic(`before: ${(e as AirlockError).message}`);
      assert.match((e as AirlockError).message, new RegExp(`${small}/app-1\\.0\\.0\\.airlock`));
      return true;
    });
    assert.equal(await remoteSize(`${small}/.app-1.0.0.airlock.partial`), undefined);

    // 12 MiB fits, but the disk fills up during the upload.
    const part = join(work, 'part.airlock');
    const partSha = await randomFile(part, 12 * MiB);
    const fill = `/proc/${host.pids.holder}/root${small}/fill`; // the host's tmpfs, from the jump box
    let filled = false;
    await assert.rejects(
      uploadFile(c, part, {
        remoteDir: small,
        onProgress: (sent) => {
          if (!filled && sent > 0) {
            filled = true;
            const fd = openSync(fill, 'w');
            try {
              const b = Buffer.alloc(MiB);
              for (;;) writeSync(fd, b);
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
            } finally {
              closeSync(fd);
            }
          }
        },
      }),
      (e: unknown) => {
        isAirlockError('resources', 'remote-disk-full')(e);
        t.diagnostic(`midway: ${(e as AirlockError).message} (cause: ${String((e as AirlockError).cause)})`);
        assert.match((e as AirlockError).hint ?? '', /partial upload .* is kept/);
        return true;
      },
    );
    const left = await remoteSize(`${small}/.part.airlock.partial`);
    assert.ok(left !== undefined && left < 12 * MiB, `the partial (${left} bytes) is kept`);

    // Space freed: the retry resumes.
    unlinkSync(fill);
    const r = await uploadFile(c, part, { remoteDir: small });
    assert.equal(r.bytesSent, 12 * MiB - r.resumedFrom);
    await assertDelivered(r, `${small}/part.airlock`, partSha, 12 * MiB);
  });

  test('one upload of a file to a host at a time: another waits for it, or is told who holds it', async () => {
    const name = 'twice.airlock';
    const local = join(work, name);
    const sha = await randomFile(local, 16 * MiB);
    const remote = `${INBOX}/locked`;
    await lab.exec(host, ['mkdir', '-p', remote]);
    // Another operator's upload of the same file, from another connection: it holds the host's lock.
    const other = await connect();
    const release = await holdUploadLock(other, { remoteDir: remote, name, host: host.name, who: 'ops@jump2 pid 4242', waitMs: 1000 });
    const c = await connect();
    await assert.rejects(uploadFile(c, local, { remoteDir: remote, lockWaitMs: 1000 }), (e: unknown) => {
      isAirlockError('busy', 'upload-in-progress')(e);
      assert.match((e as AirlockError).message, new RegExp(`another upload of ${name} is in progress \\(ops@jump2 pid 4242\\); waited 1 s`));
      assert.match((e as AirlockError).hint ?? '', /run it again once that upload has ended/);
      return true;
    });
    assert.equal(await remoteSize(`${remote}/.${name}.partial`), undefined, 'the refused upload wrote nothing');
    // With time to wait, it waits for the other to end, then sends.
    const waiting = uploadFile(c, local, { remoteDir: remote, lockWaitMs: 30_000 });
    setTimeout(release, 1500);
    await assertDelivered(await waiting, `${remote}/${name}`, sha, 16 * MiB);
    // The waiter took the lock of a file its holder unlinked on release, noticed, and locked anew;
    // once both ended, the folder holds only the bundle (the host's lock files are gone).
    const folder = join(host.stateDir, 'inbox', 'locked');
    let left: string[] = [];
    for (let i = 0; i < 50; i++) {
      left = (await readdir(folder)).sort();
      if (left.length === 1) break;
      await sleep(100);
    }
    assert.deepEqual(left, [name]);
  });

  test('a lock whose holder went away (its connection dropped) is free at once', async () => {
    const name = 'dropped.airlock';
    const local = join(work, name);
    const sha = await randomFile(local, 8 * MiB);
    const remote = `${INBOX}/dropped`;
    const a = await connect();
    await assert.rejects(
      uploadFile(a, local, {
        remoteDir: remote,
        chunkBytes: 64 * 1024,
        onProgress: (sent) => {
          if (sent > 0) a.destroy();
        },
      }),
      isAirlockError('remote', 'upload-interrupted'),
    );
    const r = await uploadFile(await connect(), local, { remoteDir: remote, lockWaitMs: 5000 });
    await assertDelivered(r, `${remote}/${name}`, sha, 8 * MiB);
  });
});
