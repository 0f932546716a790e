/**
 * The spool folder of the FTP source, on disk: the records it keeps (see the
 * layout in ftp-source.ts), the writers a transfer streams into, and the
 * identity of a remote file version those records carry.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { writeWhole } from '../../store/durable.js';

/** What identifies one upload of a remote file. */
export interface RemoteId {
  size: number;
  /** ISO time from MLSD or MDTM; absent when the server gives none. */
  modify?: string;
}

export interface RemoteFile extends RemoteId {
  name: string;
}

export interface PartialMeta extends RemoteId {
  name: string;
  /** Bytes of NAME.download known to be on disk (fsynced); a resume starts here at most. */
  synced: number;
}

export interface WaitingMeta extends RemoteId {
  name: string;
  fetchedAt: string;
  /** The content's sha256, kept when the server gives no modify time (the only identity that changes with the content). */
  sha256?: string;
}

/** Bytes written between two fsync checkpoints of a download. */
const CHECKPOINT_BYTES = 16 * 1024 * 1024;

export const sameId = (a: RemoteId, b: RemoteId): boolean =>
  a.size === b.size && (a.modify === undefined || b.modify === undefined || a.modify === b.modify);
/** The very same listing entry: size and modify time (or its absence) alike. */
export const sameListing = (a: RemoteId, b: RemoteId): boolean => a.size === b.size && a.modify === b.modify;

export function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

export async function readJson<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  }
  return JSON.parse(text) as T;
}

/** Written whole or not at all (store/durable.ts). */
export const writeJsonAtomic = (path: string, value: unknown): Promise<void> => writeWhole(path, `${JSON.stringify(value, null, 1)}\n`, 0o640);

/**
 * The destination of one download: writes at an offset of an open file,
 * counts what reached it, and every CHECKPOINT_BYTES fsyncs and records the
 * fsynced length, so that even a power loss leaves a resumable partial.
 */
export class SpoolWriter extends Writable {
  pos: number;
  failure: Error | undefined;
  private last: Promise<void> = Promise.resolve();
  private syncedAt: number;

  constructor(
    private readonly fh: FileHandle,
    readonly start: number,
    /** The listed size: a byte past it is never written. */
    private readonly limit: number,
    private readonly checkpoint: (synced: number) => Promise<void>,
  ) {
    super({ highWaterMark: 1 << 20 });
    this.pos = start;
    this.syncedAt = start;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.pos + chunk.length > this.limit) {
      this.failure = new BeyondListed(this.pos + chunk.length);
      cb(this.failure);
      return;
    }
    const work = (async () => {
      let off = 0;
      while (off < chunk.length) {
        const { bytesWritten } = await this.fh.write(chunk, off, chunk.length - off, this.pos);
        off += bytesWritten;
        this.pos += bytesWritten;
      }
      if (this.pos - this.syncedAt >= CHECKPOINT_BYTES) {
        await this.fh.sync();
        this.syncedAt = this.pos;
        await this.checkpoint(this.pos);
      }
    })();
    this.last = work.catch(() => undefined);
    work.then(
      () => cb(),
      (e: Error) => {
        this.failure = e;
        cb(e);
      },
    );
  }

  /** Resolves when no write is in flight (also after the stream was destroyed). */
  idle(): Promise<void> {
    return this.last;
  }
}

/** A re-check's destination: hashes what comes and refuses a byte past the listed size. */
export class HashSink extends Writable {
  readonly hash = createHash('sha256');
  pos = 0;
  failure: BeyondListed | undefined;

  constructor(private readonly limit: number) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.pos += chunk.length;
    if (this.pos > this.limit) {
      this.failure = new BeyondListed(this.pos);
      return cb(this.failure);
    }
    this.hash.update(chunk);
    cb();
  }
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A download that did not complete; the partial stays for the next poll. */
export class Interrupted extends Error {}

/** The server sent more than it listed: `sent` bytes at least. */
export class BeyondListed extends Error {
  constructor(readonly sent: number) {
    super(`the server sent at least ${sent} bytes`);
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return false;
    throw e;
  }
}

/** NAME.download: a download in progress or interrupted. */
export function partialPath(spoolDir: string, name: string): string {
  return join(spoolDir, `${name}.download`);
}

/** NAME.download.json: the remote version a partial belongs to, and how much of it is fsynced. */
export function partialMetaPath(spoolDir: string, name: string): string {
  return join(spoolDir, `${name}.download.json`);
}
