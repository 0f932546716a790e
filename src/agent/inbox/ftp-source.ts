/**
 * The FTP inbox source of the unattended agent: polls a folder on an FTP
 * server, read-only unless told to delete, and hands complete files to the
 * agent through a local spool folder.
 *
 * Spool layout (`spoolDir`):
 *   NAME.download        a download in progress or interrupted; resumed with REST
 *   NAME.download.json   the remote size+mtime it belongs to, and how many bytes are fsynced
 *   ready/NAME           complete, fsynced, waiting for the agent
 *   meta/NAME.json       the remote size+mtime (or sha256) of a file handed to the agent, until it is settled
 *   settled.json         files the agent has processed: never fetched again while unchanged
 *
 * A remote file is "the same" when name, size and modify time match. The modify
 * time comes from MLSD when the server has it, else from MDTM (LIST dates are
 * not used: their format changes with the file's age). A server with neither
 * gives nothing that changes with the content, so the source keeps the sha256
 * of what it fetched: a settled file listed again at the same size is fetched
 * again into a hash only (never the spool) every recheckMs, and always right
 * before deleteAfter deletes it; other content is a new file, fetched as one,
 * and never deleted unseen.
 *
 * The server is not trusted to tell the truth: a download never writes more
 * than the listed size (a server that sends more is refused until its listing
 * changes), starts only when the spool's disk keeps FREE_SPACE_MARGIN free
 * after it (the import's own margin, room for the journal), and is stopped after timeoutMs + size / minRate however steadily it
 * trickles (the partial is resumed at the next poll).
 */
import { createHash } from 'node:crypto';
import { constants as fsc, createReadStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, statfs, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { Client, FTPError, FileType, type FileInfo } from 'basic-ftp';
import { AirlockError, configError, isAirlockError, resourceError } from '../../errors/index.js';
import { FREE_SPACE_MARGIN } from '../../store/content-store.js';
import { syncDir, writeWhole } from '../../store/durable.js';
import type { Logger } from '../log.js';
import { checkFtpSettings, DEFAULT_MIN_RATE, DEFAULT_RECHECK_MS, FtpSettingError, safeName, type Endpoint, type FtpSourceConfig } from './ftp-settings.js';

export type { FtpSourceConfig } from './ftp-settings.js';

/** What identifies one upload of a remote file. */
interface RemoteId {
  size: number;
  /** ISO time from MLSD or MDTM; absent when the server gives none. */
  modify?: string;
}

interface RemoteFile extends RemoteId {
  name: string;
}

interface PartialMeta extends RemoteId {
  name: string;
  /** Bytes of NAME.download known to be on disk (fsynced); a resume starts here at most. */
  synced: number;
}

interface WaitingMeta extends RemoteId {
  name: string;
  fetchedAt: string;
  /** The content's sha256, kept when the server gives no modify time (the only identity that changes with the content). */
  sha256?: string;
}

interface SettledFile extends RemoteId {
  settledAt: string;
  sha256?: string;
  /** When the remote content last had `sha256` (fetched or re-checked); the next re-check is due recheckMs after it. */
  checkedAt?: string;
}

/** What a re-check of a settled file found on the server: unknown when the transfer did not complete. */
type Recheck = 'same' | 'changed' | 'unknown';

interface SettledState {
  version: 1;
  files: Record<string, SettledFile>;
}

/** Bytes written between two fsync checkpoints of a download. */
const CHECKPOINT_BYTES = 16 * 1024 * 1024;
const ANONYMOUS_PASSWORD = 'anonymous@';
/** The largest folder listing taken (some 50,000 entries); a listing is a transfer with a deadline like a file of this size. */
const LISTING_MAX_BYTES = 4 * 1024 * 1024;

const sameId = (a: RemoteId, b: RemoteId): boolean =>
  a.size === b.size && (a.modify === undefined || b.modify === undefined || a.modify === b.modify);
/** The very same listing entry: size and modify time (or its absence) alike. */
const sameListing = (a: RemoteId, b: RemoteId): boolean => a.size === b.size && a.modify === b.modify;

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

async function readJson<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  }
  return JSON.parse(text) as T;
}

const writeJsonAtomic = (path: string, value: unknown): Promise<void> => writeWhole(path, `${JSON.stringify(value, null, 1)}\n`, 0o640);

