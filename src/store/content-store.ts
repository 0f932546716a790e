import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { access, mkdir, readdir, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { resourceError } from '../errors/index.js';
import type { BlobRecord } from '../bundle/manifest.js';
import type { BlobSink } from '../bundle/reader.js';
import { once } from 'node:events';
import { syncDir, syncFile } from './durable.js';
import { isProcessAlive } from '../process/alive.js';

/** Room kept free beyond the blobs themselves, for the journal and the engine. */
export const FREE_SPACE_MARGIN = 256 * 1024 * 1024;

const hexOf = (digest: string): string => digest.slice('sha256:'.length);

/**
 * The host's content-addressed blob store, `<root>/sha256/<hex>`, shared by
 * every bundle. Writers stage into `<root>/staging/<pid>-<random>/` and
 * rename into place only when a whole bundle has verified, so a refused
 * bundle never changes what the store holds.
 */
export class ContentStore {
  readonly blobDir: string;
  readonly stagingRoot: string;

  constructor(readonly root: string) {
    this.blobDir = join(root, 'sha256');
    this.stagingRoot = join(root, 'staging');
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
    if (await this.has(digest)) return digest;
    await mkdir(this.stagingRoot, { recursive: true });
    await mkdir(this.blobDir, { recursive: true });
    const tmp = join(this.stagingRoot, `${process.pid}-${randomBytes(6).toString('hex')}.blob`);
    await writeFile(tmp, data, { mode: 0o600, flush: true });
    await rename(tmp, this.pathOf(digest));
    await syncDir(this.blobDir);
    return digest;
  }

  /** Refuses before writing when the file system cannot hold `bytes` plus the margin. */
  async ensureFreeSpace(bytes: number): Promise<void> {
    await mkdir(this.root, { recursive: true });
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
    await this.cleanAbandonedStaging();
    const dir = join(this.stagingRoot, `${process.pid}-${randomBytes(6).toString('hex')}`);
    await mkdir(dir, { recursive: true });
    await mkdir(this.blobDir, { recursive: true });
    return new Staging(this, dir);
  }
}


/**
 * One importer's pending blobs: written and fsynced here, renamed into the
 * store on commit. Each file is fsynced as soon as it is written, while the
 * reader goes on with the next blob, so flushing to disk overlaps hashing.
 */
export class Staging implements BlobSink {
  private readonly staged: string[] = [];
  private readonly synced: Promise<void>[] = [];

  constructor(
    private readonly store: ContentStore,
    readonly dir: string,
  ) {}

  async open(blob: BlobRecord): Promise<Writable | null> {
    if (await this.store.has(blob.digest)) return null;
    this.staged.push(blob.digest);
    const path = join(this.dir, hexOf(blob.digest));
    const stream = createWriteStream(path, { flags: 'wx', highWaterMark: 1024 * 1024 });
    // A renamed blob must be whole after a power loss: fsync it once written, without waiting here.
    const synced = once(stream, 'close').then(() => syncFile(path));
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
