/**
 * settled.json of the FTP source: the files the agent has processed, never
 * fetched again while unchanged. Read once and shared, so a poll and a
 * settle running side by side change the same object; changed one at a
 * time, never waiting for the server.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { configError } from '../../errors/index.js';
import { readJson, writeJsonAtomic, type RemoteId } from './ftp-spool.js';

export interface SettledFile extends RemoteId {
  settledAt: string;
  sha256?: string;
  /** When the remote content last had `sha256` (fetched or re-checked); the next re-check is due recheckMs after it. */
  checkedAt?: string;
}

export interface SettledState {
  version: 1;
  files: Record<string, SettledFile>;
}

export class SettledRecord {
  private readonly path: string;
  private loading: Promise<SettledState> | undefined;
  /** Changes to settled.json and meta/, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    /** The source's name, for errors. */
    private readonly source: string,
    private readonly spoolDir: string,
  ) {
    this.path = join(spoolDir, 'settled.json');
  }

  /** The settled-files record, read once: a poll and a settle running side by side change the same object. */
  load(): Promise<SettledState> {
    this.loading ??= this.read().catch((e: unknown) => {
      this.loading = undefined;
      throw e;
    });
    return this.loading;
  }

  /** Runs `fn` after the changes queued before it. */
  change<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Writes the record; only inside change(), so two writes never share the temporary file. */
  async save(): Promise<void> {
    await mkdir(this.spoolDir, { recursive: true });
    await writeJsonAtomic(this.path, await this.load());
  }

  private async read(): Promise<SettledState> {
    let state: SettledState | undefined;
    try {
      state = await readJson<SettledState>(this.path);
    } catch (e) {
      throw configError(`FTP source "${this.source}": ${this.path} is not readable JSON: ${(e as Error).message}`, {
        subject: this.path,
        reason: 'bad-state',
        hint: 'remove it to fetch every file on the server again',
      });
    }
    if (state !== undefined && (state.version !== 1 || typeof state.files !== 'object' || state.files === null)) {
      throw configError(`FTP source "${this.source}": ${this.path} is not a settled-files record`, {
        subject: this.path,
        reason: 'bad-state',
        hint: 'remove it to fetch every file on the server again',
      });
    }
    return state ?? { version: 1, files: {} };
  }
}
