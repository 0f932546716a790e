/**
 * What happens to one complete inbox file: imported (blobs stored, images
 * loaded) and queued for the maintenance window, then moved to done/; or,
 * refused for what it is, moved to quarantine/ with a reason file; or left
 * where it is to be tried again when the refusal was only that it was
 * incomplete, or the host was not ready.
 */
import { copyFile, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import YAML from 'yaml';
import { asAirlockError, integrityError, type AirlockError } from '../errors/index.js';
import type { Docker } from '../docker/index.js';
import { importBundle, type ImportResult } from '../import/import-bundle.js';
import { AgentQueue } from '../journal/agent-queue.js';
import { BundleRecords } from '../journal/bundles.js';
import { Journal } from '../journal/journal.js';
import type { TrustStore } from '../trust/trust-store.js';
import type { AgentConfig } from './config.js';
import type { InboxFile } from './inbox/folder-source.js';
import type { Logger } from './log.js';

export type IntakeOutcome =
  | { kind: 'imported'; result: ImportResult; queued: boolean; movedTo: string }
  | { kind: 'quarantined'; error: AirlockError; movedTo: string }
  | { kind: 'retry'; error: AirlockError };

/** Refusals for what the bundle is: it will never import, so it leaves the inbox. */
const REFUSED = new Set(['signature', 'integrity', 'unsafeEntry', 'policy']);
/** Integrity refusals that only say the file is not all there yet. */
const INCOMPLETE = new Set(['truncated', 'missing-entry']);

export const isIncomplete = (e: AirlockError): boolean => e.kind === 'integrity' && INCOMPLETE.has(e.reason);

export interface IntakeDeps {
  config: AgentConfig;
  docker: Docker;
  trust: () => Promise<TrustStore>;
  log: Logger;
  now?: () => number;
}

interface Failure {
  size: number;
  mtimeMs: number;
  since: number;
}

export class Intake {
  /** Incomplete files by path: tried again only once they change, quarantined after giveUpAfter. */
  private readonly incomplete = new Map<string, Failure>();

  constructor(private readonly deps: IntakeDeps) {}

  private get now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  get doneDir(): string {
    return join(this.deps.config.inbox.dir, 'done');
  }

  get quarantineDir(): string {
    return join(this.deps.config.inbox.dir, 'quarantine');
  }

  /** Whether a file failed as incomplete and has not changed since; such a file is not tried again yet. */
  private stillIncomplete(file: InboxFile): Failure | undefined {
    const f = this.incomplete.get(file.path);
    return f && f.size === file.size && f.mtimeMs === file.mtimeMs ? f : undefined;
  }

  /** Takes one file; undefined when it was skipped (incomplete and unchanged). */
  async take(file: InboxFile): Promise<IntakeOutcome | undefined> {
    const { config, log } = this.deps;
    const failed = this.stillIncomplete(file);
    if (failed && this.now - failed.since < config.inbox.giveUpAfterMs) return undefined;
    const flog = log.with({ file: file.name, source: file.source });
    try {
      if (failed) throw this.gaveUp(file, failed);
      flog.info('importing bundle', { bytes: file.size });
      const result = await importBundle(file.path, { stateDir: config.stateDir, trust: await this.deps.trust(), docker: this.deps.docker, lockWaitMs: 10 * 60_000 });
      this.incomplete.delete(file.path);
      const queued = await this.queue(result, file, flog);
      const movedTo = await moveInto(this.doneDir, file);
      flog.info(result.alreadyImported ? 'bundle was already imported' : 'bundle imported', {
        bundle: result.name,
        version: result.version,
        new_blobs: result.newBlobs,
        new_bytes: result.newBytes,
        queued,
        moved_to: movedTo,
      });
      return { kind: 'imported', result, queued, movedTo };
    } catch (e) {
      const err = asAirlockError(e);
      if (isIncomplete(err) && !failed) {
        if (!this.incomplete.has(file.path)) this.incomplete.set(file.path, { size: file.size, mtimeMs: file.mtimeMs, since: this.now });
        flog.warn('bundle is incomplete; it is tried again once it changes', { reason: err.reason, error: err.message });
        return { kind: 'retry', error: err };
      }
      if (!REFUSED.has(err.kind)) {
        // The host, not the bundle: no engine, no disk, a trust store missing. Tried again at the next poll.
        flog.error('bundle could not be imported now; it stays in the inbox', { class: err.kind, reason: err.reason, error: err.message });
        return { kind: 'retry', error: err };
      }
      this.incomplete.delete(file.path);
      const movedTo = await this.quarantine(file, err);
      flog.warn('bundle refused and quarantined', { class: err.kind, reason: err.reason, error: err.message, moved_to: movedTo });
      return { kind: 'quarantined', error: err, movedTo };
    }
  }

  private gaveUp(file: InboxFile, f: Failure): AirlockError {
    const minutes = Math.round((this.now - f.since) / 60_000);
    return integrityError(`${file.name} is still incomplete after ${minutes} min unchanged (${file.size} bytes): the upload was cut short`, {
      reason: 'incomplete',
      subject: file.name,
      hint: 'upload the bundle again',
    });
  }

  /** On arrival, a bundle with stacks waits in the queue for the window; on a worker or in import-only mode it does not. */
  private async queue(result: ImportResult, file: InboxFile, log: Logger): Promise<boolean> {
    if (this.deps.config.apply.mode !== 'on-arrival') return false;
    const journal = Journal.open(this.deps.config.stateDir);
    try {
      const manifest = new BundleRecords(journal).manifest(result.bundleId);
      if (manifest.stacks.length === 0) return false;
      const info = await this.deps.docker.system.info();
      if (!(info.Swarm.LocalNodeState === 'active' && info.Swarm.ControlAvailable)) {
        log.info('this node is not a swarm manager: images are loaded, stacks are deployed from a manager', { bundle: result.name });
        return false;
      }
      return new AgentQueue(journal).enqueue(result.bundleId, file.path);
    } finally {
      journal.close();
    }
  }

  private async quarantine(file: InboxFile, err: AirlockError): Promise<string> {
    const movedTo = await moveInto(this.quarantineDir, file);
    const reason = {
      file: file.name,
      source: file.source,
      quarantined_at: new Date(this.now).toISOString(),
      error: err.kind,
      exit_code: err.exitCode,
      reason: err.reason,
      message: err.message,
      ...(err.subject ? { entry: err.subject } : {}),
      ...(err.hint ? { hint: err.hint } : {}),
    };
    await writeFile(`${movedTo}.reason`, YAML.stringify(reason));
    const journal = Journal.open(this.deps.config.stateDir);
    try {
      journal.record({ kind: 'inbox.quarantine', outcome: 'refused', subject: file.name, reason: err.reason, message: err.message, details: { file: file.path, movedTo } });
    } finally {
      journal.close();
    }
    return movedTo;
  }
}

/** Moves a file (and its marker) into `dir`, under a new name if one is taken; returns where it went. */
export async function moveInto(dir: string, file: Pick<InboxFile, 'path' | 'marker'>): Promise<string> {
  await mkdir(dir, { recursive: true });
  let target = join(dir, basename(file.path));
  if (await exists(target)) target = join(dir, `${basename(file.path, '.airlock')}.${new Date().toISOString().replace(/[:.]/g, '')}.airlock`);
  await moveFile(file.path, target);
  if (file.marker) await rm(file.marker, { force: true });
  return target;
}

async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    await copyFile(from, to);
    await rm(from);
  }
}

const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

/** Keeps the newest `keep` bundle files in done/; the content store holds what they carried. */
export async function pruneDone(dir: string, keep: number): Promise<string[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.airlock'));
  const files = await Promise.all(names.map(async (n) => ({ path: join(dir, n), mtimeMs: (await stat(join(dir, n))).mtimeMs })));
  const old = files.sort((a, b) => b.mtimeMs - a.mtimeMs).slice(keep);
  for (const f of old) await rm(f.path, { force: true });
  return old.map((f) => f.path);
}
