/**
 * The upload's view of its connection: watches the socket and the SFTP
 * channel so every pending step rejects as soon as either is gone, carries
 * the abort signal, runs the few commands an upload needs on the host
 * (hashes, free space, rename), and turns what is thrown into the error the
 * operator sees.
 */
import type { Client, SFTPWrapper } from 'ssh2';
import { AirlockError } from '../errors/index.js';
import { shq } from './shell.js';
import { execOnHost } from './sftp-calls.js';
import { diskFull, errMessage, interrupted, isConnectionError, SFTP_FAILURE, sftpFailure, type UploadState } from './upload-errors.js';

/**
 * Watches the connection (and the SFTP channel): once it is gone, every
 * pending step rejects at once instead of waiting for a reply that will never
 * come. Also carries the abort signal.
 */
export class Link {
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
