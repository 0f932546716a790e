/**
 * The FTP source's transfers of one file: a download into the spool
 * (resumed at the fsynced length of a partial, never past the listed size,
 * stopped at its deadline, handed to ready/ when complete), and a re-check's
 * fetch into a hash only.
 */
import { constants as fsc, type Stats } from 'node:fs';
import { open, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { Client } from 'basic-ftp';
import { AirlockError, resourceError } from '../../errors/index.js';
import { FREE_SPACE_MARGIN } from '../../store/content-store.js';
import { syncDir } from '../../store/durable.js';
import type { Logger } from '../log.js';
import { closeAfter, type FtpConnection, type WarnOnce } from './ftp-connection.js';
import {
  BeyondListed,
  errnoCode,
  HashSink,
  Interrupted,
  partialMetaPath,
  partialPath,
  sameId,
  sha256OfFile,
  SpoolWriter,
  writeJsonAtomic,
  type PartialMeta,
  type RemoteFile,
  type RemoteId,
  type WaitingMeta,
} from './ftp-spool.js';

/** What a transfer shares with its source: the spool, the log, the deadlines, and what the source remembers between polls. */
export interface TransferContext {
  /** The source's name, for errors. */
  readonly source: string;
  readonly spoolDir: string;
  readonly readyDir: string;
  readonly metaDir: string;
  readonly log: Logger;
  readonly minRate: number;
  readonly connection: FtpConnection;
  readonly warnOnce: WarnOnce;
  /** 'stable' mode: what each candidate looked like at the last polls, and for how many in a row. */
  readonly seen: Map<string, RemoteId & { count: number }>;
  /** Files whose server sent more than it listed, as listed then: not fetched again until the listing changes. */
  readonly overSent: Map<string, RemoteId>;
  /** Files stopped at their deadline: fetched after the others at the next poll. */
  readonly slow: Set<string>;
}

/** How a transfer into the spool ended, before its outcome is judged. */
interface Transferred {
  path: string;
  metaPath: string;
  meta: PartialMeta;
  startAt: number;
  got: number;
  deadlineMs: number;
  tooSlow: boolean;
  failure: unknown;
  writerFailure: Error | undefined;
}

/**
 * Downloads `f` into NAME.download (resuming `prior` when it is this very
 * upload), and hands it to ready/ once it has the listed size. Throws
 * Interrupted when the partial stays for the next poll.
 */
export async function download(ctx: TransferContext, client: Client, f: RemoteFile, prior: PartialMeta | undefined, signal?: AbortSignal): Promise<void> {
  const path = partialPath(ctx.spoolDir, f.name);
  const metaPath = partialMetaPath(ctx.spoolDir, f.name);
  const id: RemoteId = { size: f.size, ...(f.modify === undefined ? {} : { modify: f.modify }) };
  const local = await stat(path).catch(() => undefined);
  const startAt = resumeOffset(ctx, f, prior, local);
  if (!(await roomFor(ctx, f, startAt, local))) return;
  const meta: PartialMeta = { name: f.name, ...id, synced: startAt };
  if (startAt === 0 || !prior) await writeJsonAtomic(metaPath, meta);

  const fh = await open(path, startAt > 0 ? fsc.O_RDWR : fsc.O_RDWR | fsc.O_CREAT | fsc.O_TRUNC, 0o640);
  let closed = false;
  try {
    if (startAt > 0) await fh.truncate(startAt); // bytes past the last fsync are not trusted
    const writer = new SpoolWriter(fh, startAt, f.size, (synced) => writeJsonAtomic(metaPath, { ...meta, synced }));
    const need = f.size - startAt;
    ctx.log.info(startAt > 0 ? 'download resumed' : 'download started', {
      name: f.name,
      bytes: need,
      ...(startAt > 0 ? { offset: startAt } : {}),
      size: f.size,
    });
    const deadlineMs = ctx.connection.deadlineMs(need);
    const { failure, tooSlow } = await transfer(client, writer, f, startAt, deadlineMs);
    await writer.idle();
    await fh.sync();
    if (writer.failure instanceof BeyondListed) {
      client.close(); // the server would go on sending
      await fh.close();
      closed = true;
      return await refuseOverSent(ctx, f, id, path, metaPath, writer.failure);
    }
    const got = writer.pos;
    if (tooSlow || failure !== undefined || writer.failure || got < f.size) {
      return await keepPartial(ctx, f, { path, metaPath, meta, startAt, got, deadlineMs, tooSlow, failure, writerFailure: writer.failure }, signal);
    }
    await fh.close();
    closed = true;
    await handOver(ctx, f, id, path, metaPath);
    ctx.log.info('download finished', { name: f.name, bytes: got - startAt, size: f.size });
    signal?.throwIfAborted();
  } finally {
    if (!closed) await fh.close().catch(() => undefined);
  }
}

/** Where a download starts: the fsynced length of a partial of this very upload, else 0. */
function resumeOffset(ctx: TransferContext, f: RemoteFile, prior: PartialMeta | undefined, local: Stats | undefined): number {
  if (prior && local && sameId(prior, f) && prior.modify === f.modify) {
    return local.size > f.size ? 0 : Math.min(local.size, prior.synced);
  }
  if (local) {
    ctx.log.info('restarting a partial download', {
      name: f.name,
      bytes: local.size,
      reason: prior ? 'the remote file changed since it started' : 'no record of what it belongs to',
    });
  }
  return 0;
}

/** The listed size is all the room the server gets, and only while the journal and the import keep theirs. */
async function roomFor(ctx: TransferContext, f: RemoteFile, startAt: number, local: Stats | undefined): Promise<boolean> {
  const need = f.size - startAt;
  const reclaimed = (local?.size ?? 0) - startAt;
  const fs = await statfs(ctx.spoolDir);
  const free = Number(fs.bavail) * Number(fs.bsize) + reclaimed;
  if (free - need >= FREE_SPACE_MARGIN) return true;
  ctx.warnOnce(`space:${f.name}:${f.size}`, 'not enough free disk in the spool folder; skipping the file for now', {
    name: f.name,
    bytes: need,
    free,
    spare: FREE_SPACE_MARGIN,
    spool: ctx.spoolDir,
  });
  return false;
}

/** Streams the rest of `f` into `writer`, closing the connection at the deadline. */
async function transfer(client: Client, writer: SpoolWriter, f: RemoteFile, startAt: number, deadlineMs: number): Promise<{ failure: unknown; tooSlow: boolean }> {
  if (f.size - startAt <= 0) {
    writer.end();
    return { failure: undefined, tooSlow: false };
  }
  return downloadWithin(client, writer, f.name, startAt, deadlineMs);
}

/** Downloads `name` from `startAt` into `dest`, closing the connection at the deadline; what failed, and whether the deadline passed. */
async function downloadWithin(client: Client, dest: Writable, name: string, startAt: number, deadlineMs: number): Promise<{ failure: unknown; tooSlow: boolean }> {
  let failure: unknown;
  const deadline = closeAfter(client, deadlineMs);
  try {
    await client.downloadTo(dest, name, startAt);
  } catch (e) {
    failure = e;
  } finally {
    deadline.clear();
  }
  return { failure, tooSlow: deadline.passed };
}

/** The server sent more than it listed: the partial goes, and the file is refused until its listing changes. */
async function refuseOverSent(ctx: TransferContext, f: RemoteFile, id: RemoteId, path: string, metaPath: string, over: BeyondListed): Promise<never> {
  await rm(path, { force: true });
  await rm(metaPath, { force: true });
  await syncDir(ctx.spoolDir);
  ctx.overSent.set(f.name, id);
  ctx.seen.delete(f.name);
  ctx.log.warn('the server sent more than the listed size; the file is refused until its listing changes', {
    name: f.name,
    size: f.size,
    sent_at_least: over.sent,
    hint: 'a download never writes past the size the server lists; an upload that grew is fetched once its new size is listed and stable',
  });
  throw new Interrupted();
}

/** The download stopped short: records how far it got (the next poll resumes there), says why, and throws. */
async function keepPartial(ctx: TransferContext, f: RemoteFile, t: Transferred, signal: AbortSignal | undefined): Promise<never> {
  await writeJsonAtomic(t.metaPath, { ...t.meta, synced: t.got });
  const progress = { name: f.name, bytes: t.got - t.startAt, offset: t.got, size: f.size };
  if (t.tooSlow) {
    // Said as a warning the first time; a server that stays this slow is then reported at info.
    ctx.log[ctx.slow.has(f.name) ? 'info' : 'warn']('download too slow: stopped at its deadline; the next poll resumes it', {
      ...progress,
      deadline_s: Math.round(t.deadlineMs / 1000),
      min_rate: ctx.minRate,
    });
    ctx.slow.add(f.name);
    throw new Interrupted();
  }
  if (t.failure !== undefined || t.writerFailure) {
    // Stopping on request is routine; a broken transfer is worth a warning.
    ctx.log[signal?.aborted ? 'info' : 'warn']('download interrupted; the next poll resumes it', {
      ...progress,
      error: (t.writerFailure ?? (t.failure as Error))?.message,
    });
    if (t.writerFailure) throw spoolWriteError(ctx, t.path, t.writerFailure);
    throw t.failure;
  }
  ctx.warnOnce(`short:${f.name}:${f.size}:${f.modify ?? ''}:${t.got}`, 'download ended short of the listed size; the next poll resumes it', progress);
  throw new Interrupted();
}

/** A failure to write the spool: a full disk is a resource error, anything else internal. */
function spoolWriteError(ctx: TransferContext, path: string, e: Error): AirlockError {
  const code = errnoCode(e);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return resourceError(`FTP source "${ctx.source}": the spool folder ${ctx.spoolDir} is full`, {
      reason: 'disk-full',
      subject: ctx.spoolDir,
      cause: e,
    });
  }
  return new AirlockError('internal', `FTP source "${ctx.source}": cannot write ${path}: ${e.message}`, {
    subject: path,
    cause: e,
  });
}

