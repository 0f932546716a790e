/**
 * The files and folders an operator names (state dir, trust store, key
 * files), looked at before they are used, so that a wrong one is refused by
 * name and with the fix, not met as EISDIR or ENOTDIR inside a read.
 */
import { statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { configError, type AirlockError } from '../errors/index.js';

export type PathKind = 'file' | 'folder' | 'other' | 'absent';

const code = (e: unknown): string | undefined => (e as NodeJS.ErrnoException).code;
/** A refusal by the file system's permissions, not a missing file. */
export const denied = (e: unknown): boolean => code(e) === 'EACCES' || code(e) === 'EPERM';

/** The user this process runs as, for messages about permissions. */
export function whoAmI(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

/** What is at `path`, links followed. A path this user may not look into is refused, naming `what` it is. */
export function kindOf(path: string, what: string): PathKind {
  try {
    const s = statSync(path);
    return s.isDirectory() ? 'folder' : s.isFile() ? 'file' : 'other';
  } catch (e) {
    if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR') return 'absent';
    if (denied(e)) throw unreadable(path, what);
    throw e;
  }
}

export function notAFolder(path: string, what: string, hint?: string): AirlockError {
  return configError(`${what} ${path} is a file, not a folder`, { reason: 'not-a-folder', subject: path, hint: hint ?? `give the folder, not a file in it` });
}

export function notAFile(path: string, what: string, hint?: string): AirlockError {
  return configError(`${what} ${path} is a folder, not a file`, { reason: 'not-a-file', subject: path, hint: hint ?? `give the file itself, not its folder` });
}

export function unreadable(path: string, what: string, hint?: string): AirlockError {
  return configError(`cannot read ${what} ${path}: permission denied to user ${whoAmI()}`, {
    reason: 'unreadable',
    subject: path,
    hint: hint ?? 'run as a user who may read it (the one airlock runs as, or root), or give that user read access',
  });
}

/** OpenSSH's rule for a private key file: no access at all for group or others. */
export const tooOpen = (mode: number): boolean => (mode & 0o077) !== 0;

/**
 * A signing or SSH private key must be a file its owner alone may read or
 * write, as OpenSSH demands of its keys ("permissions are too open"): a key
 * others can read may have been copied already. A missing file is left to
 * the loader, which says so.
 */
export function checkPrivateKeyFile(path: string, what: string): void {
  const kind = kindOf(path, what);
  if (kind === 'absent') return;
  if (kind === 'folder') throw notAFile(path, what, 'give the private key file itself');
  const mode = statSync(path).mode & 0o777;
  if (tooOpen(mode)) {
    throw configError(`${what} ${path} is open to others (mode ${mode.toString(8).padStart(4, '0')}): a private key must be readable and writable by its owner alone, as OpenSSH also demands`, {
      reason: 'key-too-open',
      subject: path,
      hint: `chmod 600 ${path}, and think whether it was copied while it was open; if so, make a new key`,
    });
  }
}

/** A file that must be a file (a public key, a definition): a folder there is refused by name. */
export function checkNotAFolder(path: string, what: string, hint?: string): void {
  if (kindOf(path, what) === 'folder') throw notAFile(path, what, hint);
}
