/**
 * The bytes of an upload: pipelined SFTP writes of a range of the local file
 * (read once, in order, optionally hashed on the way), and hashing a range
 * of it.
 */
import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { SFTPWrapper } from 'ssh2';
import { AirlockError } from '../errors/index.js';
import type { Link } from './upload-link.js';

/** Bytes of SFTP writes in flight (each holds its buffer until the host acknowledges it). */
const WINDOW = 4 * 1024 * 1024;
const READ_BUF = 1024 * 1024;
/** How long a failed or aborted upload waits for the writes in flight to be answered. */
export const DRAIN_MS = 30_000;

export interface PumpArgs {
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
export async function pump(a: PumpArgs): Promise<void> {
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

export async function hashRange(fh: FileHandle, h: Hash, from: number, to: number, signal: AbortSignal | undefined, localPath: string): Promise<void> {
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