/**
 * The destination of one download: writes at an offset of an open file,
 * counts what reached it, and every CHECKPOINT_BYTES fsyncs and records the
 * fsynced length, so that even a power loss leaves a resumable partial.
 */
class SpoolWriter extends Writable {
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
class HashSink extends Writable {
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

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A download that did not complete; the partial stays for the next poll. */
class Interrupted extends Error {}

/** The server sent more than it listed: `sent` bytes at least. */
class BeyondListed extends Error {
  constructor(readonly sent: number) {
    super(`the server sent at least ${sent} bytes`);
  }
}

/** Closes the connection after `ms`: an idle timeout alone lets a server trickle for ever. */
function closeAfter(client: Client, ms: number): { readonly passed: boolean; clear(): void } {
  let passed = false;
  const timer = setTimeout(() => {
    passed = true;
    client.close();
  }, ms);
  return {
    get passed() {
      return passed;
    },
    clear: () => clearTimeout(timer),
  };
}

export class FtpSource {
  private readonly ep: Endpoint;
  private readonly log: Logger;
  private readonly readyDir: string;
  private readonly metaDir: string;
  private readonly settledPath: string;
  /** 'stable' mode: what each candidate looked like at the last polls, and for how many in a row. */
  private readonly seen = new Map<string, RemoteId & { count: number }>();
  /** Warnings said once per remote file version, not at every poll. */
  private readonly warned = new Set<string>();
  /** Files whose server sent more than it listed, as listed then: not fetched again until the listing changes. */
  private readonly overSent = new Map<string, RemoteId>();
  /** Files stopped at their deadline: fetched after the others at the next poll. */
  private readonly slow = new Set<string>();
  private readonly minRate: number;
  private readonly recheckMs: number;
  /** Settled files whose content was re-checked in the current connection: once is enough. */
  private rechecked = new Set<string>();
  private settledLoad: Promise<SettledState> | undefined;
  /** The connection lane: polls and deletions on the server, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Changes to settled.json and meta/, one at a time; never waits for the server. */
  private stateQueue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly cfg: FtpSourceConfig,
    private readonly spoolDir: string,
    log: Logger,
  ) {
    try {
      this.ep = checkFtpSettings(cfg);
    } catch (e) {
      if (!(e instanceof FtpSettingError)) throw e;
      throw configError(`FTP source "${typeof cfg?.name === 'string' ? cfg.name : ''}": ${e.key}: ${e.message}`, {
        subject: e.key,
        reason: 'bad-config',
        ...(e.hint ? { hint: e.hint } : {}),
      });
    }
    this.minRate = cfg.minRate ?? DEFAULT_MIN_RATE;
    this.recheckMs = cfg.recheckMs ?? DEFAULT_RECHECK_MS;
    this.log = log.with({ source: cfg.name });
    this.readyDir = join(spoolDir, 'ready');
    this.metaDir = join(spoolDir, 'meta');
    this.settledPath = join(spoolDir, 'settled.json');
  }

  /**
   * One poll: connect, list the remote folder, and download each complete
   * candidate not yet settled into `<spoolDir>/NAME.download` (resuming a
   * partial at its size), verify the size, and rename it to
   * `<spoolDir>/ready/NAME`. Returns the paths in ready/ waiting for the
   * agent, including those of earlier polls. Honors `signal`: an aborted
   * download stays resumable.
   */
  poll(signal?: AbortSignal): Promise<string[]> {
    return this.exclusive(async () => {
      signal?.throwIfAborted();
      await mkdir(this.readyDir, { recursive: true });
      await mkdir(this.metaDir, { recursive: true });
      const settled = await this.loadSettled();
      await this.session(signal, async (client) => {
        const files = await this.listFolder(client);
        await this.fetchComplete(client, files, settled, signal);
        // A download stopped at its deadline or refused closed the connection: deletions wait for the next poll.
        if (this.cfg.deleteAfter && !client.closed) await this.deleteSettled(client, files, settled);
        await this.forgetVanished(files, settled);
      });
      return this.readyFiles();
    });
  }

  /** The paths in ready/ waiting for the agent, without asking the server (and without waiting for a poll in progress). */
  async ready(): Promise<string[]> {
    try {
      return await this.readyFiles();
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return [];
      throw e;
    }
  }

  /** Resolves once the server work queued so far (polls, deletions after settle) is done. */
  idle(): Promise<void> {
    return this.queue.then(() => undefined);
  }

