/**
 * SSH from the jump box to the inventory's hosts (ssh2): one connection per
 * host with keepalive and the host's timeout, host keys checked against a
 * known_hosts file (strict unless --accept-new), and the host's Docker
 * Engine API reached through the connection by forwarding its unix socket
 * (`direct-streamlocal@openssh.com`), so no TCP port of the engine is opened.
 *
 *   const s = await connectHost(host, { acceptNew: false });
 *   try { await s.docker().system.info(); await s.exec('uname -a'); } finally { await s.close(); }
 *
 * Every failure is an AirlockError of kind 'remote' (exit 17) that names the
 * host and its address, with a stable `reason` and a hint.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { makeDirs } from '../store/make-dirs.js';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import ssh2, { type Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { Docker, asSocketLike, DEFAULT_SOCKET, type DockerClientOptions, type Transport } from '../docker/index.js';
import { AirlockError, asAirlockError, configError } from '../errors/index.js';
import { DEFAULT_SSH_PORT, hostPort, type InventoryHost } from './inventory.js';

export const DEFAULT_PARALLEL = 8;
export const DEFAULT_KEEPALIVE_MS = 10_000;
export const DEFAULT_KEEPALIVE_COUNT_MAX = 3;

export interface ConnectOptions {
  /** Trust an unknown host's key on first contact and append it to known_hosts. A changed key is never accepted. */
  acceptNew?: boolean;
  /** Interval of SSH keepalive pings (default 10 s); the connection is dropped after keepaliveCountMax unanswered ones. */
  keepaliveMs?: number;
  keepaliveCountMax?: number;
  /** Connect + handshake + authentication timeout; default: the host's `timeout` from the inventory. */
  timeoutMs?: number;
}

export interface ExecOptions {
  /** Written to the command's stdin, which is then closed. */
  input?: string | Buffer;
  /** Kill the command (and reject with reason `timeout`) after this long. */
  timeoutMs?: number;
}

export interface ExecResult {
  /** Exit status; 255 when the command was killed by a signal. */
  code: number;
  signal?: string;
  stdout: string;
  stderr: string;
}

/** `h2 (10.99.0.12)`, with `:port` when it is not 22: how every message names a host. */
export function hostLabel(host: Pick<InventoryHost, 'name' | 'address' | 'port'>): string {
  return `${host.name} (${host.address}${host.port === DEFAULT_SSH_PORT ? '' : `:${host.port}`})`;
}

const remoteError = (host: InventoryHost, message: string, reason: string, hint?: string, cause?: unknown) =>
  new AirlockError('remote', `${hostLabel(host)}: ${message}`, {
    reason,
    subject: host.name,
    ...(hint === undefined ? {} : { hint }),
    ...(cause === undefined ? {} : { cause }),
  });

/** A connected host. Close it when done; close() also closes the Docker clients it made. */
export class SshSession {
  private readonly dockers = new Set<Docker>();
  private closedBy: Error | undefined;
  private isClosed = false;

