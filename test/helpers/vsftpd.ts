/**
 * A real vsftpd of the test's own on 127.0.0.1 (the recipe in the product
 * brief): anonymous access to a read-only root holding a writable `upload/`
 * folder, a free high control port and a small passive range, and a log of
 * every FTP command and transfer to assert on. Stopped by the pid it was
 * started with (its process group: the listener and its sessions).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface VsftpdOptions {
  /** anon_max_rate: bytes per second per session, to make transfers slow enough to interrupt. */
  maxRate?: number;
  /** anon_other_write_enable: let the anonymous user delete and rename in upload/ (default true). */
  allowDelete?: boolean;
  /** Accept only this anonymous password (secure_email_list_enable), to exercise a password file. */
  password?: string;
  /** Explicit FTPS (AUTH TLS) with a fresh self-signed certificate for 127.0.0.1, required for logins and data. */
  tls?: boolean;
}

export interface Vsftpd {
  port: number;
  pid: number;
  /** anon_root: read-only, owned by root. */
  root: string;
  /** `<root>/upload`: anonymous uploads land here. */
  uploadDir: string;
  /** ftp://127.0.0.1:PORT/upload/ (ftps://… with tls). */
  url: string;
  /** vsftpd's own log: every command, response and transfer. */
  logFile: string;
  /** With tls: the certificate to trust. */
  caFile?: string;
  stop(): Promise<void>;
}

/** Why the vsftpd tests cannot run here, or false. */
export function vsftpdSkipReason(): string | false {
  if (process.getuid?.() !== 0) return 'vsftpd needs root to chroot and drop to the ftp user';
  if (spawnSync('vsftpd', ['-v'], { stdio: 'ignore' }).error) return 'vsftpd is not installed (Debian package vsftpd)';
  if (spawnSync('curl', ['--version'], { stdio: 'ignore' }).error) return 'curl is not installed';
  if (ftpIds() === undefined) return 'no ftp user (created by the vsftpd package)';
  return false;
}

function ftpIds(): { uid: number; gid: number } | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('ftp:'));
  const f = line?.split(':');
  return f && f.length > 3 ? { uid: Number(f[2]), gid: Number(f[3]) } : undefined;
}

/** A port nobody listens on right now (the kernel's pick). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A run of `n` ports that are free right now. */
async function freeRange(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 12000);
    let ok = true;
    for (let p = base; p < base + n && ok; p++) ok = await portIsFree(p);
    if (ok) return base;
  }
  throw new Error('no free passive port range');
}

/** Resolves once the server sends its 220 greeting. */
async function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('error', () => done(false));
    s.once('data', (d) => done(d.toString().startsWith('220')));
  });
}

async function makeCert(dir: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const r = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
  await chmod(key, 0o600);
  return { cert, key };
}

/** Starts a vsftpd whose files live under `dir`. */
export async function startVsftpd(dir: string, opts: VsftpdOptions = {}): Promise<Vsftpd> {
  const ids = ftpIds();
  if (!ids) throw new Error('no ftp user');
  const base = join(dir, 'vsftpd');
  const root = join(base, 'root');
  const uploadDir = join(root, 'upload');
  const empty = join(base, 'empty');
  await mkdir(uploadDir, { recursive: true });
  await mkdir(empty, { recursive: true });
  // vsftpd refuses a chroot the user could write to; only upload/ is the ftp user's.
  await chown(root, 0, 0);
  await chmod(root, 0o555);
  await chown(uploadDir, ids.uid, ids.gid);
  await chmod(uploadDir, 0o755);
  const logFile = join(base, 'vsftpd.log');
  const tls = opts.tls ? await makeCert(base) : undefined;
  let emailFile: string | undefined;
  if (opts.password !== undefined) {
    emailFile = join(base, 'passwords');
    await writeFile(emailFile, `${opts.password}\n`, { mode: 0o600 });
  }

  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const pasv = await freeRange(6);
    const conf = join(base, 'vsftpd.conf');
    const lines = [
      'listen=YES',
      'listen_ipv6=NO',
      'listen_address=127.0.0.1',
      `listen_port=${port}`,
      'background=NO',
      'anonymous_enable=YES',
      'local_enable=NO',
      `anon_root=${root}`,
      'write_enable=YES',
      'anon_upload_enable=YES',
      'anon_mkdir_write_enable=NO',
      `anon_other_write_enable=${opts.allowDelete === false ? 'NO' : 'YES'}`,
      // Uploads readable by everyone: vsftpd serves anonymous users only world-readable files,
      // and the agent runs as an unprivileged user.
      'anon_umask=022',
      'seccomp_sandbox=NO',
      'pasv_enable=YES',
      'pasv_address=127.0.0.1',
      `pasv_min_port=${pasv}`,
      `pasv_max_port=${pasv + 5}`,
      `secure_chroot_dir=${empty}`,
      'xferlog_enable=YES',
      'xferlog_std_format=NO',
      'log_ftp_protocol=YES',
      `vsftpd_log_file=${logFile}`,
      'syslog_enable=NO',
      'dual_log_enable=NO',
      'use_localtime=NO',
      'max_per_ip=0',
      ...(opts.maxRate ? [`anon_max_rate=${opts.maxRate}`] : []),
      ...(emailFile ? ['secure_email_list_enable=YES', `email_password_file=${emailFile}`] : []),
      ...(tls
        ? [
            'ssl_enable=YES',
            'allow_anon_ssl=YES',
            'force_anon_logins_ssl=YES',
            'force_anon_data_ssl=YES',
            'require_ssl_reuse=NO',
            `rsa_cert_file=${tls.cert}`,
            `rsa_private_key_file=${tls.key}`,
          ]
        : []),
    ];
    await writeFile(conf, `${lines.join('\n')}\n`);
    const errFile = join(base, `vsftpd.stderr.${attempt}`);
    const err = await open(errFile, 'w');
    const child: ChildProcess = spawn('vsftpd', [conf], { stdio: ['ignore', err.fd, err.fd], detached: true });
    await err.close();
    const pid = child.pid;
    if (pid === undefined) throw new Error('vsftpd did not start');
    let exited = false;
    child.once('exit', () => (exited = true));
    const deadline = Date.now() + 10_000;
    while (!exited && Date.now() < deadline && !(await greets(port))) await sleep(50);
    if (!exited && Date.now() < deadline) {
      const stop = async () => {
        if (exited) return;
        try {
          process.kill(-pid, 'SIGTERM'); // the group we started: the listener and its session processes
        } catch {
          return;
        }
        const until = Date.now() + 5000;
        while (!exited && Date.now() < until) await sleep(20);
        if (!exited) process.kill(-pid, 'SIGKILL');
      };
      const scheme = tls ? 'ftps' : 'ftp';
      return { port, pid, root, uploadDir, url: `${scheme}://127.0.0.1:${port}/upload/`, logFile, ...(tls ? { caFile: tls.cert } : {}), stop };
    }
    if (!exited) process.kill(-pid, 'SIGKILL');
    const why = existsSync(errFile) ? (await readFile(errFile, 'utf8')).trim() : '';
    if (!/bind|address already in use/i.test(why)) throw new Error(`vsftpd did not come up: ${why || 'no greeting'}`);
  }
  throw new Error('vsftpd: no free port after 5 attempts');
}

