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
import type { Client, SFTPWrapper, Stats } from 'ssh2';
import { AirlockError } from '../errors/index.js';
import { shq } from './shell.js';
import { fsync, lstatOrNull, openSftp, removeIfExists, sftpClose, sftpOpen, sftpStat } from './sftp-calls.js';
import { diskFull, isAbort, sftpFailure, type UploadState } from './upload-errors.js';
import { Link } from './upload-link.js';
import { holdUploadLock } from './upload-lock.js';
import { DRAIN_MS, hashRange, pump } from './upload-pump.js';

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
const HEX64 = /^[0-9a-f]{64}$/;

/** One upload under way: what its steps share. */
interface Run {
  fh: FileHandle;
  sf: SFTPWrapper;
  link: Link;
  localPath: string;
  remoteDir: string;
  remotePath: string;
  partialPath: string;
  /** host:remotePath, for messages. */
  subject: string;
  host: string;
  size: number;
  chunk: number;
  signal: AbortSignal | undefined;
  state: UploadState;
  /** Tells the caller how much of the file the host holds. */
  report: (sent: number) => void;
  /** Whether `e` is what onProgress threw: passed on as it is. */
  isCallerError: (e: unknown) => boolean;
}

/** The local file's hash: given, or fed in file order while reading (prefix check, then sending). */
interface LocalHash {
  expected: string | undefined;
  hasher: Hash | undefined;
  /** Bytes already fed into hasher. */
  hashedTo: number;
}

