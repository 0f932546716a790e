/**
 * Resumable, verified upload of one local file (a bundle or a bundle part,
 * possibly many GB) into a host's inbox over one ssh2 connection.
 *
 *   const r = await uploadFile(client, 'app-1.0.0.airlock', { remoteDir: '/var/lib/airlock/inbox' });
 *
 * - The host already has NAME with the same size and sha256 (computed on the
 *   host with `sha256sum`): nothing is sent (`skipped`).
 * - Otherwise the bytes go into `DIR/.NAME.partial`. A partial left by a
 *   broken run is resumed at its size, but only when the host's hash of it
 *   equals the hash of the same local prefix; else it starts again from 0.
 * - When every byte is there, the host's size and sha256 of the partial must
 *   equal the local ones. Only then is it renamed to NAME (atomically, over
 *   an older NAME), so NAME appears only whole and verified. A mismatch
 *   deletes the partial and throws an `integrity` error.
 * - A dropped connection throws `remote` / `upload-interrupted` and leaves
 *   the partial for the next run; a full disk throws `resources` /
 *   `remote-disk-full`.
 *
 * Memory stays flat: at most `window` bytes of writes are in flight, and the
 * local file is read (and hashed) once, in order, while it is sent.
 * See docs/upload.md.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { basename, posix } from 'node:path';
import { hostname, userInfo } from 'node:os';
import type { Client, ClientChannel, SFTPWrapper, Stats } from 'ssh2';
import { AirlockError } from '../errors/index.js';
import { shq } from './shell.js';
import { holdUploadLock } from './upload-lock.js';

export { shq };

export interface UploadOptions {
  /** The host's inbox, e.g. /var/lib/airlock/inbox (created with mkdir -p if missing). */
  remoteDir: string;
  /** Name on the host (default basename(localPath)); a plain file name, no `/`. */
  remoteName?: string;
  /** The local file's hex sha256 if the caller has it (else computed while reading, streaming). */
  sha256?: string;
  signal?: AbortSignal;
  /**
   * Called as bytes are acknowledged by the host. `sent` is how much of the
   * file the host holds (a resumed upload starts at its resume point), so
   * `sent / total` is the fraction done. Called once at the start too.
   */
  onProgress?: (sent: number, total: number) => void;
  /** Bytes per SFTP write request (default 128 KiB; 4 KiB..4 MiB). */
  chunkBytes?: number;
  /** The host's name in messages and error subjects (default: the address the client connected to). */
  host?: string;
  /** How long to wait for another upload of the same file to the same host (default 60 s; src/remote/upload-lock.ts). */
  lockWaitMs?: number;
}

export interface UploadResult {
  /** remoteDir/remoteName on the host. */
  remotePath: string;
  /** The host already had it, same size and sha256: nothing was sent. */
  skipped: boolean;
  /** Offset this run started at (the size of a verified partial), 0 for a fresh upload. */
  resumedFrom: number;
  /** Bytes written to the host by this run (size - resumedFrom, or 0 when skipped). */
  bytesSent: number;
  size: number;
  /** Lower-case hex sha256 of the file, equal on both ends. */
  sha256: string;
}

const DEFAULT_CHUNK = 128 * 1024;
/** Bytes of SFTP writes in flight (each holds its buffer until the host acknowledges it). */
const WINDOW = 4 * 1024 * 1024;
const READ_BUF = 1024 * 1024;
/** How long a failed or aborted upload waits for the writes in flight to be answered. */
const DRAIN_MS = 30_000;
const SFTP_FAILURE = 4;
const SFTP_PERMISSION_DENIED = 3;
const SFTP_NO_CONNECTION = 6;
const SFTP_CONNECTION_LOST = 7;
const HEX64 = /^[0-9a-f]{64}$/;

