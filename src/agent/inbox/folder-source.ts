/**
 * A local inbox folder: often the FTP server's upload folder. A bundle is
 * taken only once it is complete: its size and modification time unchanged
 * for a while across scans, or a marker file next to it. A split bundle's
 * index and each of its parts are judged the same way, one file at a time;
 * part-sets.ts decides when a set is whole. Only regular files are taken:
 * a symbolic link (a local user may plant one, the folder is often writable
 * by others) is never followed, and said once.
 */
import { watch, type FSWatcher } from 'node:fs';
import { lstat, mkdir, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Completeness, InboxFile } from './inbox-file.js';
import type { Logger } from '../log.js';
import { gatherItems, isInboxName, type InboxItem } from './part-sets.js';
import { inVersionOrder } from './version-order.js';

interface Seen {
  size: number;
  mtimeMs: number;
  since: number;
  scans: number;
  stable: boolean;
}

export class FolderSource {
  private readonly seen = new Map<string, Seen>();
  /** Entries not taken because they are not regular files, with what was said of them: said once. */
  private readonly shunned = new Map<string, string>();
  private watcher: FSWatcher | undefined;

  constructor(
    readonly name: string,
    readonly dir: string,
    private readonly complete: Completeness,
    private readonly log: Logger,
  ) {}

  async ensureDir(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  /** The bundles and split sets that are complete as of `now`, and the sets and parts still waiting; the versions of a bundle oldest first. */
  async scan(now = Date.now()): Promise<InboxItem[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      this.log.error('cannot read inbox folder', { source: this.name, dir: this.dir, error: (e as Error).message });
      return [];
    }
    const present = new Set(names);
    const files: InboxFile[] = [];
    const whole = new Map<string, InboxFile>();
    for (const name of names.filter(isInboxName).sort()) {
      const path = join(this.dir, name);
      const st = await lstat(path).catch(() => undefined);
      if (!st) continue;
      if (!st.isFile()) {
        await this.shun(name, path, st);
        continue;
      }
      this.shunned.delete(name);
      const file: InboxFile = { source: this.name, path, name, size: st.size, mtimeMs: st.mtimeMs };
      files.push(file);
      const done = this.completeness(file, present, now);
      if (done) whole.set(name, done);
    }
    for (const name of this.seen.keys()) if (!present.has(name)) this.seen.delete(name);
    for (const name of this.shunned.keys()) if (!present.has(name)) this.shunned.delete(name);
    return inVersionOrder(await gatherItems(files, (f) => whole.get(f.name)));
  }

  /** An inbox name that is not a regular file: never opened, moved or followed; said once per what it is. */
  private async shun(name: string, path: string, st: { isSymbolicLink(): boolean; isDirectory(): boolean }): Promise<void> {
    const what = st.isSymbolicLink() ? `a symbolic link (to ${await readlink(path).catch(() => '?')})` : st.isDirectory() ? 'a folder' : 'not a regular file';
    if (this.shunned.get(name) === what) return;
    this.shunned.set(name, what);
    this.log.warn('inbox entry refused: only regular files are taken, and links are never followed', { source: this.name, file: name, entry: what });
  }

  /** Whether one file is complete by this source's rule; in 'stable' mode, updates what was seen of it. */
  private completeness(file: InboxFile, present: Set<string>, now: number): InboxFile | undefined {
    if (this.complete.mode === 'marker') {
      const marker = file.name + this.complete.suffix;
      return present.has(marker) ? { ...file, marker: join(this.dir, marker) } : undefined;
    }
    const before = this.seen.get(file.name);
    const same = before && before.size === file.size && before.mtimeMs === file.mtimeMs;
    const seen: Seen = same ? { ...before, scans: before.scans + 1 } : { size: file.size, mtimeMs: file.mtimeMs, since: now, scans: 1, stable: false };
    seen.stable = seen.scans >= 2 && now - seen.since >= this.complete.stableForMs;
    this.seen.set(file.name, seen);
    if (seen.stable) return file;
    this.log.debug('waiting for the file to stop changing', { source: this.name, file: file.name, size: file.size });
    return undefined;
  }

  /** Files seen but not yet complete: the agent scans again after `stableFor`. */
  get waiting(): number {
    return this.complete.mode === 'stable' ? [...this.seen.values()].filter((s) => !s.stable).length : 0;
  }

  /** Forget a file once it was taken, so a new upload under its name is watched afresh. */
  forget(name: string): void {
    this.seen.delete(name);
  }

  /** Calls `onChange` when something in the folder changes; the scan schedule is the backstop. */
  watch(onChange: () => void): void {
    try {
      this.watcher = watch(this.dir, { persistent: false }, (_event, file) => {
        if (file === null || isInboxName(file.toString()) || this.complete.mode === 'marker') onChange();
      });
      this.watcher.on('error', (e) => this.log.warn('inbox watch failed; polling only', { source: this.name, error: e.message }));
    } catch (e) {
      this.log.warn('cannot watch the inbox folder; polling only', { source: this.name, error: (e as Error).message });
    }
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }
}
