/**
 * What happens to one complete inbox file, or one split set (an index and
 * all its parts): imported (blobs stored, images loaded) and queued for the
 * maintenance window, then moved to done/; or, refused for what it is,
 * moved to quarantine/ with a reason file; or left where it is to be tried
 * again when the refusal was only that it was incomplete, or the host was
 * not ready. A set still missing parts, and a part without its index, wait.
 */
import { agentSealing } from './sealing.js';
import { basename, dirname, join } from 'node:path';
import { asAirlockError, integrityError, isRefusal, policyError, type AirlockError } from '../errors/index.js';
import type { Docker } from '../docker/index.js';
import { importBundle, type ImportResult } from '../import/import-bundle.js';
import { updateTrust, type TrustUpdateResult } from '../import/trust-update.js';
import { carriesEngine, installEngineFromInbox } from './engine-intake.js';
import { AgentQueue } from '../journal/agent-queue.js';
import { BundleRecords } from '../journal/bundles.js';
import { Journal } from '../journal/journal.js';
import type { TrustStore } from '../trust/trust-store.js';
import type { AgentConfig } from './config.js';
import { partNameOf, PARTS_INCOMPLETE_REASONS } from '../bundle/parts.js';
import { isTrustMetadataName } from './inbox/part-sets.js';
import type { InboxFile } from './inbox/inbox-file.js';
import { isFolderRefused, type FolderRefused, type HeldFolder } from './inbox/held-folder.js';
import { moveUnit, writeReason, type OwnFolder, type Unit } from './inbox/own-folders.js';
import type { InboxItem } from './inbox/part-sets.js';
import type { Logger } from './log.js';

export type IntakeOutcome =
  | { kind: 'imported'; result: ImportResult; queued: boolean; movedTo: string; files: InboxFile[] }
  | { kind: 'trust'; result: TrustUpdateResult; movedTo: string; files: InboxFile[] }
  | { kind: 'quarantined'; error: AirlockError; movedTo: string; files: InboxFile[] }
  | { kind: 'retry'; error: AirlockError }
  /**
   * The host could not import now (no engine, no disk, no trust store): the
   * files stay, and nothing more is taken this pass, so that a newer version
   * queued behind never goes in first and makes this one a downgrade.
   */
  | { kind: 'blocked'; error: AirlockError };

/** Trust errors that are the host's, not the metadata file's: it waits in the inbox. */
const HOST_TRUST_REASONS = new Set(['no-root', 'trust-state-corrupt']);

/** Integrity refusals that only say the file is not all there yet. */
const INCOMPLETE = new Set(['truncated', 'missing-entry', ...PARTS_INCOMPLETE_REASONS]);

const isIncomplete = (e: AirlockError): boolean => e.kind === 'integrity' && INCOMPLETE.has(e.reason);
/** A delta whose base this host does not hold yet: the base may still be on its way (a split set, a slower upload). */
const awaitsBase = (e: AirlockError): boolean => e.kind === 'policy' && e.reason === 'missing-base';

export interface IntakeDeps {
  config: AgentConfig;
  docker: Docker;
  trust: () => Promise<TrustStore>;
  log: Logger;
  now?: () => number;
}

/** What a unit looked like when it was last seen failing or waiting: tried again only once it changes. */
interface Failure {
  look: string;
  since: number;
  /** For waiting units: what was last said they wait for. */
  about?: string;
}

/**
 * A unit taken (imported, or refused) that could not leave the inbox: the
 * folder it goes to was refused (a link planted there). It is not taken
 * again; the move is tried again at each poll until it can be made.
 */
interface Unmoved {
  look: string;
  move: () => Promise<string>;
  finish: (movedTo: string) => IntakeOutcome;
}