  constructor(
    readonly host: InventoryHost,
    readonly client: Client,
  ) {
    client.on('error', (e: Error) => {
      this.closedBy ??= e;
    });
    client.on('close', () => {
      this.isClosed = true;
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** `ssh://root@10.99.0.12` (`:port` when not 22): names the remote engine in Docker errors. */
  get endpoint(): string {
    const h = this.host;
    return `ssh://${h.user}@${h.address}${h.port === DEFAULT_SSH_PORT ? '' : `:${h.port}`}`;
  }

  private lost(what: string): AirlockError {
    const why = this.closedBy ? ` (${this.closedBy.message})` : '';
    return remoteError(this.host, `the SSH connection was lost${why} while ${what}`, 'connection-lost', 'check that the host is up and sshd running, then run again');
  }

  /** Runs a command through the user's shell on the host. A non-zero exit is a result, not an error. */
  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      let channel: ClientChannel | undefined;
      let timer: NodeJS.Timeout | undefined;
      let done = false;
      const finish = (f: () => void) => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        f();
      };
      if (opts.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          finish(() => {
            try {
              channel?.signal('KILL');
              channel?.close();
            } catch {
              // the channel may already be gone
            }
            reject(remoteError(this.host, `\`${command}\` did not finish within ${Math.round(opts.timeoutMs! / 1000)} s`, 'timeout'));
          });
        }, opts.timeoutMs);
      }
      try {
        this.client.exec(command, (err, stream) => {
          if (err) {
            finish(() => reject(this.isClosed ? this.lost(`starting \`${command}\``) : remoteError(this.host, `cannot run \`${command}\`: ${err.message}`, 'exec-failed', undefined, err)));
            return;
          }
          channel = stream;
          const out: Buffer[] = [];
          const errOut: Buffer[] = [];
          let code: number | undefined;
          let signal: string | undefined;
          stream.on('data', (b: Buffer) => out.push(b));
          stream.stderr.on('data', (b: Buffer) => errOut.push(b));
          stream.on('exit', (c: number | null, s?: string) => {
            if (typeof c === 'number') code = c;
            if (s) signal = s;
          });
          stream.on('close', () => {
            finish(() => {
              if (code === undefined && signal === undefined) {
                reject(this.lost(`running \`${command}\``));
                return;
              }
              resolve({
                code: code ?? 255,
                ...(signal === undefined ? {} : { signal }),
                stdout: Buffer.concat(out).toString('utf8'),
                stderr: Buffer.concat(errOut).toString('utf8'),
              });
            });
          });
          stream.on('error', () => {
            // reported through close
          });
          stream.end(opts.input ?? undefined);
        });
      } catch {
        finish(() => reject(this.lost(`starting \`${command}\``)));
      }
    });
  }

  /** An SFTP session on the connection; end() it when done. */
  sftp(): Promise<SFTPWrapper> {
    return new Promise((resolve, reject) => {
      try {
        this.client.sftp((err, sftp) => {
          if (err) reject(this.isClosed ? this.lost('opening SFTP') : remoteError(this.host, `cannot open SFTP: ${err.message}`, 'sftp-failed', 'is `Subsystem sftp` configured in the host\'s sshd_config?', err));
          else resolve(sftp);
        });
      } catch {
        reject(this.lost('opening SFTP'));
      }
    });
  }

  /** A stream to a unix socket on the host, through the connection. */
  forwardUnixSocket(path: string): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      try {
        this.client.openssh_forwardOutStreamLocal(path, (err, stream) => {
          if (!err) {
            resolve(stream);
            return;
          }
          if (this.isClosed) {
            reject(this.lost(`opening ${path}`));
            return;
          }
          if ((err as Error & { reason?: unknown }).reason === 1) {
            // SSH_OPEN_ADMINISTRATIVELY_PROHIBITED: the host's sshd does not allow it.
            reject(
              remoteError(this.host, `sshd refuses to forward ${path} to the jump box`, 'forwarding-refused', "set `AllowStreamLocalForwarding yes` (OpenSSH's default) in the host's sshd_config", err),
            );
            return;
          }
          // Most often the socket is missing or refuses (dockerd down or restarting):
          // a plain error, so the Docker client reports the engine unreachable and retries.
          reject(new Error(`${hostLabel(this.host)}: cannot open ${path} over SSH: ${err.message.replace(/^\(SSH\) /, '')}`));
        });
      } catch {
        reject(this.lost(`opening ${path}`));
      }
    });
  }

  /** A Transport for the project's Docker client: each connection is a forwarded channel to the host's socket. */
  dockerTransport(socketPath: string = DEFAULT_SOCKET): Transport {
    return async (): Promise<Duplex> => asSocketLike(await this.forwardUnixSocket(socketPath));
  }

  /** The project's Docker client on the host's /var/run/docker.sock, over this connection. */
  docker(opts: DockerClientOptions & { socketPath?: string } = {}): Docker {
    const { socketPath, ...rest } = opts;
    const d = new Docker({
      transport: this.dockerTransport(socketPath),
      endpoint: this.endpoint,
      retry: { maxElapsedMs: Math.max(this.host.timeoutMs, 5_000) },
      ...rest,
    });
    this.dockers.add(d);
    return d;
  }

  /** Closes the Docker clients made here and the connection. Safe to call twice. */
  async close(): Promise<void> {
    const dockers = [...this.dockers];
    this.dockers.clear();
    await Promise.all(
      dockers.map((d) =>
        Promise.race([d.close(), new Promise((r) => setTimeout(r, 2_000).unref())]).then(() => d.client.destroy()).catch(() => undefined),
      ),
    );
    if (this.isClosed) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.client.destroy();
        resolve();
      }, 2_000);
      t.unref();
      this.client.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      this.client.end();
    });
  }
}

