import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { access, mkdir, readdir, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { resourceError } from '../errors/index.js';
import { once } from 'node:events';
import { syncDir, syncFile } from './durable.js';
import { isProcessAlive } from '../process/alive.js';
import { adopt, BLOB_MODE, privateDir, stateOwnerOf, tightenSync, type StateOwner } from './state-files.js';

/** Room kept free beyond the blobs themselves, for the journal and the engine. */
export const FREE_SPACE_MARGIN = 256 * 1024 * 1024;

const hexOf = (digest: string): string => digest.slice('sha256:'.length);

/**
 * The host's content-addressed blob store, `<root>/sha256/<hex>`, shared by
 * every bundle. Writers stage into `<root>/staging/<pid>-<random>/` and
 * rename into place only when a whole bundle has verified, so a refused
 * bundle never changes what the store holds. Blobs hold secret and config
 * data and env files: each is the owner's only (state-files.ts), and so are
 * the store's folders.
 */
export class ContentStore {
  readonly blobDir: string;
  readonly stagingRoot: string;
  private ready: Promise<StateOwner | undefined> | undefined;

  constructor(readonly root: string) {
    this.blobDir = join(root, 'sha256');
    this.stagingRoot = join(root, 'staging');
  }

  /**
   * Makes the store's folders, private, owned by the state dir's owner (the
   * folder above the store); returns who must own what is written here. A
   * store made by an older airlock, its folders open to others, has every
   * blob brought to the owner's only, once.
   */
  prepare(): Promise<StateOwner | undefined> {
    this.ready ??= (async () => {
      await mkdir(dirname(this.root), { recursive: true });
      const owner = await stateOwnerOf(dirname(this.root));
      await privateDir(this.root, owner);
      const blobs = await privateDir(this.blobDir, owner);
      await privateDir(this.stagingRoot, owner);
      if (blobs === 'fixed') for (const d of await this.list()) this.keepPrivate(d, owner);
      return owner;
    })();
    this.ready.catch(() => {
      this.ready = undefined;
    });
    return this.ready;
  }

  /** A blob already stored, perhaps by an older airlock: brought to the owner's only. */
  private keepPrivate(digest: string, owner: StateOwner | undefined): void {
    tightenSync(this.pathOf(digest), BLOB_MODE, owner);
  }

  /** Whether the store holds a blob; one it holds is made the owner's only on the way. */
  async holdPrivate(digest: string): Promise<boolean> {
    if (!(await this.has(digest))) return false;
    this.keepPrivate(digest, await this.prepare());
    return true;
  }

  pathOf(digest: string): string {
    return join(this.blobDir, hexOf(digest));
  }

  async has(digest: string): Promise<boolean> {
    try {
      await access(this.pathOf(digest));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Whether the store holds a blob at its recorded size. The bytes are not
   * hashed again: only blobs hashed on the way in are ever renamed into the store.
   */
  async holding(blob: { digest: string; size: number }): Promise<'held' | 'absent' | 'wrong-size'> {
    try {
      const s = await stat(this.pathOf(blob.digest));
      return s.isFile() && s.size === blob.size ? 'held' : 'wrong-size';
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      return 'absent';
    }
  }

  /** Digests of `blobs` that the store lacks, with their total size. */
  async missing(blobs: readonly { digest: string; size: number }[]): Promise<{ digests: string[]; bytes: number }> {
    const digests: string[] = [];
    let bytes = 0;
    for (const b of blobs) {
      if (!(await this.has(b.digest))) {
        digests.push(b.digest);
        bytes += b.size;
      }
    }
    return { digests, bytes };
  }

  async list(): Promise<string[]> {
    try {
      return (await readdir(this.blobDir)).map((hex) => `sha256:${hex}`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  /** Stores small bytes (a secret's data, say) durably; returns their digest. */
  async putBytes(data: Buffer): Promise<string> {
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    if (await this.holdPrivate(digest)) return digest;
    const owner = await this.prepare();
    const tmp = join(this.stagingRoot, `${process.pid}-${randomBytes(6).toString('hex')}.blob`);
    await writeFile(tmp, data, { mode: BLOB_MODE, flag: 'wx', flush: true });
    await adopt(tmp, owner);
    await rename(tmp, this.pathOf(digest));
    await syncDir(this.blobDir);
    return digest;
  }

  /** Refuses before writing when the file system cannot hold `bytes` plus the margin. */
  async ensureFreeSpace(bytes: number): Promise<void> {
    await this.prepare();
    const fs = await statfs(this.root);
    const free = Number(fs.bavail) * Number(fs.bsize);
    if (bytes + FREE_SPACE_MARGIN > free) {
      const mib = (n: number) => `${Math.ceil(n / 1024 ** 2)} MiB`;
      throw resourceError(`not enough free space in ${this.root}: need ${mib(bytes)} plus ${mib(FREE_SPACE_MARGIN)} spare, ${mib(free)} free`, {
        reason: 'disk-full',
        subject: this.root,
        hint: "free space there, or run 'airlock prune' to drop blobs no deployment needs",
      });
    }
  }

  /** Removes staging folders left by importers that are no longer running. */
  async cleanAbandonedStaging(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.stagingRoot);
    } catch {
      return;
    }
    for (const name of names) {
      const pid = Number(name.split('-')[0]);
      if (!Number.isInteger(pid) || !isProcessAlive(pid)) await rm(join(this.stagingRoot, name), { recursive: true, force: true });
    }
  }

  async beginStaging(): Promise<Staging> {
    const owner = await this.prepare();
    await this.cleanAbandonedStaging();
    const dir = join(this.stagingRoot, `${process.pid}-${randomBytes(6).toString('hex')}`);
    await privateDir(dir, owner);
    return new Staging(this, dir, owner);
  }
}


/**
 * One importer's pending blobs: written and fsynced here, renamed into the
 * store on commit. Each file is fsynced as soon as it is written, while the
 * reader goes on with the next blob, so flushing to disk overlaps hashing.
 * The bundle reader writes into it as its BlobSink (src/bundle/blob-copy.ts).
 */
export class Staging {
  private readonly staged: string[] = [];
  private readonly synced: Promise<void>[] = [];

  constructor(
    private readonly store: ContentStore,
    readonly dir: string,
    private readonly owner: StateOwner | undefined,
  ) {}

  async open(blob: { digest: string }): Promise<Writable | null> {
    if (await this.store.holdPrivate(blob.digest)) return null;
    this.staged.push(blob.digest);
    const path = join(this.dir, hexOf(blob.digest));
    const stream = createWriteStream(path, { flags: 'wx', mode: BLOB_MODE, highWaterMark: 1024 * 1024 });
    // A renamed blob must be whole after a power loss: fsync it once written, without waiting here.
    const synced = once(stream, 'close').then(async () => {
      await syncFile(path);
      await adopt(path, this.owner);
    });
    synced.catch(() => undefined);
    this.synced.push(synced);
    return stream;
  }

  /** Where a blob of the bundle being imported is now: here when staged, else in the store. */
  pathOf(digest: string): string {
    return this.staged.includes(digest) ? join(this.dir, hexOf(digest)) : this.store.pathOf(digest);
  }

  get stagedDigests(): readonly string[] {
    return this.staged;
  }

  /** Moves every staged blob into the store; returns the digests that are new. */
  async commit(): Promise<string[]> {
    await Promise.all(this.synced);
    for (const digest of this.staged) {
      await rename(join(this.dir, hexOf(digest)), this.store.pathOf(digest));
    }
    await syncDir(this.store.blobDir);
    await this.discard();
    return [...this.staged];
  }

  async discard(): Promise<void> {
    await Promise.allSettled(this.synced);
    await rm(this.dir, { recursive: true, force: true });
  }
}
