/**
 * The settings of an FTP inbox source, checked without connecting and
 * without the FTP client: agent.yaml's parser runs the same checks as
 * FtpSource, so `agent --check-config` refuses whatever the agent would
 * refuse at start.
 */
export interface FtpSourceConfig {
  /** Source name for logs and the spool folder. */
  name: string;
  /** ftp://[user@]host[:port]/path/ or ftps://… (explicit TLS, AUTH TLS). The path is the remote folder. */
  url: string;
  /** Default 'anonymous' (or the user in the URL). */
  user?: string;
  /** File holding the password (never logged); default: an anonymous password. */
  passwordFile?: string;
  /** ftps only. */
  tls?: { caFile?: string; rejectUnauthorized?: boolean };
  /** Which remote file names are candidates. */
  match: (name: string) => boolean;
  /** 'stable': same size+modify time across `polls` consecutive polls (>=2); 'marker': NAME+suffix exists on the server. */
  complete: { mode: 'stable'; polls: number } | { mode: 'marker'; suffix: string };
  /** Delete the remote file (and marker) once the agent settled it. Default false: never write or delete on the server. */
  deleteAfter: boolean;
  /** Per-connection/command timeout: how long the server may stay silent. */
  timeoutMs: number;
  /**
   * Bytes per second a transfer must average: a download of N bytes is stopped
   * after timeoutMs + N / minRate seconds, however steadily it trickles.
   * Default DEFAULT_MIN_RATE.
   */
  minRate?: number;
  /**
   * A settled file the server lists without a modify time (no MLSD, no
   * MDTM) is fetched again into a hash at most this often, to see whether
   * new content came under the same name and size. Default DEFAULT_RECHECK_MS.
   */
  recheckMs?: number;
}

/** A settled file without a modify time costs one transfer an hour while it stays on the server. */
export const DEFAULT_RECHECK_MS = 3600_000;

/** 64 KiB/s: a 1 GiB bundle may take 4.5 hours before it is stopped (and resumed at the next poll). */
export const DEFAULT_MIN_RATE = 64 * 1024;

export interface Endpoint {
  secure: boolean;
  host: string;
  port: number;
  /** Remote folder as given in the URL (relative to the login folder unless it starts with /); '' = login folder. */
  folder: string;
  user: string;
  /** ftp://host:port/folder, without credentials: for logs and errors. */
  display: string;
}

/** One setting that cannot work, by its FtpSourceConfig key (`tls.caFile`, `complete.suffix`). */
export class FtpSettingError extends Error {
  constructor(
    readonly key: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'FtpSettingError';
  }
}

const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** A remote name that is safe to use as a local file name. */
export function safeName(name: string): boolean {
  return (
    name !== '' &&
    name !== '.' &&
    name !== '..' &&
    !name.startsWith('.') &&
    !/[/\\\x00-\x1f\x7f]/.test(name) &&
    Buffer.byteLength(name) <= 200
  );
}

/**
 * The name of a source that has none: its host and port as a source name may
 * be written (`ftp://127.0.0.1:42121/pub/` → `127.0.0.1-42121`).
 */
export function defaultFtpSourceName(url: string): string {
  let host = '';
  let port = '';
  try {
    const u = new URL(url);
    host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    port = u.port;
  } catch {
    // An unparsable URL is refused by checkFtpSettings, by its own key.
  }
  const name = [host, port]
    .filter((p) => p !== '')
    .join('-')
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '');
  return name === '' ? 'ftp' : name;
}