/** Uploads localPath into opts.remoteDir on the host behind client. See the module comment. */
export async function uploadFile(client: Client, localPath: string, opts: UploadOptions): Promise<UploadResult> {
  const remoteDir = opts.remoteDir;
  if (!remoteDir || remoteDir.includes('\0')) {
    throw new AirlockError('usage', `upload: remoteDir must be a path on the host, got ${JSON.stringify(remoteDir)}`, {
      reason: 'bad-remote-dir',
    });
  }
  const name = opts.remoteName ?? basename(localPath);
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new AirlockError('usage', `upload: the remote name must be a plain file name, got ${JSON.stringify(name)}`, {
      reason: 'bad-remote-name',
    });
  }
  const given = opts.sha256?.toLowerCase();
  if (given !== undefined && !HEX64.test(given)) {
    throw new AirlockError('usage', `upload: sha256 must be 64 hex digits, got ${JSON.stringify(opts.sha256)}`, {
      reason: 'bad-sha256',
    });
  }
  const chunk = opts.chunkBytes ?? DEFAULT_CHUNK;
  if (!Number.isInteger(chunk) || chunk < 4096 || chunk > 4 * 1024 * 1024) {
    throw new AirlockError('usage', `upload: chunkBytes must be an integer from 4096 to 4194304, got ${chunk}`, {
      reason: 'bad-chunk-size',
    });
  }
  const host = opts.host ?? hostOf(client);
  const remotePath = posix.join(remoteDir, name);
  const partialPath = posix.join(remoteDir, `.${name}.partial`);
  const subject = `${host}:${remotePath}`;
  const { signal, onProgress } = opts;
  signal?.throwIfAborted();

  let fh: FileHandle;
  try {
    fh = await open(localPath, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new AirlockError('notFound', `${localPath}: no such file`, { reason: 'local-file-missing', subject: localPath, cause: e });
    }
    throw new AirlockError('resources', `${localPath}: cannot open it: ${(e as Error).message}`, {
      reason: 'local-file-unreadable',
      subject: localPath,
      cause: e,
    });
  }

  const link = new Link(client, host, signal);
  // What this run has done so far, for the messages.
  const state = { phase: 'preparing', position: 0, sent: 0, size: 0 };
  let sftp: SFTPWrapper | undefined;
  let releaseLock: (() => void) | undefined;
  /** Something onProgress threw: passed on as it is. */
  let callerError: { e: unknown } | undefined;
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      throw new AirlockError('usage', `${localPath}: not a regular file`, { reason: 'local-not-a-file', subject: localPath });
    }
    const size = st.size;
    state.size = size;
    const report = (sent: number): void => {
      try {
        onProgress?.(sent, size);
      } catch (e) {
        callerError = { e };
        throw e;
      }
    };

    await link.run(`mkdir -p -- ${shq(remoteDir)}`, `create ${remoteDir}`);
    // One upload of this file to this host at a time: everything below reads and writes the partial.
    state.phase = 'waiting for another upload of the same file';
    releaseLock = await link.guard(holdUploadLock(client, { remoteDir, name, host, who: uploader(), waitMs: opts.lockWaitMs ?? 60_000 }));
    state.phase = 'preparing';
    sftp = await link.guard(openSftp(client));
    link.watch(sftp);
    const sf = sftp;
    const [finalSt, partialSt] = await link.guard(Promise.all([lstatOrNull(sf, remotePath), lstatOrNull(sf, partialPath)]));

    if (finalSt && !finalSt.isFile() && !finalSt.isSymbolicLink()) {
      throw new AirlockError('remote', `${subject} exists and is not a regular file; move it away`, {
        reason: 'upload-target-not-file',
        subject,
      });
    }
    if (partialSt && !partialSt.isFile()) {
      throw new AirlockError('remote', `${host}:${partialPath} exists and is not a regular file; move it away`, {
        reason: 'upload-target-not-file',
        subject: `${host}:${partialPath}`,
      });
    }

    // The local hash: given, or fed in file order while reading (prefix check, then sending).
    let expected = given;
    const hasher: Hash | undefined = expected === undefined ? createHash('sha256') : undefined;
    let hashedTo = 0;

    // 1. Already there?
    if (finalSt?.isFile() && finalSt.size === size) {
      state.phase = 'checking the file on the host';
      const localHash = async (): Promise<string> => {
        if (expected !== undefined) return expected;
        const h = createHash('sha256');
        await hashRange(fh, h, 0, size, signal, localPath);
        return h.digest('hex');
      };
      const [there, here] = await Promise.all([link.sha256(remotePath), link.guard(localHash())]);
      if (there === here) {
        if (partialSt) await link.guard(removeIfExists(sf, partialPath)).catch(() => undefined);
        report(size);
        return { remotePath, skipped: true, resumedFrom: 0, bytesSent: 0, size, sha256: here };
      }
      expected = here; // known now; no need to hash while sending
    }

    // 2. Resume a partial when the host's prefix equals ours.
    let offset = 0;
    if (partialSt && partialSt.size > 0 && partialSt.size <= size) {
      state.phase = 'checking the partial upload';
      const n = partialSt.size;
      const localPrefix = async (): Promise<string> => {
        if (hasher && expected === undefined) {
          await hashRange(fh, hasher, 0, n, signal, localPath);
          hashedTo = n;
          return hasher.copy().digest('hex');
        }
        const h = createHash('sha256');
        await hashRange(fh, h, 0, n, signal, localPath);
        return h.digest('hex');
      };
      const [there, here] = await Promise.all([link.prefixSha256(partialPath, n), link.guard(localPrefix())]);
      if (there === here) offset = n;
    }
    state.position = offset;

    // 3. Room for the rest? (A partial that starts again from 0 gives its space back.)
    const reclaim = offset === 0 ? (partialSt?.size ?? 0) : 0;
    const free = await link.freeBytes(sf, remoteDir);
    if (free !== undefined && free + reclaim < size - offset) {
      throw diskFull(subject, host, remoteDir, size - offset, free, partialPath);
    }

    // 4. Send [offset, size) into the partial.
    state.phase = 'sending';
    report(offset);
    const handle = await link.guard(sftpOpen(sf, partialPath, offset > 0 ? 'r+' : 'w')).catch((e: unknown) => {
      throw link.classify(e, subject, state, () => sftpFailure(e, `open ${partialPath}`));
    });
    let closed = false;
    try {
      await pump({
        fh, sftp: sf, handle, link, offset, size, chunk, signal, localPath,
        hash: hasher && expected === undefined ? { hasher, from: hashedTo } : undefined,
        onAck: (n) => {
          state.sent += n;
          state.position += n;
          report(state.position);
        },
      });
      await link.guard(fsync(sf, handle));
      closed = true;
      await link.guard(sftpClose(sf, handle));
    } catch (e) {
      // Every write is answered by now (pump drains them), so the partial is stable once closed.
      if (!closed && !link.lost) await link.guardConn(sftpClose(sf, handle), DRAIN_MS).catch(() => undefined);
      if (isAbort(e, signal) || (callerError && e === callerError.e)) throw e;
      const remaining = size - state.position;
      throw await link.classifyWrite(e, sf, subject, state, remoteDir, remaining, partialPath);
    }
    if (expected === undefined) expected = hasher!.digest('hex');

    // 5. Verify on the host, then rename into place.
    state.phase = 'verifying on the host';
    const got = await link.guard(sftpStat(sf, partialPath));
    if (got.size !== size) {
      await link.guard(removeIfExists(sf, partialPath)).catch(() => undefined);
      throw new AirlockError(
        'integrity',
        `${subject}: the upload has ${got.size} bytes on the host but ${localPath} has ${size} (sha256 ${expected}); the partial upload was deleted`,
        { reason: 'upload-mismatch', subject, hint: 'run it again; if it fails again, check whether the local file is being changed' },
      );
    }
    const there = await link.sha256(partialPath);
    if (there !== expected) {
      await link.guard(removeIfExists(sf, partialPath)).catch(() => undefined);
      throw new AirlockError(
        'integrity',
        `${subject}: sha256 on the host is ${there} but ${localPath} has ${expected}; the partial upload was deleted`,
        {
          reason: 'upload-mismatch',
          subject,
          hint: 'run it again; if it fails again, check the host (disk, memory) and whether the local file is being changed',
        },
      );
    }
    state.phase = 'renaming into place';
    await link.rename(sf, partialPath, remotePath);
    return { remotePath, skipped: false, resumedFrom: offset, bytesSent: state.sent, size, sha256: expected };
  } catch (e) {
    if (isAbort(e, signal) || (callerError && e === callerError.e)) throw e;
    throw link.classify(e, subject, state);
  } finally {
    releaseLock?.();
    if (sftp && !link.lost) {
      try {
        sftp.end();
      } catch {
        // already closed
      }
    }
    link.dispose();
    await fh.close().catch(() => undefined);
  }
}

