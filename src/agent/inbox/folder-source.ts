/**
 * A local inbox folder: often the FTP server's upload folder. A bundle is
 * taken only once it is complete: its size and modification time unchanged
 * for a while across scans, or a marker file next to it.
 */
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Completeness } from '../config.js';
import type { Logger } from '../log.js';

export interface InboxFile {
  source: string;
  path: string;
  name: string;
  size: number;
  mtimeMs: number;
  /** The marker that said it was complete, to move along with it. */
  marker?: string;
}

/** Bundle file names the agent takes. */
export const isBundleName = (name: string): boolean => !name.startsWith('.') && name.endsWith('.airlock');

interface Seen {
  size: number;
  mtimeMs: number;
  since: number;
  scans: number;
}

export class FolderSource {
  private readonly seen = new Map<string, Seen>();
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

  /** The bundles that are complete as of `now`. */
  async scan(now = Date.now()): Promise<InboxFile[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      this.log.error('cannot read inbox folder', { source: this.name, dir: this.dir, error: (e as Error).message });
      return [];
    }
    const present = new Set(names);
    const ready: InboxFile[] = [];
    for (const name of names.filter(isBundleName).sort()) {
      const path = join(this.dir, name);
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile()) continue;
      const file: InboxFile = { source: this.name, path, name, size: st.size, mtimeMs: st.mtimeMs };
      if (this.complete.mode === 'marker') {
        const marker = name + this.complete.suffix;
        if (present.has(marker)) ready.push({ ...file, marker: join(this.dir, marker) });
        continue;
      }
      const before = this.seen.get(name);
      const same = before && before.size === st.size && before.mtimeMs === st.mtimeMs;
      const seen: Seen = same ? { ...before, scans: before.scans + 1 } : { size: st.size, mtimeMs: st.mtimeMs, since: now, scans: 1 };
      this.seen.set(name, seen);
      if (seen.scans >= 2 && now - seen.since >= this.complete.stableForMs) ready.push(file);
      else this.log.debug('waiting for the file to stop changing', { source: this.name, file: name, size: st.size });
    }
    for (const name of this.seen.keys()) if (!present.has(name)) this.seen.delete(name);
    return ready;
  }

  /** Files seen but not yet complete: the agent scans again after `stableFor`. */
  get waiting(): number {
    return this.complete.mode === 'stable' ? this.seen.size : 0;
  }

  /** Forget a file once it was taken, so a new upload under its name is watched afresh. */
  forget(name: string): void {
    this.seen.delete(name);
  }

  /** Calls `onChange` when something in the folder changes; the scan schedule is the backstop. */
  watch(onChange: () => void): void {
    try {
      this.watcher = watch(this.dir, { persistent: false }, (_event, file) => {
        if (file === null || isBundleName(file.toString()) || this.complete.mode === 'marker') onChange();
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