/**
 * Connects to the host as its inventory says: key authentication, the host
 * key checked against its known_hosts file, keepalive on.
 */
export async function connectHost(host: InventoryHost, opts: ConnectOptions = {}): Promise<SshSession> {
  let privateKey: Buffer;
  try {
    privateKey = await readFile(host.keyFile);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    throw configError(`${hostLabel(host)}: cannot read the SSH key ${host.keyFile}: ${why}`, {
      reason: 'ssh-key',
      subject: host.name,
      hint: 'fix key: in hosts.yml (relative paths are relative to the inventory file)',
    });
  }
  const parsed = ssh2.utils.parseKey(privateKey);
  if (!(parsed instanceof Error) && !parsed.isPrivateKey()) {
    throw configError(`${hostLabel(host)}: ${host.keyFile} is a public key; key: must name the private key`, {
      reason: 'ssh-key',
      subject: host.name,
      hint: `use ${host.keyFile.replace(/\.pub$/, '')} (without .pub)`,
    });
  }
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase/i.test(parsed.message);
    throw configError(`${hostLabel(host)}: ${host.keyFile} is not a usable SSH private key: ${parsed.message}`, {
      reason: 'ssh-key',
      subject: host.name,
      hint: encrypted ? 'airlock needs an unencrypted key file (keep it root-only on the jump box)' : 'give the private key (OpenSSH or PEM format), not the .pub file',
    });
  }

  const known = await readKnownHosts(host.knownHostsFile);
  const hostString = hostPort(host).toLowerCase();
  const entries = known.filter((k) => hostMatches(k.hosts, hostString));
  const trusted = entries.filter((k) => k.marker === undefined);
  const revoked = entries.filter((k) => k.marker === '@revoked');
  let refusal: AirlockError | undefined;

  const hostVerifier = (key: Buffer, verify: (ok: boolean) => void): void => {
    const type = keyType(key);
    const fp = fingerprint(key);
    const offered = `${type} ${fp}`;
    if (revoked.some((k) => k.key.equals(key))) {
      refusal = remoteError(host, `the host offered ${offered}, which ${host.knownHostsFile} marks @revoked`, 'host-key-revoked', 'the host must get a new host key; airlock never connects with a revoked one');
      verify(false);
      return;
    }
    const match = trusted.find((k) => k.key.equals(key));
    if (match) {
      verify(true);
      return;
    }
    if (trusted.length > 0) {
      const where = trusted.map((k) => `${host.knownHostsFile}:${k.line}`).join(', ');
      refusal = remoteError(
        host,
        `HOST KEY CHANGED: the host offered ${offered}, but ${where} has a different key for ${hostString}; refusing to connect`,
        'host-key-mismatch',
        `someone may be intercepting the connection. If the host was reinstalled, check its new fingerprint on its console (ssh-keygen -lf /etc/ssh/ssh_host_${type.replace(/^ssh-/, '')}_key.pub), then remove the old entry (ssh-keygen -R '${hostString}' -f ${host.knownHostsFile}). --accept-new never replaces a known key`,
      );
      verify(false);
      return;
    }
    if (!opts.acceptNew) {
      refusal = remoteError(
        host,
        `unknown host key: ${host.knownHostsFile} has no key for ${hostString} (the host offered ${offered})`,
        'unknown-host-key',
        `check that fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then run again with --accept-new to add it to ${host.knownHostsFile}, or add the host's key there yourself`,
      );
      verify(false);
      return;
    }
    appendKnownHost(host.knownHostsFile, `${hostString} ${type} ${key.toString('base64')}`).then(
      () => verify(true),
      (e: unknown) => {
        refusal = remoteError(host, `cannot add its key to ${host.knownHostsFile}: ${(e as Error).message}`, 'known-hosts-write', 'make the known_hosts file (and its folder) writable, or add the key yourself');
        verify(false);
      },
    );
  };

  const serverHostKey = hostKeyAlgorithms(trusted.map((k) => k.type));
  const timeoutMs = opts.timeoutMs ?? host.timeoutMs;
  const config: ConnectConfig = {
    host: host.address,
    port: host.port,
    username: host.user,
    privateKey,
    readyTimeout: timeoutMs,
    keepaliveInterval: opts.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
    keepaliveCountMax: opts.keepaliveCountMax ?? DEFAULT_KEEPALIVE_COUNT_MAX,
    hostVerifier: hostVerifier as unknown as ConnectConfig['hostVerifier'],
    ...(serverHostKey ? { algorithms: { serverHostKey: serverHostKey as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] } } : {}),
  };

  const client = new ssh2.Client();
  // Never an unhandled 'error' (keepalive timeout, reset) between ready and the session's own listener.
  client.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => {
      client.off('ready', onReady);
      client.destroy();
      reject(refusal ?? connectError(host, e, timeoutMs));
    };
    const onReady = () => {
      client.off('error', onError);
      resolve();
    };
    client.once('ready', onReady);
    client.once('error', onError);
    try {
      client.connect(config);
    } catch (e) {
      client.off('error', onError);
      client.off('ready', onReady);
      reject(connectError(host, e as Error, timeoutMs));
    }
  });
  return new SshSession(host, client);
}

