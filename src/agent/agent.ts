/**
 * `airlock agent`: the unattended host. Takes bundles from its inbox
 * sources, imports them at once, deploys them inside the maintenance window,
 * joins the swarm on first boot, prunes, and checks for drift, all on
 * schedules from agent.yaml. One piece of work runs at a time; FTP downloads
 * run beside that queue, so a slow server delays only its own files.
 */
import { agentSealing } from './sealing.js';
import { mkdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import cron, { type ScheduledTask } from 'node-cron';
import { cronLogger } from './cron-log.js';
import { isManager, recoverHost } from '../apply/bundle-apply.js';
import { Docker } from '../docker/index.js';
import { AirlockError, asAirlockError, configError } from '../errors/index.js';
import { prune } from '../retention/index.js';
import { TrustStore } from '../trust/trust-store.js';
import { Journal } from '../journal/journal.js';
import { AgentQueue } from '../journal/agent-queue.js';
import { ftpSourceConfig, type AgentConfig, type FtpSourceSettings } from './config.js';
import { deployWaiting } from './deployer.js';
import { checkDrift } from './drift.js';
import { checkCertificates } from './cert-check.js';
import { FolderSource } from './inbox/folder-source.js';
import type { InboxFile } from './inbox/inbox-file.js';
import { gatherItems } from './inbox/part-sets.js';
import { inVersionOrder } from './inbox/version-order.js';
import { Intake } from './intake.js';
import { checkTrustFreshness } from './trust-check.js';
import { pruneDone } from './inbox/own-folders.js';
import { createLogger, type Logger } from './log.js';
import { loadStartableConfig } from './startable-config.js';
import { ensureSwarmMembership } from './swarm-boot.js';
import { MaintenanceWindow } from './window.js';

/** An inbox source that fetches into a local spool: the FTP poller. */
interface RemoteSource {
  /** Fetches what is complete on the server into the spool. */
  poll(signal?: AbortSignal): Promise<string[]>;
  /** What the spool holds for the agent, without asking the server. */
  ready(): Promise<string[]>;
  settle(localPath: string): Promise<void>;
  /** Resolves when no server work is left (a deletion after settle). */
  idle(): Promise<void>;
}

interface Remote {
  settings: FtpSourceSettings;
  source: RemoteSource;
  /** Ends a fetch in progress: at stop and when a reload replaces the source. */
  abort: AbortController;
  /** The fetch in progress, if any. */
  fetching?: Promise<void>;
}

export interface AgentOptions {
  configFile: string;
  log?: Logger;
  /** Where log lines go; stderr by default. */
  write?: (line: string) => void;
}

export class Agent {
  private config!: AgentConfig;
  private log!: Logger;
  private docker!: Docker;
  private intake!: Intake;
  private window: MaintenanceWindow | undefined;
  private folders: FolderSource[] = [];
  private remotes: Remote[] = [];
  private tasks: ScheduledTask[] = [];
  private rescan: NodeJS.Timeout | undefined;
  private work: Promise<void> = Promise.resolve();
  private readonly pending = new Set<string>();
  private stopping = false;
  private swarmReady = false;
  private toldWaiting = 0;
  private toldNotManager = false;
  private readonly abort = new AbortController();

  constructor(private readonly opts: AgentOptions) {}

  /** Loads the config and starts every schedule; throws on a bad config. */
  async start(): Promise<void> {
    const config = await loadStartableConfig(this.opts.configFile);
    this.log = this.opts.log ?? createLogger({ level: config.logLevel, ...(this.opts.write ? { write: this.opts.write } : {}) });
    this.docker = new Docker();
    await this.apply(config);
    this.log.info('agent started', { config: this.opts.configFile, state: config.stateDir, inbox: config.inbox.dir, apply: config.apply.mode, window: this.window?.describe() ?? 'always' });
    this.enqueue('recover', () => this.recover());
    this.enqueue('swarm', () => this.joinSwarm());
    this.enqueue('poll', () => this.poll());
    if (config.certificates.schedule) this.enqueue('certificates', () => this.certificates());
    if (config.trust.schedule) this.enqueue('trust freshness', () => this.trustFreshness());
  }

  /** SIGHUP: reads the config again; a bad one is logged and the running one kept. */
  async reload(): Promise<void> {
    let next: AgentConfig;
    try {
      next = await loadStartableConfig(this.opts.configFile);
    } catch (e) {
      const err = asAirlockError(e);
      this.log.error('config reload failed; keeping the running config', { error: err.message });
      return;
    }
    this.teardown();
    // A new source must not write a spool an old fetch still writes: the old one stops (its partial resumes).
    await this.fetchesEnded();
    await this.apply(next);
    this.log.info('config reloaded', { config: this.opts.configFile });
    this.enqueue('swarm', () => this.joinSwarm());
    this.enqueue('poll', () => this.poll());
  }

  /** SIGTERM: no new work; the work in hand finishes (an apply is journaled and resumable either way). */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info('stopping: finishing the current work');
    this.teardown();
    this.abort.abort();
    await this.fetchesEnded();
    await this.work;
    await Promise.all(this.remotes.map((r) => r.source.idle()));
    await this.docker.close();
    this.log.info('agent stopped');
  }

  /** Resolves when the queued work has run: for tests and for stop. */
  idle(): Promise<void> {
    return this.work;
  }

  /** Today's trust store, loaded afresh at each use: a key revoked or a dir opened up is seen at once. */
  private readonly trust = (): Promise<TrustStore> => TrustStore.load(this.config.trustDir, { stateDir: this.config.stateDir });

  private async apply(config: AgentConfig): Promise<void> {
    this.config = config;
    this.intake = new Intake({ config, docker: this.docker, trust: this.trust, log: this.log });
    await mkdir(config.inbox.dir, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
      throw configError(`${config.file}: inbox.dir: cannot make ${config.inbox.dir}: ${e.code ?? e.message}`, {
        subject: config.inbox.dir,
        reason: 'bad-config',
        hint: 'under systemd a folder outside /var/lib/airlock needs a ReadWritePaths= drop-in (docs/systemd.md)',
      });
    });
    this.folders = config.inbox.sources.flatMap((s) => (s.type === 'folder' ? [new FolderSource(s.name, s.path, s.complete, this.log)] : []));
    for (const f of this.folders) {
      await f.ensureDir().catch((e: Error) => this.log.error('cannot make inbox folder', { dir: f.dir, error: e.message }));
      if (config.inbox.watch) f.watch(() => this.enqueue('poll', () => this.poll()));
    }
    this.remotes = [];
    for (const s of config.inbox.sources) if (s.type === 'ftp') this.remotes.push({ settings: s, source: await this.ftpSource(s), abort: new AbortController() });
    this.window = config.apply.window ? new MaintenanceWindow(config.apply.window.cron, config.apply.window.durationMs) : undefined;

    const every = (expr: string, name: string, run: () => Promise<void>) => this.tasks.push(cron.schedule(expr, () => this.enqueue(name, run), { name, logger: cronLogger(this.log, name) }));
    every(config.inbox.poll, 'poll', () => this.poll());
    for (const r of this.remotes) if (r.settings.poll !== config.inbox.poll) every(r.settings.poll, `poll ${r.settings.name}`, () => this.poll(r.settings.name));
    if (this.window) every(this.window.expression, 'window', async () => this.deploy());
    if (config.retention.schedule) every(config.retention.schedule, 'prune', () => this.prune());
    if (config.drift.schedule) every(config.drift.schedule, 'drift', () => this.drift());
    if (config.certificates.schedule) every(config.certificates.schedule, 'certificates', () => this.certificates());
    if (config.trust.schedule) every(config.trust.schedule, 'trust freshness', () => this.trustFreshness());
    this.log.setLevel(config.logLevel);
  }

  private async ftpSource(s: FtpSourceSettings): Promise<RemoteSource> {
    // Loaded only when an FTP source is configured: most hosts take a local folder.
    const mod = (await import(new URL('./inbox/ftp-source.js', import.meta.url).href)) as {
      FtpSource: new (cfg: object, spool: string, log: Logger) => RemoteSource;
    };
    return new mod.FtpSource(ftpSourceConfig(s), join(this.config.stateDir, 'spool', s.name.replace(/[^A-Za-z0-9._-]/g, '_')), this.log.with({ source: s.name }));
  }

  private teardown(): void {
    for (const t of this.tasks) void t.destroy();
    this.tasks = [];
    for (const f of this.folders) f.close();
    for (const r of this.remotes) r.abort.abort();
    clearTimeout(this.rescan);
    this.window?.dispose();
  }

  /** Queues a piece of work unless the same is already waiting; failures are logged, never thrown. */
  private enqueue(name: string, run: () => Promise<void>): void {
    if (this.stopping || this.pending.has(name)) return;
    this.pending.add(name);
    this.work = this.work.then(async () => {
      this.pending.delete(name);
      if (this.stopping && name !== 'recover') return;
      try {
        await run();
      } catch (e) {
        const err = asAirlockError(e);
        this.log.error(`${name} failed`, { class: err.kind, reason: err.reason, error: err.message });
      }
    });
  }

  /** Start-up recovery (it may wait on the engine for up to the apply timeout): said as it begins and as it ends. */
  private async recover(): Promise<void> {
    const started = Date.now();
    this.log.info('start-up recovery: closing what an interrupted deployment left behind');
    const closed = await recoverHost({ stateDir: this.config.stateDir, docker: this.docker, timeoutMs: this.config.apply.timeoutMs, revocation: { trust: this.trust }, sealing: agentSealing(this.config) });
    for (const d of closed) this.log.warn('recovered an interrupted deployment', { stack: d.stack, deployment: d.id, step: d.step, status: d.status, reason: d.reason });
    this.log.info('start-up recovery done', { recovered: closed.length, ms: Date.now() - started });
  }

  private async joinSwarm(): Promise<void> {
    if (this.swarmReady) return;
    if (this.config.swarm.mode === 'none') {
      this.swarmReady = true;
      return;
    }
    // No engine yet (a first boot before its engine bundle came): asked once, not retried for the client's half minute.
    await this.docker.system.ping({ retry: false }).catch((e: unknown) => {
      throw new AirlockError('engine', `no engine answers yet (${asAirlockError(e).message}): the swarm is joined once one runs`, { reason: 'engine-unreachable' });
    });
    const journal = Journal.open(this.config.stateDir);
    try {
      await ensureSwarmMembership(this.docker, this.config.swarm, journal, this.log);
      this.swarmReady = true;
    } finally {
      journal.close();
    }
  }

  /** Starts a fetch from the FTP sources, takes what their spools hold, then every complete file of the folders. */
  private async poll(only?: string): Promise<void> {
    if (!this.swarmReady) await this.joinSwarm().catch((e) => this.log.error('swarm membership not settled; tried again at the next poll', { error: asAirlockError(e).message }));
    for (const r of this.remotes) {
      if (only && r.settings.name !== only) continue;
      this.fetch(r);
      await this.takeSpooled(r);
    }
    if (!only) {
      folders: for (const f of this.folders) {
        for (const item of await f.scan()) {
          if (this.stopping) return;
          const outcome = await this.intake.takeItem(item);
          if (outcome?.kind === 'blocked') break folders;
          if (outcome && outcome.kind !== 'retry') for (const file of outcome.files) f.forget(file.name);
        }
      }
      this.scheduleRescan();
      // First boot: an engine bundle taken just now brought the engine the swarm join needs.
      if (!this.swarmReady) await this.joinSwarm().catch((e) => this.log.error('swarm membership not settled; tried again at the next poll', { error: asAirlockError(e).message }));
    }
    await this.deploy();
  }

  /**
   * Fetches from one FTP source beside the work queue, unless a fetch from it
   * is still running; what it brings is taken through the queue. However slow
   * the server, imports, deploys and drift checks go on.
   */
  private fetch(r: Remote): void {
    if (r.fetching || this.stopping || r.abort.signal.aborted) return;
    const name = r.settings.name;
    r.fetching = r.source
      .poll(AbortSignal.any([this.abort.signal, r.abort.signal]))
      .then(
        (ready) => {
          if (ready.length > 0) this.enqueue(`take ${name}`, async () => {
            await this.takeSpooled(r);
            await this.deploy();
          });
        },
        (e: unknown) => {
          if (this.stopping || r.abort.signal.aborted) return;
          this.log.error('FTP poll failed', { source: name, error: asAirlockError(e).message });
        },
      )
      .finally(() => (r.fetching = undefined));
  }

  /** Resolves once no fetch runs (each was told to stop by its abort controller). */
  private async fetchesEnded(): Promise<void> {
    await Promise.all(this.remotes.map((r) => r.fetching));
  }

  /** Takes every complete file an FTP source's spool holds, and settles what left it. */
  private async takeSpooled(r: Remote): Promise<void> {
    // What the spool holds is whole: a split set there waits only for parts not fetched yet.
    const files: InboxFile[] = [];
    for (const path of await r.source.ready()) {
      const { size, mtimeMs } = await stat(path);
      files.push({ source: r.settings.name, path, name: basename(path), size, mtimeMs });
    }
    for (const item of await inVersionOrder(await gatherItems(files, (f) => f))) {
      if (this.stopping) return;
      const outcome = await this.intake.takeItem(item);
      if (outcome?.kind === 'blocked') return;
      if (outcome && outcome.kind !== 'retry') for (const f of outcome.files) await r.source.settle(f.path);
    }
  }

  /** A file still settling is looked at again once it could be stable, not only at the next poll. */
  private scheduleRescan(): void {
    clearTimeout(this.rescan);
    const waiting = this.folders.some((f) => f.waiting > 0);
    const stable = this.config.inbox.sources.find((s) => s.complete.mode === 'stable');
    if (!waiting || !stable || stable.complete.mode !== 'stable') return;
    this.rescan = setTimeout(() => this.enqueue('poll', () => this.poll()), stable.complete.stableForMs + 100);
    this.rescan.unref();
  }

  /** Deploys what waits, when the window is open (or there is none). */
  private async deploy(): Promise<void> {
    if (this.config.apply.mode !== 'on-arrival' || this.stopping) return;
    const journal = Journal.open(this.config.stateDir);
    const waiting = (() => {
      try {
        return new AgentQueue(journal).waiting().length;
      } finally {
        journal.close();
      }
    })();
    if (waiting === 0) return;
    const now = new Date();
    if (this.window && !this.window.isOpen(now)) {
      // Said once per change, not at every poll.
      const level = waiting === this.toldWaiting ? 'debug' : 'info';
      this.log[level]('bundles wait for the maintenance window', { waiting, window: this.window.describe() });
      this.toldWaiting = waiting;
      return;
    }
    this.toldWaiting = 0;
    await deployWaiting({ config: this.config, docker: this.docker, trust: this.trust, log: this.log, mayDeploy: () => this.managerNow(waiting) });
  }

  /**
   * Stacks are deployed from a swarm manager only. Asked at every poll that
   * has work, never once for good: an engine that is stopping or restarting
   * says "inactive" for a while. Said once per change.
   */
  private async managerNow(waiting: number): Promise<boolean> {
    const manager = await isManager(this.docker);
    if (!manager && !this.toldNotManager) this.log.info('this node is not a swarm manager now (or its engine does not answer): bundles wait, and are deployed once it is one', { waiting });
    if (manager && this.toldNotManager) this.log.info('this node is a swarm manager again: deploying what waits', { waiting });
    this.toldNotManager = !manager;
    return manager;
  }

  private async prune(): Promise<void> {
    const r = await prune({ stateDir: this.config.stateDir, keep: this.config.retention.keep, docker: this.docker, lockWaitMs: 10 * 60_000 });
    this.log.info('pruned', { bundles: r.bundles.length, blobs: r.blobs.length, images: r.images.length, bytes: r.bytes.total });
    const removed = await pruneDone(this.intake.doneDir, this.config.inbox.keepDone);
    if (removed.length > 0) this.log.info('removed old bundle files from done/', { files: removed.length, kept: this.config.inbox.keepDone });
  }

  private async certificates(): Promise<void> {
    await checkCertificates(this.docker, this.config.certificates.warnMs, this.log);
  }

  private async trustFreshness(): Promise<void> {
    await checkTrustFreshness(this.config, this.log);
  }

  private async drift(): Promise<void> {
    await checkDrift({ stateDir: this.config.stateDir, docker: this.docker, reapply: this.config.drift.reapply, timeoutMs: this.config.apply.timeoutMs, trust: this.trust, log: this.log, sealing: agentSealing(this.config) });
  }
}