// ------------------------------------------------------------------ the wire

interface PumpArgs {
  fh: FileHandle;
  sftp: SFTPWrapper;
  handle: Buffer;
  link: Link;
  offset: number;
  size: number;
  chunk: number;
  signal: AbortSignal | undefined;
  localPath: string;
  /** Feed the bytes from `from` on into hasher (bytes before it are in it already). */
  hash: { hasher: Hash; from: number } | undefined;
  onAck: (bytes: number) => void;
}

/**
 * Pipelined SFTP writes of [offset, size): reads in order, at most WINDOW
 * bytes unacknowledged. On an error or an abort it stops sending and waits
 * (up to DRAIN_MS) for the writes in flight to be answered, so the partial on
 * the host no longer changes once it returns.
 */
async function pump(a: PumpArgs): Promise<void> {
  const maxInFlight = Math.max(1, Math.floor(WINDOW / a.chunk));
  let inFlight = 0;
  let failed: unknown;
  let wake: (() => void) | undefined;
  const settle = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const slot = (): Promise<void> => new Promise<void>((r) => (wake = r));
  const onAbort = (): void => {
    failed ??= a.signal?.reason;
    settle();
  };
  if (a.signal?.aborted) throw a.signal.reason;
  a.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    let pos = a.offset;
    while (pos < a.size && failed === undefined) {
      while (inFlight >= maxInFlight && failed === undefined) await a.link.guardConn(slot());
      if (failed !== undefined) break;
      const len = Math.min(a.chunk, a.size - pos);
      const buf = Buffer.allocUnsafe(len);
      await readExactly(a.fh, buf, pos, a.localPath);
      if (failed !== undefined) break;
      if (a.hash && pos + len > a.hash.from) a.hash.hasher.update(buf.subarray(Math.max(0, a.hash.from - pos)));
      a.link.check();
      inFlight++;
      try {
        a.sftp.write(a.handle, buf, 0, len, pos, (err?: Error | null) => {
          inFlight--;
          if (err) {
            failed ??= err;
          } else {
            try {
              a.onAck(len);
            } catch (e) {
              failed ??= e;
            }
          }
          settle();
        });
      } catch (e) {
        inFlight--;
        failed ??= e;
      }
      pos += len;
    }
    const deadline = Date.now() + DRAIN_MS;
    while (inFlight > 0) {
      if (failed === undefined) await a.link.guardConn(slot());
      else if (!(await a.link.guardConn(slot(), deadline - Date.now()).then(() => true, (e: unknown) => (a.link.lost ? Promise.reject(e) : false)))) break;
    }
  } catch (e) {
    // The connection is gone; an abort that came first is what the caller asked for.
    if (a.signal?.aborted && failed === a.signal.reason) throw failed;
    throw e;
  } finally {
    a.signal?.removeEventListener('abort', onAbort);
  }
  if (failed !== undefined) throw failed;
}

