/**
 * One upload of a file to a host at a time. Two operators sending the same
 * bundle would otherwise truncate, delete and rename the one `.NAME.partial`
 * under each other. The lock is `flock(1)` on `DIR/.NAME.lock`, held by a
 * command on the host for as long as this client's SSH channel stays open:
 * when the upload ends, the jump box dies or the connection drops, sshd ends
 * the command and the kernel frees the lock, so no lock outlives its holder
 * and none needs clearing by hand. A second upload waits up to `waitMs`, then
 * is told who holds it (`.NAME.lock.who`, written by the holder).
 *
 * The holder removes both files before it lets go, so the inbox keeps only
 * what was sent. A waiter that then gets the lock of a file already unlinked
 * sees that its open file is no longer the one at the path, and starts over.
 */
import { posix } from 'node:path';
import type { Client, ClientChannel } from 'ssh2';
import { AirlockError } from '../errors/index.js';
import { shq } from './shell.js';

export interface UploadLockOptions {
  remoteDir: string;
  name: string;
  /** The host's name in messages. */
  host: string;
  /** Who this upload is, for the other operator: `user@jumpbox pid N`. */
  who: string;
  waitMs: number;
}

const LOCKED = 'airlock-upload-locked';

/** Takes the lock (waiting up to waitMs); resolves to its release. */
export function holdUploadLock(client: Client, o: UploadLockOptions): Promise<() => void> {
  const lock = posix.join(o.remoteDir, `.${o.name}.lock`);
  const seconds = Math.max(1, Math.ceil(o.waitMs / 1000));
  // Wait for the lock on the file at the path (not one a finishing holder just unlinked), say who
  // holds it (never through a planted link: noclobber creates it exclusively), keep it until stdin
  // ends, then leave nothing behind.
  const script = [
    'lock=$1; who=$2; end=$(($(date +%s) + $3))',
    'while :; do',
    '  exec 9>>"$lock" || exit 2',
    '  left=$((end - $(date +%s))); [ "$left" -gt 0 ] || left=0',
    '  flock -w "$left" 9 || exit $?',
    '  [ "$(stat -L -c %d:%i /dev/fd/9)" = "$(stat -c %d:%i "$lock" 2>/dev/null)" ] && break',
    '  exec 9>&-',
    'done',
    `rm -f "$lock.who"; (set -C; printf '%s\\n' "$who" > "$lock.who") 2>/dev/null`,
    `echo ${LOCKED}`,
    'cat >/dev/null',
    'rm -f "$lock.who" "$lock"',
  ].join('\n');
  const cmd = `sh -c ${shq(script)} sh ${shq(lock)} ${shq(o.who)} ${seconds}`;
  return new Promise((resolve, reject) => {
    client.exec(cmd, (err: Error | undefined, ch: ClientChannel) => {
      if (err) {
        reject(new AirlockError('remote', `${o.host}: cannot take the upload lock ${lock}: ${err.message}`, { reason: 'upload-lock-failed', subject: o.host, cause: err }));
        return;
      }
      let out = '';
      let errText = '';
      let held = false;
      ch.on('data', (b: Buffer) => {
        out += b.toString();
        if (!held && out.includes(LOCKED)) {
          held = true;
          resolve(() => ch.end());
        }
      });
      ch.stderr.on('data', (b: Buffer) => (errText += b.toString()));
      ch.on('exit', (code: number | null) => {
        if (held) return;
        if (code === 1) {
          void whoHolds(client, `${lock}.who`).then((holder) =>
            reject(
              new AirlockError('busy', `${o.host}: another upload of ${o.name} is in progress${holder ? ` (${holder})` : ''}; waited ${seconds} s`, {
                reason: 'upload-in-progress',
                subject: `${o.host}:${posix.join(o.remoteDir, o.name)}`,
                hint: 'run it again once that upload has ended: a file already complete on the host is not sent twice',
              }),
            ),
          );
          return;
        }
        const why = errText.trim() || `exit ${String(code)}`;
        reject(
          new AirlockError('remote', `${o.host}: cannot take the upload lock ${lock}: ${why}`, {
            reason: code === 127 ? 'no-flock' : 'upload-lock-failed',
            subject: o.host,
            ...(code === 127 ? { hint: 'the host needs flock(1), from util-linux' } : {}),
          }),
        );
      });
      ch.on('error', (e: Error) => {
        if (!held) reject(new AirlockError('remote', `${o.host}: the upload lock's channel failed: ${e.message}`, { reason: 'upload-lock-failed', subject: o.host, cause: e }));
      });
    });
  });
}

/** The holder's own words, read once; an empty string when they cannot be read. */
function whoHolds(client: Client, path: string): Promise<string> {
  return new Promise((resolve) => {
    client.exec(`cat ${shq(path)} 2>/dev/null`, (err: Error | undefined, ch: ClientChannel) => {
      if (err) return resolve('');
      let out = '';
      ch.on('data', (b: Buffer) => (out += b.toString()));
      ch.on('close', () => resolve(out.trim().slice(0, 200)));
      ch.on('error', () => resolve(''));
      ch.end();
    });
  });
}
