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
import { mkdir, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { FTPError, type Client } from 'basic-ftp';
import { AirlockError, configError } from '../../errors/index.js';
import type { Logger } from '../log.js';
import { FtpConnection } from './ftp-connection.js';
import { download, fetchHash, type TransferContext } from './ftp-download.js';
import { checkFtpSettings, DEFAULT_MIN_RATE, DEFAULT_RECHECK_MS, FtpSettingError, safeName, type Endpoint, type FtpSourceConfig } from './ftp-settings.js';
import { SettledRecord, type SettledFile, type SettledState } from './ftp-settled.js';
import { errnoCode, exists, Interrupted, partialMetaPath, readJson, sameId, sameListing, type PartialMeta, type RemoteFile, type RemoteId, type WaitingMeta } from './ftp-spool.js';

export type { FtpSourceConfig } from './ftp-settings.js';

/** What a re-check of a settled file found on the server: unknown when the transfer did not complete. */
type Recheck = 'same' | 'changed' | 'unknown';

export class FtpSource {
  private readonly connection: FtpConnection;
  private readonly log: Logger;
  private readonly readyDir: string;
  private readonly metaDir: string;
  /** settled.json; its changes run one at a time and never wait for the server. */
  private readonly settledRecord: SettledRecord;
  /** The spool, the log and what the source remembers between polls, as the transfers of one file see them. */
  private readonly transfers: TransferContext;
  /** 'stable' mode: what each candidate looked like at the last polls, and for how many in a row. */
  private readonly seen = new Map<string, RemoteId & { count: number }>();
  /** Warnings said once per remote file version, not at every poll. */
  private readonly warned = new Set<string>();
  /** Files whose server sent more than it listed, as listed then: not fetched again until the listing changes. */
  private readonly overSent = new Map<string, RemoteId>();
  /** Files stopped at their deadline: fetched after the others at the next poll. */
  private readonly slow = new Set<string>();
  private readonly recheckMs: number;
  /** Settled files whose content was re-checked in the current connection: once is enough. */
  private rechecked = new Set<string>();
  /** The connection lane: polls and deletions on the server, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly cfg: FtpSourceConfig,
    private readonly spoolDir: string,
    log: Logger,
  ) {
    let ep: Endpoint;
    try {
      ep = checkFtpSettings(cfg);
    } catch (e) {
      if (!(e instanceof FtpSettingError)) throw e;
      throw configError(`FTP source "${typeof cfg?.name === 'string' ? cfg.name : ''}": ${e.key}: ${e.message}`, {
        subject: e.key,
        reason: 'bad-config',
        ...(e.hint ? { hint: e.hint } : {}),
      });
    }
    const minRate = cfg.minRate ?? DEFAULT_MIN_RATE;
    const warnOnce = this.warnOnce.bind(this);
    this.recheckMs = cfg.recheckMs ?? DEFAULT_RECHECK_MS;
    this.log = log.with({ source: cfg.name });
    this.readyDir = join(spoolDir, 'ready');
    this.metaDir = join(spoolDir, 'meta');
    this.settledRecord = new SettledRecord(cfg.name, spoolDir);
    this.connection = new FtpConnection(cfg, ep, minRate, warnOnce);
    this.transfers = {
      source: cfg.name,
      spoolDir,
      readyDir: this.readyDir,
      metaDir: this.metaDir,
      log: this.log,
      minRate,
      connection: this.connection,
      warnOnce,
      seen: this.seen,
      overSent: this.overSent,
      slow: this.slow,
    };
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
      const settled = await this.settledRecord.load();
      await this.session(signal, async (client) => {
        const files = await this.connection.listFolder(client);
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
    const recorded = await this.settledRecord.change(async () => {
      const metaPath = join(this.metaDir, `${name}.json`);
      const meta = await readJson<WaitingMeta>(metaPath).catch(() => undefined);
      const settled = await this.settledRecord.load();
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
      await this.settledRecord.save();
      await rm(metaPath, { force: true });
      this.log.info('settled', { name, bytes: meta.size });
      return true;
    });
    if (!recorded) return;
    if (await exists(localPath)) this.log.warn('settled file is still in ready/; it will be handed out again', { name, path: localPath });
    if (!this.cfg.deleteAfter) return;
    void this.exclusive(async () => {
      try {
        const settled = await this.settledRecord.load();
        await this.session(undefined, async (client) => {
          const files = await this.connection.listFolder(client);
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

  /** Connects, logs in, enters the folder, runs `fn` with a fresh re-check memory, and always closes. */
  private session(signal: AbortSignal | undefined, fn: (client: Client) => Promise<void>): Promise<void> {
    return this.connection.session(signal, async (client) => {
      this.rechecked = new Set();
      await fn(client);
    });
  }

  // ---- downloads ----------------------------------------------------------

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
      const partial = await readJson<PartialMeta>(partialMetaPath(this.spoolDir, name)).catch(() => undefined);
      // A partial of this very upload was complete when it started: resume without waiting again.
      const resumable = partial !== undefined && sameId(partial, f) && partial.modify === f.modify;
      const complete = this.isComplete(f, files) || resumable;
      if (!complete) {
        this.log.debug('not complete yet', { name, bytes: f.size });
        continue;
      }
      signal?.throwIfAborted();
      try {
        await download(this.transfers, client, f, partial, signal);
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
    const sha256 = await fetchHash(this.transfers, client, f);
    if (sha256 === undefined) return 'unknown';
    this.rechecked.add(f.name);
    return this.settledRecord.change(async () => {
      const settled = await this.settledRecord.load();
      if (settled.files[f.name] !== rec) return 'unknown'; // forgotten meanwhile
      if (rec.sha256 !== undefined && rec.sha256 !== sha256) {
        delete settled.files[f.name];
        await this.settledRecord.save();
        this.rechecked.delete(f.name);
        this.log.info('a settled file has new content under the same name and size; it is fetched again', { name: f.name, size: f.size, was: rec.sha256, now: sha256 });
        return 'changed';
      }
      rec.sha256 = sha256;
      rec.checkedAt = new Date().toISOString();
      await this.settledRecord.save();
      this.log.debug('settled file re-checked: same content', { name: f.name, size: f.size });
      return 'same';
    });
  }

  /** Forget what the server no longer has, so the state stays as small as the folder. */
  private async forgetVanished(files: Map<string, RemoteFile>, settled: SettledState): Promise<void> {
    for (const name of this.seen.keys()) if (!files.has(name)) this.seen.delete(name);
    for (const name of this.overSent.keys()) if (!files.has(name)) this.overSent.delete(name);
    for (const name of this.slow) if (!files.has(name)) this.slow.delete(name);
    await this.settledRecord.change(async () => {
      const gone = Object.keys(settled.files).filter((n) => !files.has(n));
      if (gone.length === 0) return;
      for (const n of gone) delete settled.files[n];
      await this.settledRecord.save();
    });
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
