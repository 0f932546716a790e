/**
 * What a failed upload tells the operator: an interrupted upload (resumes),
 * a full disk on the host (the partial is kept), an SFTP failure; and which
 * failures mean the connection is gone.
 */
import { AirlockError } from '../errors/index.js';

export const SFTP_FAILURE = 4;
const SFTP_PERMISSION_DENIED = 3;
const SFTP_NO_CONNECTION = 6;
const SFTP_CONNECTION_LOST = 7;

/** What an upload has done so far, for the messages. */
export interface UploadState {
  phase: string;
  position: number;
  sent: number;
  size: number;
}

export function interrupted(host: string, subject: string, s: UploadState, why: string, cause: unknown): AirlockError {
  const where =
    s.phase === 'sending'
      ? `after ${s.position} of ${s.size} bytes (${s.sent} sent in this run)`
      : `while ${s.phase} (${s.position} of ${s.size} bytes on the host, ${s.sent} sent in this run)`;
  return new AirlockError('remote', `${subject}: upload interrupted ${where}: ${why.startsWith(host) ? why.slice(host.length + 2) : why}`, {
    reason: 'upload-interrupted',
    subject,
    hint: 'run it again: the upload resumes',
    cause,
  });
}

export function diskFull(subject: string, host: string, dir: string, need: number, free: number | undefined, partialPath: string, cause?: unknown): AirlockError {
  const left = free === undefined ? '' : ` (${free} bytes free)`;
  return new AirlockError('resources', `${subject}: the disk of ${host} under ${dir} is full${left}: ${need} more bytes are needed`, {
    reason: 'remote-disk-full',
    subject,
    hint: `free at least ${need} bytes under ${dir} on ${host} and run it again; the partial upload ${partialPath} is kept and resumes`,
    ...(cause === undefined ? {} : { cause }),
  });
}

export function sftpFailure(e: unknown, what: string): AirlockError {
  const code = (e as { code?: unknown }).code;
  return new AirlockError('remote', `${what} failed: ${errMessage(e)}`, {
    reason: code === SFTP_PERMISSION_DENIED ? 'remote-permission-denied' : 'upload-failed',
    cause: e,
  });
}

export function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (code === SFTP_NO_CONNECTION || code === SFTP_CONNECTION_LOST) return true;
  if (typeof code === 'string' && ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH'].includes(code)) return true;
  return /^(No response from server|Not connected)$/.test(errMessage(e));
}

export function isAbort(e: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true && (e === signal.reason || (e as { name?: unknown })?.name === 'AbortError');
}

export function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