async function readExactly(fh: FileHandle, buf: Buffer, position: number, localPath: string): Promise<void> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
    if (bytesRead === 0) {
      throw new AirlockError('integrity', `${localPath} got shorter while it was being uploaded (nothing at byte ${position + got})`, {
        reason: 'local-file-changed',
        subject: localPath,
        hint: 'upload a file that nothing writes to any more',
      });
    }
    got += bytesRead;
  }
}

async function hashRange(fh: FileHandle, h: Hash, from: number, to: number, signal: AbortSignal | undefined, localPath: string): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(READ_BUF, Math.max(1, to - from)));
  for (let pos = from; pos < to; ) {
    signal?.throwIfAborted();
    const len = Math.min(buf.length, to - pos);
    const view = buf.subarray(0, len);
    await readExactly(fh, view, pos, localPath);
    h.update(view);
    pos += len;
  }
}

// ------------------------------------------------------------------ the connection

/**
 * Watches the connection (and the SFTP channel): once it is gone, every
 * pending step rejects at once instead of waiting for a reply that will never
 * come. Also carries the abort signal.
 */
class Link {
  lost: string | undefined;
  /** The socket ended or failed, and has not closed yet. */
  private clientDying = false;
  private readonly lostPromise: Promise<never>;
  private rejectLost!: (e: Error) => void;
  private readonly abortPromise: Promise<never>;
  private rejectAbort!: (e: unknown) => void;
  private readonly offs: (() => void)[] = [];