/** Maps what ssh2 and the socket report to a reason an operator can act on. */
function connectError(host: InventoryHost, e: Error, timeoutMs: number): AirlockError {
  const err = e as Error & { code?: string; level?: string };
  const at = `port ${host.port}`;
  switch (err.code) {
    case 'ECONNREFUSED':
      return remoteError(host, `connection refused on ${at}`, 'connection-refused', `is sshd running on ${host.name} and listening on ${host.address} ${at}? Check address and port in the inventory`, e);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
      return remoteError(host, `unreachable (${err.code})`, 'unreachable', `is ${host.name} up, and is ${host.address} the right address? The jump box has no route to it`, e);
    case 'ETIMEDOUT':
      return remoteError(host, `no SSH answer within ${Math.round(timeoutMs / 1000)} s (${err.code})`, 'timeout', 'is the host up and reachable from the jump box? For a slow link, raise timeout: in the inventory', e);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return remoteError(host, `cannot resolve ${host.address} (${err.code})`, 'unknown-address', 'fix address: in the inventory (an IP address needs no DNS)', e);
    case 'ECONNRESET':
    case 'EPIPE':
      return remoteError(host, `the connection was closed during the SSH handshake (${err.code})`, 'connection-lost', `is it sshd that listens on ${at}? Check its log (MaxStartups, AllowUsers, a firewall)`, e);
  }
  if (err.level === 'client-timeout') {
    return remoteError(host, `no SSH answer within ${Math.round(timeoutMs / 1000)} s (${err.message})`, 'timeout', 'is the host up and reachable from the jump box? For a slow link, raise timeout: in the inventory', e);
  }
  if (err.level === 'client-authentication') {
    return remoteError(
      host,
      `authentication as ${host.user} failed with key ${host.keyFile}`,
      'auth-failed',
      `add the public key (${host.keyFile}.pub) to ~${host.user}/.ssh/authorized_keys on ${host.name}, or fix user: and key: in the inventory`,
      e,
    );
  }
  if (/before handshake/i.test(err.message)) {
    return remoteError(host, `the connection was closed before the SSH handshake (${err.message})`, 'connection-lost', `is it sshd that listens on ${at}? Check its log (MaxStartups, AllowUsers, a firewall)`, e);
  }
  if (err.level === 'handshake') {
    return remoteError(host, `SSH handshake failed: ${err.message}`, 'handshake-failed', 'the host and the jump box share no key exchange, cipher or host key algorithm', e);
  }
  return remoteError(host, `SSH connection failed: ${err.message}`, 'ssh-error', undefined, e);
}

// ---- known_hosts

export interface KnownHostEntry {
  marker?: '@revoked' | '@cert-authority';
  /** The host patterns field: `addr`, `[addr]:port`, comma lists, wildcards, or a `|1|salt|hash` hash. */
  hosts: string;
  type: string;
  key: Buffer;
  /** 1-based line in the file. */
  line: number;
}