/** A complete download: its record to meta/, the file to ready/, the partial's record gone, each step durable. */
async function handOver(ctx: TransferContext, f: RemoteFile, id: RemoteId, path: string, metaPath: string): Promise<void> {
  const sha256 = f.modify === undefined ? await sha256OfFile(path) : undefined;
  const waiting: WaitingMeta = { name: f.name, ...id, fetchedAt: new Date().toISOString(), ...(sha256 === undefined ? {} : { sha256 }) };
  await writeJsonAtomic(join(ctx.metaDir, `${f.name}.json`), waiting);
  await rename(path, join(ctx.readyDir, f.name));
  await syncDir(ctx.readyDir);
  await rm(metaPath, { force: true });
  await syncDir(ctx.spoolDir);
  ctx.seen.delete(f.name);
  ctx.slow.delete(f.name);
}

/** Fetches `f` into a hash only: its sha256, or undefined when the transfer did not complete (said once). */
export async function fetchHash(ctx: TransferContext, client: Client, f: RemoteFile): Promise<string | undefined> {
  const sink = new HashSink(f.size);
  const deadlineMs = ctx.connection.deadlineMs(f.size);
  const { failure, tooSlow } = await downloadWithin(client, sink, f.name, 0, deadlineMs);
  if (sink.failure) {
    client.close(); // the server would go on sending
    ctx.overSent.set(f.name, { size: f.size });
    ctx.log.warn('the server sent more than the listed size; the file is refused until its listing changes', { name: f.name, size: f.size, sent_at_least: sink.failure.sent });
    return undefined;
  }
  if (failure !== undefined || sink.pos !== f.size) {
    if (tooSlow) ctx.slow.add(f.name); // after the others at the next poll, as a slow download
    ctx.warnOnce(`recheck:${f.name}:${f.size}`, 'could not fetch a settled file again to compare its content; it is neither fetched nor deleted until that works', {
      name: f.name,
      size: f.size,
      got: sink.pos,
      error: tooSlow ? `not done after ${Math.round(deadlineMs / 1000)} s` : failure instanceof Error ? failure.message.trim() : undefined,
    });
    return undefined;
  }
  return sink.hash.digest('hex');
}
