/**
 * What airlock creates under its state dir: private to the state dir's
 * owner, and owned by that owner and group even when a command runs as root.
 *
 * The state dir holds env values (in the journal's service specs) and the
 * data of secrets and configs (in the content store); its own mode is the
 * site's choice, so what is inside is kept private whatever it is: the
 * journal is not readable by others (its group may read it: status, history),
 * blobs and their folders only by the owner. A root command (an operator's
 * `bundle import` before the agent's first start, say) hands what it creates
 * to the state dir's owner, so the agent running as that user can use it.
 */
import { closeSync, constants as fsc, fchmodSync, fchownSync, fstatSync, lstatSync, openSync, statSync } from 'node:fs';
import { chmod, lchown, lstat, mkdir, stat } from 'node:fs/promises';
import { configError } from '../errors/index.js';

/** The journal and its -wal and -shm files: the owner writes, its group may read. */
export const JOURNAL_MODE = 0o640;
/** Blobs: secret and config data, env files, compose files, layers. */
export const BLOB_MODE = 0o600;
/** The content store's folders. */
export const STORE_DIR_MODE = 0o700;

/** Who should own what a command creates in a state dir. */
export interface StateOwner {
  uid: number;
  gid: number;
}

const euid = (): number => process.geteuid?.() ?? -1;

/**
 * The owner and group files created in `stateDir` must get: only a command
 * run as root gives files away; any other user creates them as itself.
 */
export async function stateOwnerOf(stateDir: string): Promise<StateOwner | undefined> {
  if (euid() !== 0) return undefined;
  const st = await stat(stateDir);
  return { uid: st.uid, gid: st.gid };
}

export function stateOwnerOfSync(stateDir: string): StateOwner | undefined {
  if (euid() !== 0) return undefined;
  const st = statSync(stateDir);
  return { uid: st.uid, gid: st.gid };
}

/** Hands a path made by this process to the state dir's owner; never follows a link. */
export async function adopt(path: string, owner: StateOwner | undefined): Promise<void> {
  if (owner) await lchown(path, owner.uid, owner.gid);
}

/**
 * Makes a folder of the content store (or takes the one there): a real
 * directory, the owner's only, owned by the state dir's owner. A link or a
 * file in its place is refused: blobs are never written through a link.
 */
export async function privateDir(path: string, owner: StateOwner | undefined): Promise<'made' | 'kept' | 'fixed'> {
  try {
    await mkdir(path, { mode: STORE_DIR_MODE });
    await adopt(path, owner);
    return 'made';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const st = await lstat(path);
  if (!st.isDirectory()) {
    throw configError(`${path} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}: airlock keeps blobs only in a folder of its own`, {
      reason: 'state-not-a-folder',
      subject: path,
      hint: `move ${path} aside; airlock makes the folder again`,
    });
  }
  const chown = owner !== undefined && (st.uid !== owner.uid || st.gid !== owner.gid);
  const loose = (st.mode & 0o777 & ~STORE_DIR_MODE) !== 0 && mayChange(st.uid);
  if (chown) await lchown(path, owner.uid, owner.gid);
  if (loose) await chmod(path, STORE_DIR_MODE);
  return chown || loose ? 'fixed' : 'kept';
}

/**
 * Brings a file of the state dir to `mode` (or tighter) and to the state
 * dir's owner, through a descriptor opened without following links. A file
 * that is not there is left alone; so is one of another user that this
 * process may not change (it cannot be ours to fix).
 */
export function tightenSync(path: string, mode: number, owner: StateOwner | undefined): void {
  // Looked at by path first, opened only to change something. Opening and closing a file of the
  // journal drops every POSIX lock this process holds on it (SQLite's own among them): another
  // process could then take the WAL index as unused and truncate it under this one's mapping
  // (SIGBUS), or write beside it.
  let seen: ReturnType<typeof lstatSync>;
  try {
    seen = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'EACCES') return;
    throw e;
  }
  if (!seen.isFile()) return;
  const ownerOk = !owner || (seen.uid === owner.uid && seen.gid === owner.gid);
  if (ownerOk && ((seen.mode & 0o777 & ~mode) === 0 || !mayChange(seen.uid))) return;
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'EACCES') return;
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return;
    if (owner && (st.uid !== owner.uid || st.gid !== owner.gid)) fchownSync(fd, owner.uid, owner.gid);
    if ((st.mode & 0o777 & ~mode) !== 0 && mayChange(st.uid)) fchmodSync(fd, st.mode & mode);
  } finally {
    closeSync(fd);
  }
}

/** Whether a file with this owner is this process's to chmod. */
const mayChange = (uid: number): boolean => euid() === 0 || euid() === uid;