/** Checks every setting; returns where to connect, or throws FtpSettingError naming the first that cannot work. */
export function checkFtpSettings(cfg: FtpSourceConfig): Endpoint {
  const bad = (key: string, message: string, hint?: string) => new FtpSettingError(key, message, hint);
  if (typeof cfg.name !== 'string' || !SOURCE_NAME.test(cfg.name)) throw bad('name', 'must be a word of letters, digits, ".", "_" or "-"');
  if (typeof cfg.url !== 'string') throw bad('url', 'is required');
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(cfg.url)?.[1]?.toLowerCase();
  if (scheme !== 'ftp' && scheme !== 'ftps') {
    throw bad('url', `must be an ftp:// or ftps:// URL, got ${scheme ? `"${scheme}:"` : 'no scheme'}`, 'for example ftp://ftp.example.internal/drop/');
  }
  let url: URL;
  try {
    url = new URL(cfg.url);
  } catch {
    throw bad('url', 'is not a valid URL');
  }
  if (url.password) throw bad('url', 'must not carry a password', 'put the password in a file and name it in passwordFile');
  if (url.search || url.hash) throw bad('url', 'must not have a ?query or #fragment');
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw bad('url', 'has no host');
  const port = url.port ? Number(url.port) : 21;
  let folder: string;
  try {
    folder = decodeURIComponent(url.pathname).replace(/^\//, '');
  } catch {
    throw bad('url', 'has a badly escaped path');
  }
  if (folder.includes('\0') || /[\r\n]/.test(folder)) throw bad('url', 'has a control character in its path');
  let urlUser: string | undefined;
  try {
    urlUser = url.username ? decodeURIComponent(url.username) : undefined;
  } catch {
    throw bad('url', 'has a badly escaped user');
  }
  if (cfg.user !== undefined && (typeof cfg.user !== 'string' || cfg.user === '')) throw bad('user', 'must be a non-empty string');
  if (cfg.user !== undefined && urlUser !== undefined && cfg.user !== urlUser) {
    throw bad('user', `"${cfg.user}" differs from the user in url ("${urlUser}")`, 'name the user in one place');
  }
  const user = cfg.user ?? urlUser ?? 'anonymous';
  if (/[\r\n]/.test(user)) throw bad('user', 'has a control character');
  if (cfg.passwordFile !== undefined && (typeof cfg.passwordFile !== 'string' || cfg.passwordFile === '')) {
    throw bad('passwordFile', 'must be a path');
  }
  if (cfg.tls !== undefined) {
    if (scheme !== 'ftps') throw bad('tls', 'applies only to ftps:// URLs');
    if (cfg.tls.caFile !== undefined && (typeof cfg.tls.caFile !== 'string' || cfg.tls.caFile === '')) throw bad('tls.caFile', 'must be a path');
    if (cfg.tls.rejectUnauthorized !== undefined && typeof cfg.tls.rejectUnauthorized !== 'boolean') {
      throw bad('tls.rejectUnauthorized', 'must be true or false');
    }
  }
  if (typeof cfg.match !== 'function') throw bad('match', 'must be a function of the remote name');
  const c = cfg.complete as { mode?: unknown; polls?: unknown; suffix?: unknown } | undefined;
  if (!c || (c.mode !== 'stable' && c.mode !== 'marker')) throw bad('complete.mode', 'must be "stable" or "marker"');
  if (c.mode === 'stable' && !(Number.isInteger(c.polls) && (c.polls as number) >= 2)) {
    throw bad('complete.polls', 'must be a whole number of 2 or more', 'a file counts as complete when its size and modify time stay the same for this many polls');
  }
  if (c.mode === 'marker' && (typeof c.suffix !== 'string' || !safeName(`x${c.suffix}`) || c.suffix === '')) {
    throw bad('complete.suffix', 'must be a non-empty file name suffix such as ".done"');
  }
  if (typeof cfg.deleteAfter !== 'boolean') throw bad('deleteAfter', 'must be true or false');
  if (!(Number.isInteger(cfg.timeoutMs) && cfg.timeoutMs > 0)) throw bad('timeoutMs', 'must be a positive whole number of milliseconds');
  if (cfg.minRate !== undefined && !(Number.isSafeInteger(cfg.minRate) && cfg.minRate > 0)) {
    throw bad('minRate', 'must be a positive whole number of bytes per second', 'for example 64K');
  }
  if (cfg.recheckMs !== undefined && !(Number.isSafeInteger(cfg.recheckMs) && cfg.recheckMs > 0)) {
    throw bad('recheckMs', 'must be a positive whole number of milliseconds', 'for example 1h');
  }
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return { secure: scheme === 'ftps', host, port, folder, user, display: `${scheme}://${hostPart}:${port}/${folder}` };
}