  /**
   * The agent has processed `localPath` (a path poll() returned, moved away by
   * the agent): never fetch that remote file again while it is unchanged.
   * Resolves once that is recorded, without waiting for a poll in progress.
   * With deleteAfter the file (and its marker) is then deleted on the server,
   * after the poll in progress (idle() waits for it); a failed delete is
   * logged and retried at the next poll.
   */
  async settle(localPath: string): Promise<void> {
    const name = basename(localPath);
    if (resolve(dirname(localPath)) !== resolve(this.readyDir) || !safeName(name)) {
      throw new AirlockError('internal', `FTP source "${this.cfg.name}": ${localPath} is not a file this source handed out (not in ${this.readyDir})`);
    }
    const recorded = await this.stateChange(async () => {
      const metaPath = join(this.metaDir, `${name}.json`);
      const meta = await readJson<WaitingMeta>(metaPath).catch(() => undefined);
      const settled = await this.loadSettled();
      if (!meta) {
        if (settled.files[name]) return false; // settled twice
        throw new AirlockError('notFound', `FTP source "${this.cfg.name}": no record of ${name} (was it fetched by this source?)`, {
          subject: localPath,
          reason: 'not-found',
        });
      }
      settled.files[name] = {
        size: meta.size,
        ...(meta.modify === undefined ? {} : { modify: meta.modify }),
        ...(meta.sha256 === undefined ? {} : { sha256: meta.sha256, checkedAt: meta.fetchedAt }),
        settledAt: new Date().toISOString(),
      };
      await this.saveSettled();
      await rm(metaPath, { force: true });
      this.log.info('settled', { name, bytes: meta.size });
      return true;
    });
    if (!recorded) return;
    if (await exists(localPath)) this.log.warn('settled file is still in ready/; it will be handed out again', { name, path: localPath });
    if (!this.cfg.deleteAfter) return;
    void this.exclusive(async () => {
      try {
        const settled = await this.loadSettled();
        await this.session(undefined, async (client) => {
          const files = await this.listFolder(client);
          await this.deleteSettled(client, files, settled, name);
        });
      } catch (e) {
        this.log.warn('could not delete a settled file on the server; the next poll tries again', {
          name,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    });
  }

  // ---- connection ---------------------------------------------------------

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private stateChange<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.stateQueue.then(fn, fn);
    this.stateQueue = run.catch(() => undefined);
    return run;
  }

  /** How long a transfer of `bytes` may take: the idle timeout, plus the bytes at the minimum rate. */
  private deadlineMs(bytes: number): number {
    return this.cfg.timeoutMs + Math.ceil((bytes * 1000) / this.minRate);
  }

  /** Connects, logs in, enters the folder, runs `fn`, and always closes. Abort closes the connection. */
  private async session(signal: AbortSignal | undefined, fn: (client: Client) => Promise<void>): Promise<void> {
    const password = await this.password();
    const secureOptions = this.ep.secure ? await this.tlsOptions() : undefined;
    const client = new Client(this.cfg.timeoutMs, { allowSeparateTransferHost: false, maxListingBytes: LISTING_MAX_BYTES });
    client.ftp.verbose = false;
    const onAbort = () => client.close();
    signal?.addEventListener('abort', onAbort, { once: true });
    let step = 'connect';
    try {
      signal?.throwIfAborted();
      await client.access({
        host: this.ep.host,
        port: this.ep.port,
        user: this.ep.user,
        password,
        secure: this.ep.secure,
        ...(secureOptions ? { secureOptions } : {}),
      });
      if (this.ep.folder !== '') {
        step = 'cd';
        await client.cd(this.ep.folder);
      }
      step = 'session';
      this.rechecked = new Set();
      await fn(client);
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      // A failure of our own disk is not the server's: only FTP replies and a lost connection are 'remote'.
      if (step === 'session' && !(e instanceof FTPError) && !client.closed) throw e;
      throw this.remoteError(e, step);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      client.close();
    }
  }

  private async password(): Promise<string> {
    const file = this.cfg.passwordFile;
    if (file === undefined) return ANONYMOUS_PASSWORD;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw configError(`FTP source "${this.cfg.name}": passwordFile: cannot read ${file}: ${errnoCode(e) ?? (e as Error).message}`, {
        subject: file,
        reason: 'bad-config',
      });
    }
    const pw = text.replace(/\r?\n$/, '');
    if (pw === '' || /[\r\n]/.test(pw)) {
      throw configError(`FTP source "${this.cfg.name}": passwordFile: ${file} must hold the password on one line`, { subject: file, reason: 'bad-config' });
    }
    return pw;
  }

  private async tlsOptions(): Promise<{ ca?: Buffer; rejectUnauthorized: boolean }> {
    const tls = this.cfg.tls ?? {};
    const opts: { ca?: Buffer; rejectUnauthorized: boolean } = { rejectUnauthorized: tls.rejectUnauthorized ?? true };
    if (tls.caFile !== undefined) {
      try {
        opts.ca = await readFile(tls.caFile);
      } catch (e) {
        throw configError(`FTP source "${this.cfg.name}": tls.caFile: cannot read ${tls.caFile}: ${errnoCode(e) ?? (e as Error).message}`, {
          subject: tls.caFile,
          reason: 'bad-config',
        });
      }
    }
    return opts;
  }

  /** Turns a failure of the server or the network into a 'remote' error that names the source and the server. */
  private remoteError(e: unknown, step: string): AirlockError {
    if (isAirlockError(e)) return e;
    const src = `FTP source "${this.cfg.name}"`;
    const server = this.ep.display;
    const detail = e instanceof Error ? e.message.trim() : String(e);
    if (e instanceof FTPError) {
      if (e.code === 530) {
        return new AirlockError('remote', `${src}: ${server} refused the login of user "${this.ep.user}": ${detail}`, {
          reason: 'ftp-login',
          subject: server,
          hint: 'check user and passwordFile of this source',
          cause: e,
        });
      }
      if (step === 'cd') {
        return new AirlockError('remote', `${src}: ${server} refused to open the folder "${this.ep.folder}": ${detail}`, {
          reason: 'ftp-refused',
          subject: server,
          hint: 'check the path in url and that this user may list it',
          cause: e,
        });
      }
      return new AirlockError('remote', `${src}: ${server} refused: ${detail}`, { reason: 'ftp-refused', subject: server, cause: e });
    }
    if (step === 'connect') {
      return new AirlockError('remote', `${src}: cannot reach ${server}: ${detail}`, {
        reason: 'ftp-unreachable',
        subject: server,
        hint: 'check that the FTP server runs and that host and port in url are right',
        cause: e,
      });
    }
    return new AirlockError('remote', `${src}: the connection to ${server} failed: ${detail}`, {
      reason: 'ftp-failed',
      subject: server,
      hint: 'the next poll tries again; an interrupted download resumes where it stopped',
      cause: e,
    });
  }

  // ---- listing ------------------------------------------------------------

  /** The plain files of the folder that matter (candidates and their markers), with modify times. */
  private async listFolder(client: Client): Promise<Map<string, RemoteFile>> {
    const ms = this.deadlineMs(LISTING_MAX_BYTES);
    const deadline = closeAfter(client, ms);
    let listing: FileInfo[];
    try {
      listing = await client.list();
    } catch (e) {
      if (!deadline.passed) throw e;
      throw new AirlockError('remote', `FTP source "${this.cfg.name}": ${this.ep.display} sent its folder listing too slowly: not done after ${Math.round(ms / 1000)} s`, {
        reason: 'ftp-too-slow',
        subject: this.ep.display,
        hint: `a transfer must average minRate (${this.minRate} bytes/s); the next poll tries again`,
      });
    } finally {
      deadline.clear();
    }
    const marker = this.cfg.complete.mode === 'marker' ? this.cfg.complete.suffix : undefined;
    const relevant = (n: string) => this.cfg.match(n) || (marker !== undefined && n.endsWith(marker) && this.cfg.match(n.slice(0, -marker.length)));
    const wanted: FileInfo[] = [];
    for (const f of listing) {
      if (f.type !== FileType.File || !relevant(f.name)) continue;
      if (!safeName(f.name)) {
        this.warnOnce(`unsafe:${f.name}`, 'skipping a remote file whose name is not a plain file name', { name: JSON.stringify(f.name) });
        continue;
      }
      if (!Number.isSafeInteger(f.size) || f.size < 0) {
        this.warnOnce(`size:${f.name}:${f.size}`, 'skipping a remote file listed without a size', { name: f.name, size: String(f.size) });
        continue;
      }
      wanted.push(f);
    }
    let mdtm: boolean | undefined;
    const out = new Map<string, RemoteFile>();
    for (const f of wanted) {
      let modify = f.modifiedAt?.toISOString();
      if (modify === undefined) {
        mdtm ??= (await client.features()).has('MDTM');
        if (mdtm) {
          try {
            modify = (await client.lastMod(f.name)).toISOString();
          } catch (e) {
            if (!(e instanceof FTPError)) throw e;
            continue; // vanished since the listing, or not ours to see: not this poll
          }
        }
      }
      out.set(f.name, { name: f.name, size: f.size, ...(modify === undefined ? {} : { modify }) });
    }
    return out;
  }

  /** Whether each candidate is complete, by the configured rule; updates the 'stable' observations. */
  private isComplete(f: RemoteFile, files: Map<string, RemoteFile>): boolean {
    const c = this.cfg.complete;
    if (c.mode === 'marker') {
      const m = files.get(f.name + c.suffix);
      if (!m) return false;
      // A marker older than the file is left from an earlier upload under the same name.
      if (m.modify !== undefined && f.modify !== undefined && Date.parse(m.modify) < Date.parse(f.modify)) return false;
      return true;
    }
    const prev = this.seen.get(f.name);
    const count = prev && sameId(prev, f) && prev.modify === f.modify ? prev.count + 1 : 1;
    this.seen.set(f.name, { size: f.size, ...(f.modify === undefined ? {} : { modify: f.modify }), count });
    return count >= c.polls;
  }

  // ---- downloads ----------------------------------------------------------

  private async fetchComplete(client: Client, files: Map<string, RemoteFile>, settled: SettledState, signal?: AbortSignal): Promise<void> {
    const suffix = this.cfg.complete.mode === 'marker' ? this.cfg.complete.suffix : undefined;
    // A file that was too slow last time goes last: it must not hold back the others at every poll.
    const names = [...files.keys()].sort((a, b) => Number(this.slow.has(a)) - Number(this.slow.has(b)) || (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) {
      // Stopped at a deadline or refused mid-transfer: the rest waits for the next poll.
      if (client.closed) return;
      const f = files.get(name)!;
      if (!this.cfg.match(name)) continue; // a marker
      if (suffix !== undefined && name.endsWith(suffix) && files.has(name.slice(0, -suffix.length))) continue; // a marker that also matches
      const over = this.overSent.get(name);
      if (over && sameListing(over, f)) continue; // said once when it happened
      this.overSent.delete(name);
      let done = settled.files[name];
      if (done && sameId(done, f)) {
        // Without a modify time, only the content tells a resent file from the one settled.
        if (f.modify === undefined && this.recheckDue(done) && (await this.recheck(client, f, done)) === 'changed') done = undefined;
        else continue;
      }
      const metaPath = join(this.metaDir, `${name}.json`);
      const waiting = await readJson<WaitingMeta>(metaPath).catch(() => ({}) as WaitingMeta);
      if (waiting && done && sameId(done, waiting)) {
        await rm(metaPath, { force: true }); // settled, but removing the record was cut short
      } else if (waiting || (await exists(join(this.readyDir, name)))) {
        continue; // handed to the agent, not settled yet
      }
      const partial = await readJson<PartialMeta>(this.partialMetaPath(name)).catch(() => undefined);
      // A partial of this very upload was complete when it started: resume without waiting again.
      const resumable = partial !== undefined && sameId(partial, f) && partial.modify === f.modify;
      const complete = this.isComplete(f, files) || resumable;
      if (!complete) {
        this.log.debug('not complete yet', { name, bytes: f.size });
        continue;
      }
      signal?.throwIfAborted();
      try {
        await this.download(client, f, partial, signal);
      } catch (e) {
        if (signal?.aborted) throw e;
        if (e instanceof FTPError && !client.closed && e.code >= 400) {
          // This one file is refused (e.g. unreadable for this user); the others still come.
          this.warnOnce(`refused:${name}:${f.size}:${f.modify ?? ''}`, 'the server refused to send a file; skipping it', {
            name,
            bytes: f.size,
            error: e.message.trim(),
            hint: 'the FTP user must be able to read uploads (vsftpd: anon_umask=022, or chown_uploads to a readable owner)',
          });
          continue;
        }
        if (e instanceof Interrupted) continue;
        throw e;
      }
    }
  }

  private partialPath(name: string): string {
    return join(this.spoolDir, `${name}.download`);
  }

  private partialMetaPath(name: string): string {
    return join(this.spoolDir, `${name}.download.json`);
  }

  private async download(client: Client, f: RemoteFile, prior: PartialMeta | undefined, signal?: AbortSignal): Promise<void> {
    const path = this.partialPath(f.name);
    const metaPath = this.partialMetaPath(f.name);
    const id: RemoteId = { size: f.size, ...(f.modify === undefined ? {} : { modify: f.modify }) };
    const local = await stat(path).catch(() => undefined);
    let startAt = 0;
    if (prior && local && sameId(prior, f) && prior.modify === f.modify) {
      startAt = Math.min(local.size, prior.synced);
      if (local.size > f.size) startAt = 0;
    } else if (local) {
      this.log.info('restarting a partial download', {
        name: f.name,
        bytes: local.size,
        reason: prior ? 'the remote file changed since it started' : 'no record of what it belongs to',
      });
    }

    // The listed size is all the room the server gets, and only while the journal and the import keep theirs.
    const need = f.size - startAt;
    const reclaimed = (local?.size ?? 0) - startAt;
    const fs = await statfs(this.spoolDir);
    const free = Number(fs.bavail) * Number(fs.bsize) + reclaimed;
    if (free - need < FREE_SPACE_MARGIN) {
      this.warnOnce(`space:${f.name}:${f.size}`, 'not enough free disk in the spool folder; skipping the file for now', {
        name: f.name,
        bytes: need,
        free,
        spare: FREE_SPACE_MARGIN,
        spool: this.spoolDir,
      });
      return;
    }
    const meta: PartialMeta = { name: f.name, ...id, synced: startAt };
    if (startAt === 0 || !prior) await writeJsonAtomic(metaPath, meta);

    const fh = await open(path, startAt > 0 ? fsc.O_RDWR : fsc.O_RDWR | fsc.O_CREAT | fsc.O_TRUNC, 0o640);
    let closed = false;
    try {
      if (startAt > 0) await fh.truncate(startAt); // bytes past the last fsync are not trusted
      const writer = new SpoolWriter(fh, startAt, f.size, (synced) => writeJsonAtomic(metaPath, { ...meta, synced }));
      this.log.info(startAt > 0 ? 'download resumed' : 'download started', {
        name: f.name,
        bytes: need,
        ...(startAt > 0 ? { offset: startAt } : {}),
        size: f.size,
      });
      let failure: unknown;
      const deadlineMs = this.deadlineMs(need);
      let tooSlow = false;
      if (need > 0) {
        const deadline = closeAfter(client, deadlineMs);
        try {
          await client.downloadTo(writer, f.name, startAt);
        } catch (e) {
          failure = e;
        } finally {
          deadline.clear();
          tooSlow = deadline.passed;
        }
      } else {
        writer.end();
      }
      await writer.idle();
      await fh.sync();
      const got = writer.pos;
      if (writer.failure instanceof BeyondListed) {
        client.close(); // the server would go on sending
        await fh.close();
        closed = true;
        await rm(path, { force: true });
        await rm(metaPath, { force: true });
        await syncDir(this.spoolDir);
        this.overSent.set(f.name, id);
        this.seen.delete(f.name);
        this.log.warn('the server sent more than the listed size; the file is refused until its listing changes', {
          name: f.name,
          size: f.size,
          sent_at_least: writer.failure.sent,
          hint: 'a download never writes past the size the server lists; an upload that grew is fetched once its new size is listed and stable',
        });
        throw new Interrupted();
      }
      if (tooSlow) {
        await writeJsonAtomic(metaPath, { ...meta, synced: got });
        // Said as a warning the first time; a server that stays this slow is then reported at info.
        this.log[this.slow.has(f.name) ? 'info' : 'warn']('download too slow: stopped at its deadline; the next poll resumes it', {
          name: f.name,
          bytes: got - startAt,
          offset: got,
          size: f.size,
          deadline_s: Math.round(deadlineMs / 1000),
          min_rate: this.minRate,
        });
        this.slow.add(f.name);
        throw new Interrupted();
      }
      if (failure !== undefined || writer.failure) {
        await writeJsonAtomic(metaPath, { ...meta, synced: got });
        // Stopping on request is routine; a broken transfer is worth a warning.
        this.log[signal?.aborted ? 'info' : 'warn']('download interrupted; the next poll resumes it', {
          name: f.name,
          bytes: got - startAt,
          offset: got,
          size: f.size,
          error: (writer.failure ?? (failure as Error))?.message,
        });
        if (writer.failure) {
          const code = errnoCode(writer.failure);
          if (code === 'ENOSPC' || code === 'EDQUOT') {
            throw resourceError(`FTP source "${this.cfg.name}": the spool folder ${this.spoolDir} is full`, {
              reason: 'disk-full',
              subject: this.spoolDir,
              cause: writer.failure,
            });
          }
          throw new AirlockError('internal', `FTP source "${this.cfg.name}": cannot write ${path}: ${writer.failure.message}`, {
            subject: path,
            cause: writer.failure,
          });
        }
        throw failure;
      }
      if (got < f.size) {
        await writeJsonAtomic(metaPath, { ...meta, synced: got });
        this.warnOnce(`short:${f.name}:${f.size}:${f.modify ?? ''}:${got}`, 'download ended short of the listed size; the next poll resumes it', {
          name: f.name,
          bytes: got - startAt,
          offset: got,
          size: f.size,
        });
        throw new Interrupted();
      }
      await fh.close();
      closed = true;
      const sha256 = f.modify === undefined ? await sha256OfFile(path) : undefined;
      const waiting: WaitingMeta = { name: f.name, ...id, fetchedAt: new Date().toISOString(), ...(sha256 === undefined ? {} : { sha256 }) };
      await writeJsonAtomic(join(this.metaDir, `${f.name}.json`), waiting);
      await rename(path, join(this.readyDir, f.name));
      await syncDir(this.readyDir);
      await rm(metaPath, { force: true });
      await syncDir(this.spoolDir);
      this.seen.delete(f.name);
      this.slow.delete(f.name);
      this.log.info('download finished', { name: f.name, bytes: got - startAt, size: f.size });
      signal?.throwIfAborted();
    } finally {
      if (!closed) await fh.close().catch(() => undefined);
    }
  }

  // ---- settled files ------------------------------------------------------

  /** deleteAfter: removes settled files still on the server, marker first (a stale marker would make a later upload look complete). */
  private async deleteSettled(client: Client, files: Map<string, RemoteFile>, settled: SettledState, only?: string): Promise<void> {
    const suffix = this.cfg.complete.mode === 'marker' ? this.cfg.complete.suffix : undefined;
    for (const [name, rec] of Object.entries(settled.files)) {
      if (only !== undefined && name !== only) continue;
      const f = files.get(name);
      if (!f || !sameId(rec, f)) continue; // gone, or a new upload under the same name
      // Same name and size is not the same file without a modify time: delete only the content that was fetched.
      if (f.modify === undefined && (await this.recheck(client, f, rec)) !== 'same') continue;
      try {
        if (suffix !== undefined && files.has(name + suffix)) {
          await client.remove(name + suffix);
          this.log.info('deleted on server', { name: name + suffix });
        }
        await client.remove(name);
        this.log.info('deleted on server', { name, bytes: f.size });
      } catch (e) {
        if (!(e instanceof FTPError) || client.closed) throw e;
        this.warnOnce(`nodelete:${name}:${rec.size}`, 'the server refused to delete a settled file', {
          name,
          error: e.message.trim(),
          hint: 'deleteAfter needs a user that may delete in this folder (vsftpd: anon_other_write_enable or a local user)',
        });
      }
    }
  }

  // ---- content re-checks (servers without modify times) ----------------------

  private recheckDue(rec: SettledFile): boolean {
    return rec.checkedAt === undefined || Date.now() - Date.parse(rec.checkedAt) >= this.recheckMs;
  }

  /**
   * Fetches a settled file again into a hash only, and compares it with what
   * was fetched: the same content is recorded as checked now; other content
   * drops the settled record, so the file is fetched as a new one (and not
   * deleted). A record from before hashes were kept takes this content as its
   * own. A transfer that does not complete decides nothing.
   */
  private async recheck(client: Client, f: RemoteFile, rec: SettledFile): Promise<Recheck> {
    if (this.rechecked.has(f.name)) return 'same';
    const over = this.overSent.get(f.name);
    if ((over && sameListing(over, f)) || client.closed) return 'unknown';
    const sink = new HashSink(f.size);
    const deadlineMs = this.deadlineMs(f.size);
    const deadline = closeAfter(client, deadlineMs);
    let failure: unknown;
    try {
      await client.downloadTo(sink, f.name);
    } catch (e) {
      failure = e;
    } finally {
      deadline.clear();
    }
    if (sink.failure) {
      client.close(); // the server would go on sending
      this.overSent.set(f.name, { size: f.size });
      this.log.warn('the server sent more than the listed size; the file is refused until its listing changes', { name: f.name, size: f.size, sent_at_least: sink.failure.sent });
      return 'unknown';
    }
    if (failure !== undefined || sink.pos !== f.size) {
      if (deadline.passed) this.slow.add(f.name); // after the others at the next poll, as a slow download
      this.warnOnce(`recheck:${f.name}:${f.size}`, 'could not fetch a settled file again to compare its content; it is neither fetched nor deleted until that works', {
        name: f.name,
        size: f.size,
        got: sink.pos,
        error: deadline.passed ? `not done after ${Math.round(deadlineMs / 1000)} s` : failure instanceof Error ? failure.message.trim() : undefined,
      });
      return 'unknown';
    }
    const sha256 = sink.hash.digest('hex');
    this.rechecked.add(f.name);
    return this.stateChange(async () => {
      const settled = await this.loadSettled();
      if (settled.files[f.name] !== rec) return 'unknown'; // forgotten meanwhile
      if (rec.sha256 !== undefined && rec.sha256 !== sha256) {
        delete settled.files[f.name];
        await this.saveSettled();
        this.rechecked.delete(f.name);
        this.log.info('a settled file has new content under the same name and size; it is fetched again', { name: f.name, size: f.size, was: rec.sha256, now: sha256 });
        return 'changed';
      }
      rec.sha256 = sha256;
      rec.checkedAt = new Date().toISOString();
      await this.saveSettled();
      this.log.debug('settled file re-checked: same content', { name: f.name, size: f.size });
      return 'same';
    });
  }

  /** Forget what the server no longer has, so the state stays as small as the folder. */
  private async forgetVanished(files: Map<string, RemoteFile>, settled: SettledState): Promise<void> {
    for (const name of this.seen.keys()) if (!files.has(name)) this.seen.delete(name);
    for (const name of this.overSent.keys()) if (!files.has(name)) this.overSent.delete(name);
    for (const name of this.slow) if (!files.has(name)) this.slow.delete(name);
    await this.stateChange(async () => {
      const gone = Object.keys(settled.files).filter((n) => !files.has(n));
      if (gone.length === 0) return;
      for (const n of gone) delete settled.files[n];
      await this.saveSettled();
    });
  }

  /** The settled-files record, read once: a poll and a settle running side by side change the same object. */
  private loadSettled(): Promise<SettledState> {
    this.settledLoad ??= this.readSettled().catch((e: unknown) => {
      this.settledLoad = undefined;
      throw e;
    });
    return this.settledLoad;
  }

  private async readSettled(): Promise<SettledState> {
    let state: SettledState | undefined;
    try {
      state = await readJson<SettledState>(this.settledPath);
    } catch (e) {
      throw configError(`FTP source "${this.cfg.name}": ${this.settledPath} is not readable JSON: ${(e as Error).message}`, {
        subject: this.settledPath,
        reason: 'bad-state',
        hint: 'remove it to fetch every file on the server again',
      });
    }
    if (state !== undefined && (state.version !== 1 || typeof state.files !== 'object' || state.files === null)) {
      throw configError(`FTP source "${this.cfg.name}": ${this.settledPath} is not a settled-files record`, {
        subject: this.settledPath,
        reason: 'bad-state',
        hint: 'remove it to fetch every file on the server again',
      });
    }
    return state ?? { version: 1, files: {} };
  }

  /** Writes the record; only inside stateChange, so two writes never share the temporary file. */
  private async saveSettled(): Promise<void> {
    await mkdir(this.spoolDir, { recursive: true });
    await writeJsonAtomic(this.settledPath, await this.loadSettled());
  }

  private async readyFiles(): Promise<string[]> {
    const entries = await readdir(this.readyDir, { withFileTypes: true });
    return entries
      .filter((e) => e.isFile() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort()
      .map((n) => join(this.readyDir, n));
  }

  private warnOnce(key: string, msg: string, fields: Record<string, string | number | undefined>): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(msg, fields);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return false;
    throw e;
  }
}