/** Uploads localPath into opts.remoteDir on the host behind client. See the module comment. */
export async function uploadFile(client: Client, localPath: string, opts: UploadOptions): Promise<UploadResult> {
  const { remoteDir, name, given, chunk } = checkOptions(localPath, opts);
  const host = opts.host ?? hostOf(client);
  const remotePath = posix.join(remoteDir, name);
  const partialPath = posix.join(remoteDir, `.${name}.partial`);
  const subject = `${host}:${remotePath}`;
  const { signal, onProgress } = opts;
  signal?.throwIfAborted();
  const fh = await openLocal(localPath);

  const link = new Link(client, host, signal);
  // What this run has done so far, for the messages.
  const state: UploadState = { phase: 'preparing', position: 0, sent: 0, size: 0 };
  let sftp: SFTPWrapper | undefined;
  let releaseLock: (() => void) | undefined;
  /** Something onProgress threw: passed on as it is. */
  let callerError: { e: unknown } | undefined;
  const isCallerError = (e: unknown): boolean => callerError !== undefined && e === callerError.e;
  try {
    const size = await localSize(fh, localPath);
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
    const run: Run = { fh, sf: sftp, link, localPath, remoteDir, remotePath, partialPath, subject, host, size, chunk, signal, state, report, isCallerError };
    const [finalSt, partialSt] = await link.guard(Promise.all([lstatOrNull(sftp, remotePath), lstatOrNull(sftp, partialPath)]));
    refuseNonFiles(run, finalSt, partialSt);
    const local: LocalHash = { expected: given, hasher: given === undefined ? createHash('sha256') : undefined, hashedTo: 0 };

    // 1. Already there?
    if (finalSt?.isFile() && finalSt.size === size) {
      const skipped = await alreadyThere(run, local, partialSt);
      if (skipped) return skipped;
    }
    // 2. Resume a partial when the host's prefix equals ours.
    const offset = await resumePoint(run, local, partialSt);
    state.position = offset;
    // 3. Room for the rest? (A partial that starts again from 0 gives its space back.)
    const reclaim = offset === 0 ? (partialSt?.size ?? 0) : 0;
    const free = await link.freeBytes(sftp, remoteDir);
    if (free !== undefined && free + reclaim < size - offset) {
      throw diskFull(subject, host, remoteDir, size - offset, free, partialPath);
    }
    // 4. Send [offset, size) into the partial.
    await send(run, local, offset);
    const expected = local.expected ?? local.hasher!.digest('hex');
    // 5. Verify on the host, then rename into place.
    await verifyAndRename(run, expected);
    return { remotePath, skipped: false, resumedFrom: offset, bytesSent: state.sent, size, sha256: expected };
  } catch (e) {
    if (isAbort(e, signal) || isCallerError(e)) throw e;
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

/** The options, checked before anything is opened. */
function checkOptions(localPath: string, opts: UploadOptions): { remoteDir: string; name: string; given: string | undefined; chunk: number } {
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
  return { remoteDir, name, given, chunk };
}

async function openLocal(localPath: string): Promise<FileHandle> {
  try {
    return await open(localPath, 'r');
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
}

async function localSize(fh: FileHandle, localPath: string): Promise<number> {
  const st = await fh.stat();
  if (!st.isFile()) {
    throw new AirlockError('usage', `${localPath}: not a regular file`, { reason: 'local-not-a-file', subject: localPath });
  }
  return st.size;
}

/** NAME and its partial must be files (NAME may be a link): anything else is moved away by the operator. */
function refuseNonFiles(r: Run, finalSt: Stats | null, partialSt: Stats | null): void {
  if (finalSt && !finalSt.isFile() && !finalSt.isSymbolicLink()) {
    throw new AirlockError('remote', `${r.subject} exists and is not a regular file; move it away`, {
      reason: 'upload-target-not-file',
      subject: r.subject,
    });
  }
  if (partialSt && !partialSt.isFile()) {
    throw new AirlockError('remote', `${r.host}:${r.partialPath} exists and is not a regular file; move it away`, {
      reason: 'upload-target-not-file',
      subject: `${r.host}:${r.partialPath}`,
    });
  }
}

/** NAME on the host has our size: the result when its sha256 is ours too (nothing to send); else the local hash is known now. */
async function alreadyThere(r: Run, local: LocalHash, partialSt: Stats | null): Promise<UploadResult | undefined> {
  r.state.phase = 'checking the file on the host';
  const localHash = async (): Promise<string> => local.expected ?? (await localSha256(r, r.size));
  const [there, here] = await Promise.all([r.link.sha256(r.remotePath), r.link.guard(localHash())]);
  if (there === here) {
    if (partialSt) await r.link.guard(removeIfExists(r.sf, r.partialPath)).catch(() => undefined);
    r.report(r.size);
    return { remotePath: r.remotePath, skipped: true, resumedFrom: 0, bytesSent: 0, size: r.size, sha256: here };
  }
  local.expected = here; // known now; no need to hash while sending
  return undefined;
}

/** Where sending starts: the size of a partial whose sha256 on the host equals that of the same local prefix, else 0. */
async function resumePoint(r: Run, local: LocalHash, partialSt: Stats | null): Promise<number> {
  if (!partialSt || partialSt.size <= 0 || partialSt.size > r.size) return 0;
  r.state.phase = 'checking the partial upload';
  const n = partialSt.size;
  const localPrefix = async (): Promise<string> => {
    if (local.hasher && local.expected === undefined) {
      await hashRange(r.fh, local.hasher, 0, n, r.signal, r.localPath);
      local.hashedTo = n;
      return local.hasher.copy().digest('hex');
    }
    return localSha256(r, n);
  };
  const [there, here] = await Promise.all([r.link.prefixSha256(r.partialPath, n), r.link.guard(localPrefix())]);
  return there === here ? n : 0;
}

/** The sha256 of the local file's first n bytes, read for it alone. */
async function localSha256(r: Run, n: number): Promise<string> {
  const h = createHash('sha256');
  await hashRange(r.fh, h, 0, n, r.signal, r.localPath);
  return h.digest('hex');
}

/** Sends [offset, size) into the partial and closes it; a failure leaves the partial stable for the next run. */
async function send(r: Run, local: LocalHash, offset: number): Promise<void> {
  const { link, sf, state, partialPath, subject } = r;
  state.phase = 'sending';
  r.report(offset);
  const handle = await link.guard(sftpOpen(sf, partialPath, offset > 0 ? 'r+' : 'w')).catch((e: unknown) => {
    throw link.classify(e, subject, state, () => sftpFailure(e, `open ${partialPath}`));
  });
  let closed = false;
  try {
    await pump({
      fh: r.fh, sftp: sf, handle, link, offset, size: r.size, chunk: r.chunk, signal: r.signal, localPath: r.localPath,
      hash: local.hasher && local.expected === undefined ? { hasher: local.hasher, from: local.hashedTo } : undefined,
      onAck: (n) => {
        state.sent += n;
        state.position += n;
        r.report(state.position);
      },
    });
    await link.guard(fsync(sf, handle));
    closed = true;
    await link.guard(sftpClose(sf, handle));
  } catch (e) {
    // Every write is answered by now (pump drains them), so the partial is stable once closed.
    if (!closed && !link.lost) await link.guardConn(sftpClose(sf, handle), DRAIN_MS).catch(() => undefined);
    if (isAbort(e, r.signal) || r.isCallerError(e)) throw e;
    const remaining = r.size - state.position;
    throw await link.classifyWrite(e, sf, subject, state, r.remoteDir, remaining, partialPath);
  }
}

/** The host's size and sha256 of the partial must be ours; then it becomes NAME. A mismatch deletes the partial. */
async function verifyAndRename(r: Run, expected: string): Promise<void> {
  const { link, sf, partialPath, subject, size, localPath } = r;
  r.state.phase = 'verifying on the host';
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
  r.state.phase = 'renaming into place';
  await link.rename(sf, partialPath, r.remotePath);
}

function hostOf(client: Client): string {
  const config = (client as unknown as { config?: { host?: unknown } }).config;
  return typeof config?.host === 'string' && config.host ? config.host : 'host';
}

/** Who this upload is, for an operator who finds the file locked: `user@host pid N`. */
function uploader(): string {
  return `${userInfo().username}@${hostname()} pid ${process.pid}`;
}
