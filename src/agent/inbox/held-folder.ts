/**
 * The agent's own folders in the inbox (done/, quarantine/), and every move
 * and write it makes there. The inbox is often the FTP upload folder: a
 * local user may write it, and plant a symbolic link where the agent is
 * about to write (`quarantine/x.airlock.reason -> /var/lib/airlock/journal.db`),
 * or swap a folder for a link between a check and its use. So:
 *
 * - a folder is opened once, with O_DIRECTORY|O_NOFOLLOW, and every name in
 *   it is reached through /proc/self/fd/N/NAME: the folder that was opened,
 *   whatever its path names a moment later. A folder that is a link, or not
 *   a folder, is refused (FolderRefused), never followed;
 * - a file is written under a fresh name with O_CREAT|O_EXCL|O_NOFOLLOW and
 *   renamed over its name: a link planted there is replaced, not written through;
 * - a file comes in by rename, which never follows the name it replaces, or
 *   (from another file system) by a copy made the same way as a write.
 */
import { constants as fsc } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { AirlockError } from '../../errors/index.js';

/** A folder the agent will not use: the message says which and why. */
export class FolderRefused extends AirlockError {
  constructor(
    /** The folder refused. */
    readonly folder: string,
    message: string,
    details: { reason: string; hint: string },
  ) {
    super('config', message, { ...details, subject: folder });
  }
}

const DIR_FLAGS = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;
const NEW_FILE_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/** A plain name in a folder: never a path, never `.` or `..`. */
function checkName(name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new AirlockError('internal', `not a file name: ${JSON.stringify(name)}`);
  }
  return name;
}

export class HeldFolder {
  private constructor(
    /** The folder's path, for messages: never the /proc path that is used. */
    readonly path: string,
    private readonly fh: FileHandle,
  ) {}

  /**
   * Opens `name` in `parent` (the inbox: a path the operator configured,
   * taken as given), making it when it is missing and `create` says so;
   * undefined when it is missing and not to be made.
   */
  static async openIn(parent: string, name: string, opts: { create: boolean }): Promise<HeldFolder | undefined> {
    const dir = await open(parent, fsc.O_RDONLY | fsc.O_DIRECTORY);
    try {
      const at = `/proc/self/fd/${dir.fd}/${checkName(name)}`;
      const path = join(parent, name);
      if (opts.create) {
        // mkdir never follows a link at its last name: a planted one makes EEXIST here, and the open below refuses it.
        await mkdir(at, { mode: 0o755 }).catch((e: unknown) => {
          if (errno(e) !== 'EEXIST') throw e;
        });
      }
      try {
        return new HeldFolder(path, await open(at, DIR_FLAGS));
      } catch (e) {
        const code = errno(e);
        if (code === 'ENOENT' && !opts.create) return undefined;
        if (code === 'ELOOP' || code === 'ENOTDIR') throw await refusal(at, path);
        throw e;
      }
    } finally {
      await dir.close();
    }
  }

  /** The path that reaches this very folder. */
  private get self(): string {
    return `/proc/self/fd/${this.fh.fd}`;
  }

  /** The path that reaches `name` in this very folder. */
  private at(name: string): string {
    return `${this.self}/${checkName(name)}`;
  }

  /** Whether anything (a link too) has this name here. */
  async has(name: string): Promise<boolean> {
    return lstat(this.at(name)).then(
      () => true,
      (e: unknown) => {
        if (errno(e) === 'ENOENT') return false;
        throw e;
      },
    );
  }

  /**
   * Moves the file at `from` here as `name`, over what has that name (a
   * planted link is replaced, not followed). Returns its new path.
   */
  async moveIn(from: string, name: string): Promise<string> {
    try {
      await rename(from, this.at(name));
    } catch (e) {
      if (errno(e) !== 'EXDEV') throw e;
      await this.copyIn(from, name);
      await rm(from);
    }
    return join(this.path, name);
  }

  /** From another file system (the FTP spool under the state dir): a copy, written as writeNew writes, then renamed in. */
  private async copyIn(from: string, name: string): Promise<void> {
    const src = await open(from, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    try {
      if (!(await src.stat()).isFile()) throw new AirlockError('internal', `${from} is not a regular file`);
      await this.writeNew(name, async (dst) => pipeline(src.createReadStream({ autoClose: false }), dst.createWriteStream({ autoClose: false })));
    } finally {
      await src.close();
    }
  }

  /** Writes a new file `name` here (text, or what `fill` writes to its handle), flushed, then renamed over the name. */
  async writeNew(name: string, data: string | ((fh: FileHandle) => Promise<void>), mode = 0o644): Promise<string> {
    const tmp = `.${checkName(name)}.${process.pid}-${randomBytes(4).toString('hex')}.new`;
    const fh = await open(this.at(tmp), NEW_FILE_FLAGS, mode);
    try {
      try {
        if (typeof data === 'string') await fh.writeFile(data);
        else await data(fh);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(this.at(tmp), this.at(name));
    } catch (e) {
      await rm(this.at(tmp), { force: true });
      throw e;
    }
    return join(this.path, name);
  }

  /** The regular files here with their modification times; links and folders are not the agent's and are left out. */
  async files(): Promise<{ name: string; mtimeMs: number }[]> {
    const out: { name: string; mtimeMs: number }[] = [];
    for (const name of await readdir(this.self)) {
      const st = await lstat(this.at(name)).catch(() => undefined);
      if (st?.isFile()) out.push({ name, mtimeMs: st.mtimeMs });
    }
    return out;
  }

  /** Removes `name` here (a link is removed, never what it points to). */
  async remove(name: string): Promise<void> {
    await rm(this.at(name), { force: true });
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Runs `fn` with the folder `name` of `parent` held open, made when missing. */
export async function withFolder<T>(parent: string, name: string, fn: (folder: HeldFolder) => Promise<T>): Promise<T> {
  const folder = (await HeldFolder.openIn(parent, name, { create: true }))!;
  try {
    return await fn(folder);
  } finally {
    await folder.close();
  }
}

/** Why a name is refused as a folder: a link (saying where it points), or something else. */
async function refusal(at: string, path: string): Promise<FolderRefused> {
  const st = await lstat(at).catch(() => undefined);
  if (st?.isSymbolicLink()) {
    const target = await readlink(at).catch(() => '?');
    return new FolderRefused(path, `inbox folder ${path} is a symbolic link (to ${target}): the agent never moves or writes files through a link`, {
      reason: 'inbox-link',
      hint: `remove the link (rm ${path}); the agent makes a real folder there. Whoever made it can write the inbox folder ${dirname(path)}`,
    });
  }
  return new FolderRefused(path, `inbox folder ${path} is not a folder: the agent moves files only into a folder of its own`, {
    reason: 'inbox-not-a-folder',
    hint: `move ${path} aside; the agent makes a real folder there`,
  });
}

export const isFolderRefused = (e: unknown): e is FolderRefused => e instanceof FolderRefused;