  constructor(
    private readonly client: Client,
    readonly host: string,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.lostPromise = new Promise<never>((_, reject) => (this.rejectLost = reject));
    this.lostPromise.catch(() => undefined);
    this.abortPromise = new Promise<never>((_, reject) => (this.rejectAbort = reject));
    this.abortPromise.catch(() => undefined);
    this.on(client, 'close', () => {
      this.clientDying = false;
      this.drop('the connection closed');
    });
    this.on(client, 'end', () => {
      this.clientDying = true;
      this.drop('the connection ended');
    });
    this.on(client, 'error', (e: Error) => {
      this.clientDying = true;
      this.drop(`connection error: ${e.message}`);
    });
    if (signal) {
      const onAbort = (): void => this.rejectAbort(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      this.offs.push(() => signal.removeEventListener('abort', onAbort));
    }
  }

  watch(sftp: SFTPWrapper): void {
    this.on(sftp, 'close', () => this.drop('the SFTP channel closed'));
    this.on(sftp, 'end', () => this.drop('the SFTP channel ended'));
    this.on(sftp, 'error', (e: Error) => this.drop(`SFTP error: ${e.message}`));
  }

  private on(em: NodeJS.EventEmitter, ev: string, fn: (...args: never[]) => void): void {
    em.on(ev, fn as (...args: unknown[]) => void);
    this.offs.push(() => em.off(ev, fn as (...args: unknown[]) => void));
  }

  private drop(why: string): void {
    if (this.lost !== undefined) return;
    this.lost = why;
    this.rejectLost(new Error(`${this.host}: ${why}`));
  }

  /** Throws if the connection is gone. */
  check(): void {
    if (this.lost !== undefined) throw new Error(`${this.host}: ${this.lost}`);
  }

  /** p, or a rejection as soon as the connection is lost or the signal aborts. */
  guard<T>(p: Promise<T>): Promise<T> {
    p.catch(() => undefined);
    if (this.signal?.aborted) return Promise.reject(this.signal.reason);
    return Promise.race([p, this.lostPromise, this.abortPromise]);
  }

  /** p, or a rejection as soon as the connection is lost (or after ms, if given); ignores the signal. */
  guardConn<T>(p: Promise<T>, ms?: number): Promise<T> {
    p.catch(() => undefined);
    if (ms === undefined) return Promise.race([p, this.lostPromise]);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.host}: no answer within ${Math.round(ms / 1000)} s`)), Math.max(0, ms));
    });
    return Promise.race([p, this.lostPromise, late]).finally(() => clearTimeout(timer));
  }

  dispose(): void {
    for (const off of this.offs.splice(0)) off();
    if (this.clientDying) {
      // A dead socket may still report an error after we return; do not let
      // it become an uncaught exception of a client that has no listener.
      const noop = (): void => undefined;
      this.client.on('error', noop);
      this.client.once('close', () => this.client.off('error', noop));
    }
  }

  /** Runs a shell command on the host; stdout on exit 0, else a `remote` error. */
  async run(cmd: string, what: string): Promise<string> {
    this.check();
    this.signal?.throwIfAborted();
    const r = await this.guard(execOnHost(this.client, cmd));
    if (r.code !== 0) {
      const why = r.stderr.trim() || (r.signal ? `killed by ${r.signal}` : `exit ${r.code ?? '?'}`);
      throw new AirlockError('remote', `${this.host}: cannot ${what}: ${why}`, {
        reason: /permission denied|read-only/i.test(why) ? 'remote-permission-denied' : 'remote-command-failed',
        subject: `${this.host}: ${cmd}`,
        hint: 'check that the SSH user may write there and that the host has coreutils (or busybox) and a POSIX shell',
      });
    }
    return r.stdout;
  }

  /** sha256 of a file, computed on the host. */
  async sha256(path: string): Promise<string> {
    return parseSha(await this.run(`sha256sum -- ${shq(path)}`, `hash ${path}`), this.host, path);
  }

  /** sha256 of the first n bytes of a file, computed on the host. */
  async prefixSha256(path: string, n: number): Promise<string> {
    // If head fails (the partial vanished), sha256sum hashes less: a mismatch, so it starts again from 0.
    return parseSha(await this.run(`head -c ${n} -- ${shq(path)} | sha256sum`, `hash the start of ${path}`), this.host, path);
  }

  /** Free bytes for the SSH user under dir (statvfs@openssh.com, else df), or undefined if unknown. */
  async freeBytes(sftp: SFTPWrapper, dir: string): Promise<number | undefined> {
    const viaStatvfs = await this.guard(
      new Promise<number | undefined>((resolve) => {
        try {
          sftp.ext_openssh_statvfs(dir, (err, fs: { f_bavail?: number | bigint; f_frsize?: number | bigint } | undefined) => {
            if (err || !fs || fs.f_bavail === undefined || fs.f_frsize === undefined) resolve(undefined);
            else resolve(Number(fs.f_bavail) * Number(fs.f_frsize));
          });
        } catch {
          resolve(undefined); // the server lacks the extension
        }
      }),
    );
    if (viaStatvfs !== undefined) return viaStatvfs;
    try {
      const out = await this.run(`df -Pk -- ${shq(dir)}`, `check free space in ${dir}`);
      const kb = Number(out.trim().split('\n').pop()?.trim().split(/\s+/)[3]);
      return Number.isFinite(kb) ? kb * 1024 : undefined;
    } catch (e) {
      if (this.lost !== undefined) throw e;
      return undefined;
    }
  }

  /** Renames from → to, replacing `to` atomically if it exists. */
  async rename(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
    const posixRename = (): Promise<void> | undefined => {
      try {
        return new Promise<void>((resolve, reject) => sftp.ext_openssh_rename(from, to, (err) => (err ? reject(err) : resolve())));
      } catch {
        return undefined; // the server lacks posix-rename@openssh.com
      }
    };
    const p = posixRename();
    if (p) {
      await this.guard(p);
      return;
    }
    try {
      await this.guard(new Promise<void>((resolve, reject) => sftp.rename(from, to, (err) => (err ? reject(err) : resolve()))));
    } catch (e) {
      if (this.lost !== undefined) throw e;
      // Plain SFTP rename refuses an existing target; mv is rename(2), atomic too.
      await this.run(`mv -f -- ${shq(from)} ${shq(to)}`, `rename ${from} to ${to}`);
    }
  }

  /** Turns anything thrown into the AirlockError the operator sees. */
  classify(e: unknown, subject: string, state: UploadState, other?: () => AirlockError): AirlockError {
    if (e instanceof AirlockError && (e.kind !== 'remote' || this.lost === undefined)) return e;
    if (this.lost !== undefined || isConnectionError(e)) return interrupted(this.host, subject, state, this.lost ?? errMessage(e), e);
    return other?.() ?? sftpFailure(e, `upload to ${subject}`);
  }

  /** classify() for a failed write: a full disk is told apart from other failures by asking the host. */
  async classifyWrite(
    e: unknown,
    sftp: SFTPWrapper,
    subject: string,
    state: UploadState,
    dir: string,
    remaining: number,
    partialPath: string,
  ): Promise<AirlockError> {
    if (this.lost !== undefined || isConnectionError(e) || e instanceof AirlockError) return this.classify(e, subject, state);
    const code = (e as { code?: unknown }).code;
    const msg = errMessage(e);
    if (code === SFTP_FAILURE || code === 'ENOSPC' || /no space|ENOSPC|quota/i.test(msg)) {
      const free = await this.freeBytes(sftp, dir).catch(() => undefined);
      if (/no space|ENOSPC|quota/i.test(msg) || (free !== undefined && free < remaining)) {
        return diskFull(subject, this.host, dir, remaining, free, partialPath, e);
      }
    }
    if (this.lost !== undefined) return this.classify(e, subject, state);
    return new AirlockError('remote', `${subject}: writing the upload failed after ${state.position} of ${state.size} bytes: ${msg}`, {
      reason: 'upload-failed',
      subject,
      hint: 'run it again: the upload resumes',
      cause: e,
    });
  }
}

interface UploadState {
  phase: string;
  position: number;
  sent: number;
  size: number;
}

function interrupted(host: string, subject: string, s: UploadState, why: string, cause: unknown): AirlockError {
  const where =
    s.phase === 'sending'
      ? `after ${s.position} of ${s.size} bytes (${s.sent} sent in this run)`
      : `while ${s.phase} (${s.position} of ${s.size} bytes on the host, ${s.sent} sent in this run)`;
  return new AirlockError('remote', `${subject}: upload interrupted ${where}: ${why.startsWith(host) ? why.slice(host.length + 2) : why}`, {
    reason: 'upload-interrupted',
    subject,
    hint: 'run it again: the upload resumes',
    cause,
  });
}

function diskFull(subject: string, host: string, dir: string, need: number, free: number | undefined, partialPath: string, cause?: unknown): AirlockError {
  const left = free === undefined ? '' : ` (${free} bytes free)`;
  return new AirlockError('resources', `${subject}: the disk of ${host} under ${dir} is full${left}: ${need} more bytes are needed`, {
    reason: 'remote-disk-full',
    subject,
    hint: `free at least ${need} bytes under ${dir} on ${host} and run it again; the partial upload ${partialPath} is kept and resumes`,
    ...(cause === undefined ? {} : { cause }),
  });
}

function sftpFailure(e: unknown, what: string): AirlockError {
  const code = (e as { code?: unknown }).code;
  return new AirlockError('remote', `${what} failed: ${errMessage(e)}`, {
    reason: code === SFTP_PERMISSION_DENIED ? 'remote-permission-denied' : 'upload-failed',
    cause: e,
  });
}

function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (code === SFTP_NO_CONNECTION || code === SFTP_CONNECTION_LOST) return true;
  if (typeof code === 'string' && ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH'].includes(code)) return true;
  return /^(No response from server|Not connected)$/.test(errMessage(e));
}

function isAbort(e: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true && (e === signal.reason || (e as { name?: unknown })?.name === 'AbortError');
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function hostOf(client: Client): string {
  const config = (client as unknown as { config?: { host?: unknown } }).config;
  return typeof config?.host === 'string' && config.host ? config.host : 'host';
}

/** Who this upload is, for an operator who finds the file locked: `user@host pid N`. */
function uploader(): string {
  return `${userInfo().username}@${hostname()} pid ${process.pid}`;
}

function parseSha(out: string, host: string, path: string): string {
  // GNU sha256sum prefixes the line with a backslash when the name needs escaping.
  const m = /^\\?([0-9a-fA-F]{64})(\s|$)/.exec(out.trim());
  if (!m?.[1]) {
    throw new AirlockError('remote', `${host}: sha256sum of ${path} printed ${JSON.stringify(out.slice(0, 200))}`, {
      reason: 'remote-command-failed',
      subject: `${host}:${path}`,
    });
  }
  return m[1].toLowerCase();
}

interface ExecOutcome {
  code: number | null;
  signal: string | undefined;
  stdout: string;
  stderr: string;
}

const MAX_OUTPUT = 64 * 1024;

function execOnHost(client: Client, cmd: string): Promise<ExecOutcome> {
  return new Promise((resolve, reject) => {
    const onChannel = (err: Error | undefined, ch: ClientChannel): void => {
      if (err) {
        reject(err);
        return;
      }
      const out: Buffer[] = [];
      const errs: Buffer[] = [];
      let outLen = 0;
      let errLen = 0;
      let code: number | null = null;
      let sig: string | undefined;
      ch.on('data', (b: Buffer) => {
        if (outLen < MAX_OUTPUT) out.push(b);
        outLen += b.length;
      });
      ch.stderr.on('data', (b: Buffer) => {
        if (errLen < MAX_OUTPUT) errs.push(b);
        errLen += b.length;
      });
      ch.on('exit', (c: number | null, s?: string) => {
        code = c;
        sig = s ?? undefined;
      });
      ch.on('close', () => {
        resolve({ code, signal: sig, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errs).toString('utf8') });
      });
      ch.on('error', reject);
      ch.end();
    };
    try {
      client.exec(cmd, onChannel);
    } catch (e) {
      reject(e);
    }
  });
}

function openSftp(client: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => {
    try {
      client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp)));
    } catch (e) {
      reject(e);
    }
  });
}

function lstatOrNull(sftp: SFTPWrapper, path: string): Promise<Stats | null> {
  return new Promise((resolve, reject) => {
    sftp.lstat(path, (err, st) => {
      if (!err) resolve(st);
      else if ((err as { code?: unknown }).code === 2) resolve(null); // NO_SUCH_FILE
      else reject(err);
    });
  });
}

function sftpStat(sftp: SFTPWrapper, path: string): Promise<Stats> {
  return new Promise((resolve, reject) => sftp.stat(path, (err, st) => (err ? reject(err) : resolve(st))));
}

function sftpOpen(sftp: SFTPWrapper, path: string, flags: 'w' | 'r+'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    try {
      sftp.open(path, flags, { mode: 0o644 }, (err, handle) => (err ? reject(err) : resolve(handle)));
    } catch (e) {
      reject(e);
    }
  });
}

function sftpClose(sftp: SFTPWrapper, handle: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      sftp.close(handle, (err) => (err ? reject(err) : resolve()));
    } catch (e) {
      reject(e);
    }
  });
}

/** fsync@openssh.com, so the bytes are on disk before the name appears; skipped if the server lacks it. */
function fsync(sftp: SFTPWrapper, handle: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      sftp.ext_openssh_fsync(handle, (err) => (err ? reject(err) : resolve()));
    } catch {
      resolve();
    }
  });
}

function removeIfExists(sftp: SFTPWrapper, path: string): Promise<void> {
  return new Promise((resolve, reject) =>
    sftp.unlink(path, (err) => (!err || (err as { code?: unknown }).code === 2 ? resolve() : reject(err))),
  );
}
