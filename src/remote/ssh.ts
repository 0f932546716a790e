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
import type { Duplex } from 'node:stream';
import ssh2, { type Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { Docker, asSocketLike, DEFAULT_SOCKET, type DockerClientOptions, type Transport } from '../docker/index.js';
import { AirlockError } from '../errors/index.js';
import { hostKeyCheck } from './host-key-check.js';
import { DEFAULT_SSH_PORT, hostLabel, type InventoryHost } from './inventory.js';
import { readPrivateKey } from './private-key.js';
import { connectError, remoteError } from './ssh-errors.js';

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
  const privateKey = await readPrivateKey(host);
  const check = await hostKeyCheck(host, opts.acceptNew);
  const serverHostKey = check.serverHostKey;
  const timeoutMs = opts.timeoutMs ?? host.timeoutMs;
  const config: ConnectConfig = {
    host: host.address,
    port: host.port,
    username: host.user,
    privateKey,
    readyTimeout: timeoutMs,
    keepaliveInterval: opts.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
    keepaliveCountMax: opts.keepaliveCountMax ?? DEFAULT_KEEPALIVE_COUNT_MAX,
    hostVerifier: check.hostVerifier as unknown as ConnectConfig['hostVerifier'],
    ...(serverHostKey ? { algorithms: { serverHostKey: serverHostKey as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] } } : {}),
  };

  const client = new ssh2.Client();
  // Never an unhandled 'error' (keepalive timeout, reset) between ready and the session's own listener.
  client.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => {
      client.off('ready', onReady);
      client.destroy();
      reject(check.refusal() ?? connectError(host, e, timeoutMs));
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

/** Connects, runs fn with the session, and closes it whatever happens. */
export async function withSession<T>(host: InventoryHost, opts: ConnectOptions, fn: (s: SshSession) => Promise<T>): Promise<T> {
  const s = await connectHost(host, opts);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}