/** Size and mtime of every file: a unit that looks the same has not changed. */
const lookOf = (files: InboxFile[]): string => files.map((f) => `${f.name}:${f.size}:${f.mtimeMs}`).join('|');
/** `45 s`, `12 min`: how long something waited, for refusal messages. */
const spanOf = (ms: number): string => (ms < 60_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`);
const bytesOf = (files: InboxFile[]): number => files.reduce((n, f) => n + f.size, 0);

export class Intake {
  /** Incomplete units by main path: tried again only once they change, quarantined after giveUpAfter. */
  private readonly incomplete = new Map<string, Failure>();
  /** Split sets and lone parts waiting for more, by path: logged once per change, given up after giveUpAfter unchanged. */
  private readonly waiting = new Map<string, Failure>();
  /** Deltas waiting for their base, by main path: tried again once another bundle was imported, given up after giveUpAfter. */
  private readonly baseless = new Map<string, Failure & { imports: number; error: AirlockError }>();
  /** Imports so far: what a waiting delta compares to see whether the store may hold its base now. */
  private imports = 0;
  /** Units that stay in the inbox because their folder was refused, by main path. */
  private readonly unmoved = new Map<string, Unmoved>();
  /** The last refusal said of each folder: said once, not at every poll. */
  private readonly refusedFolders = new Map<string, string>();

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

  /** Takes one inbox item; undefined when there is nothing to do yet (incomplete and unchanged, or waiting for parts). */
  async takeItem(item: InboxItem): Promise<IntakeOutcome | undefined> {
    const { main, files } = unitOf(item);
    const unmoved = this.unmoved.get(main.path);
    if (unmoved?.look === lookOf(files)) return this.moveAgain(main, unmoved);
    this.unmoved.delete(main.path);
    switch (item.kind) {
      case 'bundle':
        return this.take(item.file);
      case 'parts':
        this.forgetWaiting([item.index, ...item.parts]);
        return this.process({ main: item.index, files: [item.index, ...item.parts] });
      case 'bad-index':
        return this.process({ main: item.file, files: [item.file] }, () => Promise.reject(item.error));
      case 'waiting':
        // Its parts are no longer lone: their own clocks stop.
        this.forgetWaiting(item.present);
        return this.waitForParts(item);
      case 'lone':
        return this.waitForIndex(item.file);
      case 'trust':
        return this.takeTrust(item.file);
    }
  }

  /**
   * Trust metadata: taken into the host's trust state and moved to done/, or refused for what it
   * is (expired, below a threshold, a version going back…) and quarantined. A host without a
   * root of trust, or whose trust state is damaged, leaves it where it is.
   */
  private async takeTrust(file: InboxFile): Promise<IntakeOutcome> {
    const { config, log } = this.deps;
    const flog = log.with({ file: file.name, source: file.source });
    const unit: Unit = { main: file, files: [file] };
    try {
      const result = await updateTrust(config.trustDir, config.stateDir, [file.path]);
      const outcome = await this.leave({ path: file.path, look: lookOf(unit.files) }, unit, 'done', (movedTo) => ({ kind: 'trust', result, movedTo, files: unit.files }), flog);
      flog.info(result.taken.length > 0 ? 'trust metadata taken' : 'trust metadata already held', { taken: result.taken.join(', ') || undefined, ...result.held });
      return outcome;
    } catch (e) {
      const err = asAirlockError(e);
      if (err.kind !== 'trust' || HOST_TRUST_REASONS.has(err.reason)) {
        flog.error('trust metadata could not be taken now; it stays in the inbox', { class: err.kind, reason: err.reason, error: err.message });
        return { kind: 'retry', error: err };
      }
      return this.refuse(unit, err, flog);
    }
  }

  /** Takes one bundle file; undefined when it was skipped (incomplete and unchanged). */
  take(file: InboxFile): Promise<IntakeOutcome | undefined> {
    return this.process({ main: file, files: [file] });
  }

  /**
   * Imports a unit (or runs `attempt` in its place), then moves it to done/,
   * or to quarantine/ when refused, or leaves it to try again.
   */
  private async process(unit: Unit, attempt?: () => Promise<ImportResult>): Promise<IntakeOutcome | undefined> {
    const { config, log } = this.deps;
    const { main } = unit;
    const look = lookOf(unit.files);
    const seen = this.incomplete.get(main.path);
    const failed = seen?.look === look ? seen : undefined;
    if (failed && this.now - failed.since < config.inbox.giveUpAfterMs) return undefined;
    const flog = log.with({ file: main.name, source: main.source });
    const delta = this.baseless.get(main.path);
    if (delta?.look === look && delta.imports === this.imports && this.now - delta.since < config.inbox.giveUpAfterMs) return undefined;
    try {
      if (failed) throw this.gaveUp(main.name, bytesOf(unit.files), failed);
      const parts = unit.files.length > 1 ? { parts: unit.files.length - 1 } : {};
      if (!attempt) flog.info('importing bundle', { bytes: bytesOf(unit.files), ...parts });
      const result = attempt
        ? await attempt()
        : (await carriesEngine(main.path))
          ? await installEngineFromInbox(main.path, config, await this.deps.trust(), flog)
          : await importBundle(main.path, { stateDir: config.stateDir, trust: await this.deps.trust(), docker: this.deps.docker, lockWaitMs: 10 * 60_000, sealing: agentSealing(config) });
      this.incomplete.delete(main.path);
      this.baseless.delete(main.path);
      this.imports++;
      const queued = await this.queue(result, main);
      const outcome = await this.leave({ path: main.path, look }, unit, 'done', (movedTo) => ({ kind: 'imported', result, queued, movedTo, files: unit.files }), flog);
      flog.info(result.alreadyImported ? 'bundle was already imported' : 'bundle imported', {
        bundle: result.name,
        version: result.version,
        new_blobs: result.newBlobs,
        new_bytes: result.newBytes,
        queued,
        moved_to: outcome.kind === 'imported' ? outcome.movedTo : undefined,
        ...parts,
      });
      return outcome;
    } catch (e) {
      const err = asAirlockError(e);
      if (isIncomplete(err) && !failed) {
        if (seen?.look !== look) this.incomplete.set(main.path, { look, since: this.now });
        flog.warn('bundle is incomplete; it is tried again once it changes', { reason: err.reason, error: err.message });
        return { kind: 'retry', error: err };
      }
      if (awaitsBase(err)) return this.waitForBase(unit, err, look, flog);
      if (!isRefusal(err)) {
        // The host, not the bundle: no engine, no disk, a trust store missing. Tried again at the next poll.
        flog.error('bundle could not be imported now; it stays in the inbox', { class: err.kind, reason: err.reason, error: err.message });
        return { kind: 'blocked', error: err };
      }
      this.incomplete.delete(main.path);
      return this.refuse(unit, err, flog);
    }
  }

  /**
   * Moves a unit out of the inbox into one of the agent's folders and
   * returns `finish`'s outcome. When the folder is refused (a link planted
   * in its place), the unit stays where it is, remembered so that it is not
   * taken again, and its move is tried again at each poll.
   */
  private async leave(
    taken: { path: string; look: string },
    unit: Unit,
    to: OwnFolder,
    finish: (movedTo: string) => IntakeOutcome,
    flog: Logger,
    then?: (folder: HeldFolder, movedTo: string) => Promise<void>,
  ): Promise<IntakeOutcome> {
    const move = () => moveUnit(this.deps.config.inbox.dir, to, unit, then);
    try {
      const movedTo = await move();
      this.refusedFolders.delete(join(this.deps.config.inbox.dir, to));
      return finish(movedTo);
    } catch (e) {
      if (!isFolderRefused(e)) throw e;
      // Remembered under the unit that was taken: it is what the next poll offers again.
      this.unmoved.set(taken.path, { look: taken.look, move, finish });
      this.folderRefused(e, flog);
      return { kind: 'retry', error: e };
    }
  }

  /** A unit that could not leave the inbox: moved now if its folder is fixed; undefined while it is not. */
  private async moveAgain(main: InboxFile, unmoved: Unmoved): Promise<IntakeOutcome | undefined> {
    const flog = this.deps.log.with({ file: main.name, source: main.source });
    try {
      const movedTo = await unmoved.move();
      this.unmoved.delete(main.path);
      this.refusedFolders.delete(dirname(movedTo));
      flog.info('moved out of the inbox now that its folder is usable', { moved_to: movedTo });
      return unmoved.finish(movedTo);
    } catch (e) {
      const err = asAirlockError(e);
      if (isFolderRefused(err)) this.folderRefused(err, flog);
      else flog.error('could not move the file out of the inbox; tried again at the next poll', { class: err.kind, reason: err.reason, error: err.message });
      return undefined;
    }
  }

  /** Says (once per change) that a folder of the inbox is refused, in the log and the journal. */
  private folderRefused(e: FolderRefused, flog: Logger): void {
    const folder = e.folder;
    if (this.refusedFolders.get(folder) === e.message) return;
    this.refusedFolders.set(folder, e.message);
    flog.error('inbox folder refused; the file stays in the inbox until the folder is fixed', { folder, reason: e.reason, error: e.message, hint: e.hint });
    const journal = Journal.open(this.deps.config.stateDir);
    try {
      journal.record({ kind: 'inbox.folder', outcome: 'refused', subject: folder, reason: e.reason, message: e.message });
    } finally {
      journal.close();
    }
  }

  /**
   * A refused unit goes to quarantine/. A split set whose refusal names one
   * of its parts (damaged: another hash or size) gives up only that part:
   * over a one-way channel the vendor can resend just it, and the others
   * wait for it here.
   */
  private async refuse(unit: Unit, err: AirlockError, flog: Logger, whole = false): Promise<IntakeOutcome> {
    const damaged = whole ? undefined : unit.files.find((f) => f !== unit.main && f.name === err.subject);
    const out: Unit = damaged ? { main: damaged, files: [damaged] } : unit;
    const quarantined = (movedTo: string): IntakeOutcome => {
      this.recordQuarantine(out.main, err, movedTo);
      if (damaged) {
        flog.warn('damaged part quarantined; the other parts wait for it to be sent again', { part: damaged.name, class: err.kind, reason: err.reason, error: err.message, moved_to: movedTo });
      } else {
        flog.warn(isTrustMetadataName(out.main.name) ? 'trust metadata refused and quarantined' : 'bundle refused and quarantined', { class: err.kind, reason: err.reason, error: err.message, moved_to: movedTo, ...(unit.files.length > 1 ? { files: unit.files.length } : {}) });
      }
      return { kind: 'quarantined', error: err, movedTo, files: out.files };
    };
    return this.leave({ path: unit.main.path, look: lookOf(unit.files) }, out, 'quarantine', quarantined, flog, (folder, movedTo) => writeReason(folder, out, err, movedTo, this.now));
  }

  /**
   * A delta that arrived before its base (say the base's parts are still
   * coming): it stays in the inbox, said once, and is tried again after each
   * later import. Unchanged for giveUpAfter with no base, it is quarantined.
   */
  private async waitForBase(unit: Unit, err: AirlockError, look: string, flog: Logger): Promise<IntakeOutcome> {
    const path = unit.main.path;
    const prev = this.baseless.get(path);
    const since = prev?.look === look ? prev.since : this.now;
    if (this.now - since >= this.deps.config.inbox.giveUpAfterMs) {
      this.baseless.delete(path);
      const gaveUp = policyError(`${err.message}; its base did not arrive in ${spanOf(this.now - since)}`, { reason: err.reason, subject: err.subject, hint: err.hint });
      return this.refuse(unit, gaveUp, flog);
    }
    this.baseless.set(path, { look, since, imports: this.imports, error: err });
    if (prev?.look !== look) flog.info('delta waits for its base; it is tried again after the next import', { base: err.subject, error: err.message });
    return { kind: 'retry', error: err };
  }

  /** A split set with parts missing or still arriving: said once per change; unchanged for giveUpAfter, quarantined whole. */
  private async waitForParts(item: Extract<InboxItem, { kind: 'waiting' }>): Promise<IntakeOutcome | undefined> {
    const unit: Unit = { main: item.index, files: [item.index, ...item.present] };
    const names = [...item.missing, ...item.arriving].map((p) => p.name);
    const w = this.noteWaiting(item.index.path, unit.files, names.join(','));
    if (w.tell) {
      this.deps.log.info('split bundle waits for parts', {
        file: item.index.name,
        source: item.index.source,
        bundle: item.label,
        waiting: names.length,
        bytes: [...item.missing, ...item.arriving].reduce((n, p) => n + p.size, 0),
        missing: item.missing.map((p) => p.name).join(',') || undefined,
        arriving: item.arriving.map((p) => p.name).join(',') || undefined,
      });
    }
    if (this.now - w.since < this.deps.config.inbox.giveUpAfterMs) return undefined;
    this.waiting.delete(item.index.path);
    const err = integrityError(`${item.label} (${item.index.name}): ${names.length} part(s) still missing or incomplete after ${spanOf(this.now - w.since)} without a change: ${names.join(', ')}`, {
      reason: 'incomplete',
      subject: names[0]!,
      hint: 'send the missing parts again, then the index',
    });
    return this.refuse(unit, err, this.deps.log.with({ file: item.index.name, source: item.index.source }), true);
  }

  /** A part no index lists: it waits for its index; unchanged for giveUpAfter, quarantined. */
  private async waitForIndex(part: InboxFile): Promise<IntakeOutcome | undefined> {
    const index = basename(partNameOf(part.path)!.index);
    const w = this.noteWaiting(part.path, [part], index);
    if (w.tell) this.deps.log.info('part waits for its index', { file: part.name, source: part.source, index, bytes: part.size });
    if (this.now - w.since < this.deps.config.inbox.giveUpAfterMs) return undefined;
    this.waiting.delete(part.path);
    const err = integrityError(`${part.name} is a part of a split bundle, but no index listing it arrived in ${spanOf(this.now - w.since)}: ${index}`, {
      reason: 'no-parts-index',
      subject: part.name,
      hint: `send ${index} (it names every part) along with the parts`,
    });
    return this.refuse({ main: part, files: [part] }, err, this.deps.log.with({ file: part.name, source: part.source }));
  }

  private forgetWaiting(files: InboxFile[]): void {
    for (const f of files) this.waiting.delete(f.path);
  }

  /**
   * Since when a waiting set or part has looked the same (a change restarts
   * the giveUpAfter clock), and whether what it waits for (`about`) is new
   * and worth a log line: once per change, not at every poll.
   */
  private noteWaiting(key: string, files: InboxFile[], about: string): { since: number; tell: boolean } {
    const look = lookOf(files);
    const w = this.waiting.get(key);
    const since = w?.look === look ? w.since : this.now;
    this.waiting.set(key, { look, since, about });
    return { since, tell: w?.about !== about };
  }

  private gaveUp(name: string, size: number, f: Failure): AirlockError {
    return integrityError(`${name} is still incomplete after ${spanOf(this.now - f.since)} unchanged (${size} bytes): the upload was cut short`, {
      reason: 'incomplete',
      subject: name,
      hint: 'upload the bundle again',
    });
  }

  /**
   * On arrival, a bundle with stacks waits in the queue for the window; in
   * import-only mode it does not. Whether this node is a swarm manager is
   * not asked here: an engine that is stopping says "inactive" for a moment,
   * and that one answer must not decide for good. The deployer asks at each
   * poll (a worker keeps its bundles waiting until it is a manager).
   */
  private async queue(result: ImportResult, file: InboxFile): Promise<boolean> {
    if (this.deps.config.apply.mode !== 'on-arrival') return false;
    const journal = Journal.open(this.deps.config.stateDir);
    try {
      const manifest = new BundleRecords(journal).manifest(result.bundleId);
      if (manifest.stacks.length === 0) return false;
      return new AgentQueue(journal).enqueue(result.bundleId, file.path);
    } finally {
      journal.close();
    }
  }

  private recordQuarantine(file: InboxFile, err: AirlockError, movedTo: string): void {
    const journal = Journal.open(this.deps.config.stateDir);
    try {
      journal.record({ kind: 'inbox.quarantine', outcome: 'refused', subject: file.name, reason: err.reason, message: err.message, details: { file: file.path, movedTo } });
    } finally {
      journal.close();
    }
  }
}

/** The file that names an item, and every file of it. */
function unitOf(item: InboxItem): Unit {
  switch (item.kind) {
    case 'bundle':
    case 'lone':
    case 'bad-index':
    case 'trust':
      return { main: item.file, files: [item.file] };
    case 'parts':
      return { main: item.index, files: [item.index, ...item.parts] };
    case 'waiting':
      return { main: item.index, files: [item.index, ...item.present] };
  }
}