/** Parses a known_hosts file; a missing file is an empty list. */
export async function readKnownHosts(file: string): Promise<KnownHostEntry[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw configError(`cannot read known_hosts file ${file}: ${(e as Error).message}`, { reason: 'known-hosts', subject: file });
  }
  return parseKnownHosts(text);
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/);
    if (fields[0] === undefined || fields[0] === '' || fields[0].startsWith('#')) return;
    let marker: KnownHostEntry['marker'];
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') marker = fields.shift() as KnownHostEntry['marker'];
    else if (fields[0].startsWith('@')) return;
    const [hosts, type, b64] = fields;
    if (!hosts || !type || !b64) return;
    const key = Buffer.from(b64, 'base64');
    if (key.length === 0) return;
    out.push({ ...(marker ? { marker } : {}), hosts, type, key, line: i + 1 });
  });
  return out;
}

/** Whether a known_hosts host field names `hostString` (`addr` or `[addr]:port`), as OpenSSH matches it. */
export function hostMatches(field: string, hostString: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const want = Buffer.from(hash, 'base64');
    const got = createHmac('sha1', Buffer.from(salt, 'base64')).update(hostString).digest();
    return want.length === got.length && timingSafeEqual(want, got);
  }
  let matched = false;
  for (const pattern of field.toLowerCase().split(',')) {
    const negated = pattern.startsWith('!');
    const p = negated ? pattern.slice(1) : pattern;
    const re = new RegExp(`^${p.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\[/g, '\\[').replace(/\]/g, '\\]').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    if (re.test(hostString)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** The key type named inside an SSH wire-format public key. */
export function keyType(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const n = key.readUInt32BE(0);
  return key.subarray(4, 4 + n).toString('latin1');
}

/** `SHA256:…`, as ssh-keygen -l prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

const ALGORITHMS_BY_KEY_TYPE: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  'ssh-dss': ['ssh-dss'],
};

/**
 * When known_hosts has keys for the host, ask only for those key types, so a
 * host that also has another type of key is checked against the one we know
 * (as OpenSSH orders its algorithms). None known, or a type ssh2 lacks: ssh2's default.
 */
function hostKeyAlgorithms(types: string[]): string[] | undefined {
  if (types.length === 0) return undefined;
  const algos = [...new Set(types.flatMap((t) => ALGORITHMS_BY_KEY_TYPE[t] ?? []))];
  return algos.length > 0 && types.every((t) => t in ALGORITHMS_BY_KEY_TYPE) ? algos : undefined;
}

const appending = new Map<string, Promise<void>>();

/** Appends one line, serialised per file within this process; creates the file 0600 (and its folder 0700). */
export function appendKnownHost(file: string, line: string): Promise<void> {
  const next = (appending.get(file) ?? Promise.resolve()).then(async () => {
    makeDirs(dirname(file), { mode: 0o700, what: 'folder of known hosts file' });
    const fh = await open(file, 'a+', 0o600);
    try {
      const { size } = await fh.stat();
      let sep = '';
      if (size > 0) {
        const last = Buffer.alloc(1);
        await fh.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) sep = '\n';
      }
      await fh.appendFile(`${sep}${line}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
  appending.set(
    file,
    next.catch(() => undefined),
  );
  return next;
}

// ---- many hosts

export type HostOutcome<T> = { host: InventoryHost; ok: true; value: T } | { host: InventoryHost; ok: false; error: AirlockError };

/**
 * Runs fn for every host, at most `parallel` at a time (default 8). One
 * host's failure never stops the others: each outcome, in the hosts' order,
 * is ok with a value or not ok with the error.
 */
export async function forEachHost<T>(
  hosts: readonly InventoryHost[],
  parallel: number | undefined,
  fn: (host: InventoryHost, index: number) => Promise<T>,
): Promise<HostOutcome<T>[]> {
  const limit = Math.max(1, Math.floor(parallel ?? DEFAULT_PARALLEL));
  const results = new Array<HostOutcome<T>>(hosts.length);
  let next = 0;
  const worker = async () => {
    while (next < hosts.length) {
      const i = next++;
      const host = hosts[i]!;
      try {
        results[i] = { host, ok: true, value: await fn(host, i) };
      } catch (e) {
        results[i] = { host, ok: false, error: asAirlockError(e) };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, hosts.length) }, worker));
  return results;
}

/** Connects, runs fn with the session, and closes it whatever happens. */
export async function withSession<T>(host: InventoryHost, opts: ConnectOptions, fn: (s: SshSession) => Promise<T>): Promise<T> {
  const s = await connectHost(host, opts);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}