export interface LogEntry {
  pid: number;
  kind: 'command' | 'response' | 'transfer' | 'other';
  text: string;
}

/** The lines of a vsftpd log: `[pid N] … FTP command: Client "…", "RETR x"`. */
export async function readVsftpdLog(logFile: string): Promise<LogEntry[]> {
  const text = existsSync(logFile) ? await readFile(logFile, 'utf8') : '';
  const out: LogEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /\[pid (\d+)\](?: \[[^\]]*\])? (.*)$/.exec(line);
    if (!m) continue;
    const rest = m[2]!;
    const cmd = /^FTP command: Client "[^"]*", "(.*)"$/.exec(rest);
    const resp = /^FTP response: Client "[^"]*", "(.*)"$/.exec(rest);
    if (cmd) out.push({ pid: Number(m[1]), kind: 'command', text: cmd[1]! });
    else if (resp) out.push({ pid: Number(m[1]), kind: 'response', text: resp[1]! });
    else if (/^(OK|FAIL) (DOWNLOAD|UPLOAD|DELETE|RENAME|MKDIR|RMDIR)/.test(rest)) out.push({ pid: Number(m[1]), kind: 'transfer', text: rest });
    else out.push({ pid: Number(m[1]), kind: 'other', text: rest });
  }
  return out;
}

/** The FTP commands in the log (verb and argument), e.g. `RETR big.bin`. */
export async function ftpCommands(logFile: string): Promise<string[]> {
  return (await readVsftpdLog(logFile)).filter((e) => e.kind === 'command').map((e) => e.text);
}

/** Finished downloads of `remotePath` (e.g. `/upload/big.bin`) with the bytes each one sent. */
export async function downloads(logFile: string, remotePath: string): Promise<{ ok: boolean; bytes: number }[]> {
  const out: { ok: boolean; bytes: number }[] = [];
  for (const e of await readVsftpdLog(logFile)) {
    const m = /^(OK|FAIL) DOWNLOAD: Client "[^"]*", "(.*)", (\d+) bytes/.exec(e.text);
    if (m && m[2] === remotePath) out.push({ ok: m[1] === 'OK', bytes: Number(m[3]) });
  }
  return out;
}

export interface Upload {
  child: ChildProcess;
  /** Resolves when curl finished the upload, rejects when it failed. */
  done: Promise<void>;
  /** Whether curl has exited. */
  readonly finished: boolean;
}

/**
 * Uploads `file` to `url` (a full ftp://…/upload/NAME) with curl, throttled to
 * `rateBytesPerSec` when given, so a test can watch an upload in progress.
 */
export function slowUpload(file: string, url: string, rateBytesPerSec?: number): Upload {
  const args = ['-sS', '--ftp-pasv', '-T', file, url];
  if (rateBytesPerSec !== undefined) args.unshift('--limit-rate', String(rateBytesPerSec));
  const child = spawn('curl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const state = { finished: false };
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      state.finished = true;
      if (code === 0) resolve();
      else reject(new Error(`curl upload of ${file} to ${url} failed (${signal ?? code}): ${stderr.trim()}`));
    });
  });
  return {
    child,
    done,
    get finished() {
      return state.finished;
    },
  };
}

/** A plain (fast) upload with curl. */
export async function upload(file: string, url: string): Promise<void> {
  await slowUpload(file, url).done;
}
