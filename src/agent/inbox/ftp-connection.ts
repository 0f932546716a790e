/**
 * The FTP source's connection to its server: logging in (password, TLS),
 * entering the folder, listing it, the deadline every transfer gets, and
 * turning the server's and the network's failures into 'remote' errors that
 * name the source and the server.
 */
import { readFile } from 'node:fs/promises';
import { Client, FTPError, FileType, type FileInfo } from 'basic-ftp';
import { AirlockError, configError, isAirlockError } from '../../errors/index.js';
import { safeName, type Endpoint, type FtpSourceConfig } from './ftp-settings.js';
import { errnoCode, type RemoteFile } from './ftp-spool.js';

const ANONYMOUS_PASSWORD = 'anonymous@';
/** The largest folder listing taken (some 50,000 entries); a listing is a transfer with a deadline like a file of this size. */
const LISTING_MAX_BYTES = 4 * 1024 * 1024;

export type WarnOnce = (key: string, msg: string, fields: Record<string, string | number | undefined>) => void;

/** Closes the connection after `ms`: an idle timeout alone lets a server trickle for ever. */
export function closeAfter(client: Client, ms: number): { readonly passed: boolean; clear(): void } {
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

export class FtpConnection {
  constructor(
    private readonly cfg: FtpSourceConfig,
    private readonly ep: Endpoint,
    private readonly minRate: number,
    private readonly warnOnce: WarnOnce,
  ) {}

  /** How long a transfer of `bytes` may take: the idle timeout, plus the bytes at the minimum rate. */
  deadlineMs(bytes: number): number {
    return this.cfg.timeoutMs + Math.ceil((bytes * 1000) / this.minRate);
  }

  /** Connects, logs in, enters the folder, runs `fn`, and always closes. Abort closes the connection. */
  async session(signal: AbortSignal | undefined, fn: (client: Client) => Promise<void>): Promise<void> {
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

  /** The plain files of the folder that matter (candidates and their markers), with modify times. */
  async listFolder(client: Client): Promise<Map<string, RemoteFile>> {
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
}
