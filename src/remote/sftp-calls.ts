/**
 * The ssh2 calls the upload makes, as promises: a command on the host
 * (output capped) and the SFTP requests, each resolving or rejecting once.
 * A call that throws at once (the channel is gone) rejects its promise: the
 * Promise executor turns the throw into the rejection.
 */
import type { Client, ClientChannel, SFTPWrapper, Stats } from 'ssh2';

export interface ExecOutcome {
  code: number | null;
  signal: string | undefined;
  stdout: string;
  stderr: string;
}

const MAX_OUTPUT = 64 * 1024;

export function execOnHost(client: Client, cmd: string): Promise<ExecOutcome> {
  return new Promise((resolve, reject) => {
    const onChannel = (err: Error | undefined, ch: ClientChannel): void => {
      if (err) {
        reject(err);
        return;
      }
      const out: Buffer[] = [];
      const errs: Buffer[] = [];
      let outLen = 0;
      let errLen = 0;
      let code: number | null = null;
      let sig: string | undefined;
      ch.on('data', (b: Buffer) => {
        if (outLen < MAX_OUTPUT) out.push(b);
        outLen += b.length;
      });
      ch.stderr.on('data', (b: Buffer) => {
        if (errLen < MAX_OUTPUT) errs.push(b);
        errLen += b.length;
      });
      ch.on('exit', (c: number | null, s?: string) => {
        code = c;
        sig = s ?? undefined;
      });
      ch.on('close', () => {
        resolve({ code, signal: sig, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errs).toString('utf8') });
      });
      ch.on('error', reject);
      ch.end();
    };
    client.exec(cmd, onChannel);
  });
}

export function openSftp(client: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp))));
}

export function lstatOrNull(sftp: SFTPWrapper, path: string): Promise<Stats | null> {
  return new Promise((resolve, reject) => {
    sftp.lstat(path, (err, st) => {
      if (!err) resolve(st);
      else if ((err as { code?: unknown }).code === 2) resolve(null); // NO_SUCH_FILE
      else reject(err);
    });
  });
}

export function sftpStat(sftp: SFTPWrapper, path: string): Promise<Stats> {
  return new Promise((resolve, reject) => sftp.stat(path, (err, st) => (err ? reject(err) : resolve(st))));
}

export function sftpOpen(sftp: SFTPWrapper, path: string, flags: 'w' | 'r+'): Promise<Buffer> {
  return new Promise((resolve, reject) => sftp.open(path, flags, { mode: 0o644 }, (err, handle) => (err ? reject(err) : resolve(handle))));
}

export function sftpClose(sftp: SFTPWrapper, handle: Buffer): Promise<void> {
  return new Promise((resolve, reject) => sftp.close(handle, (err) => (err ? reject(err) : resolve())));
}

/** fsync@openssh.com, so the bytes are on disk before the name appears; skipped if the server lacks it. */
export function fsync(sftp: SFTPWrapper, handle: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      sftp.ext_openssh_fsync(handle, (err) => (err ? reject(err) : resolve()));
    } catch {
      resolve();
    }
  });
}

export function removeIfExists(sftp: SFTPWrapper, path: string): Promise<void> {
  return new Promise((resolve, reject) =>
    sftp.unlink(path, (err) => (!err || (err as { code?: unknown }).code === 2 ? resolve() : reject(err))),
  );
}

export function sftpReadFile(sftp: SFTPWrapper, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => sftp.readFile(path, (err, data) => (err ? reject(err) : resolve(data))));
}
