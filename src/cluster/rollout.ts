/**
 * `airlock bundle apply BUNDLE --inventory hosts.yml`: the bundle (or, for
 * a split bundle's index, every part and the index) goes to every host over
 * SFTP (resumable, checked on the host), every host runs its
 * own `airlock bundle import` (its own trust store, content store, journal
 * and engine), then one manager runs `airlock bundle apply`, journaled
 * there, and waits for convergence. docs/remote.md says why the hosts run
 * airlock themselves rather than being driven over the forwarded socket.
 */
import { basename } from 'node:path';
import { AirlockError, ExitCode, type ExitCodeName } from '../errors/index.js';
import { managersOf, swarmRole, type Inventory, type InventoryHost } from '../remote/inventory.js';
import { forEachHost } from '../remote/for-each-host.js';
import { connectHost, type SshSession } from '../remote/ssh.js';
import { shq } from '../remote/shell.js';
import { uploadFile } from '../remote/upload.js';
import { onHost } from './connect.js';
import { rolloutFiles, type RolloutFiles } from './rollout-files.js';

/** Not the agent's inbox: an operator's apply and a host's agent never race for one file. */
export const DEFAULT_REMOTE_DIR = '/var/lib/airlock/uploads';

export type RolloutPhase = 'connect' | 'engine' | 'upload' | 'import' | 'plan' | 'deploy' | 'done' | 'failed';
/** The step a host failed at. */
export type RolloutStep = Exclude<RolloutPhase, 'done' | 'failed'>;

/** The policy flag a host's import and apply get; each host's identities are its own (never sent from the jump box). */
const policyArgs = (opts: Pick<RolloutOptions, 'sealedPolicy'>): string[] => (opts.sealedPolicy ? [opts.sealedPolicy] : []);

export interface RolloutOptions {
  inventory: Inventory;
  bundle: string;
  parallel?: number;
  acceptNew?: boolean;
  remoteDir?: string;
  /** The airlock command on the hosts (default `airlock`, the package's /usr/bin/airlock). */
  remoteAirlock?: string;
  /** The deploy's health-gate timeout, passed to the manager's apply (e.g. `5m`). */
  timeout?: string;
  /** Plan on a manager instead of deploying; the bundle is uploaded to that manager only. */
  dryRun?: boolean;
  /** The operator's sealed-secret policy, passed to every host's import and apply; absent: each host's own. */
  sealedPolicy?: '--require-sealed' | '--allow-unsealed';
  /**
   * What each host does with the bundle: `import` it (then one manager
   * deploys), or `engine` install it where the host has no running engine
   * (`cluster up --engine`); a host whose engine runs is left alone.
   */
  install?: 'import' | 'engine';
  /**
   * `install: engine` on hosts whose engine runs and that the caller drained
   * (`cluster maintain --engine`): each host upgrades with
   * `engine install --drained-by-caller` instead of being left alone.
   */
  drainedByCaller?: boolean;
  onProgress?: (host: string, phase: RolloutPhase, detail: string) => void;
  /**
   * The operator's Ctrl-C. Uploads stop (their partials stay, to resume);
   * no import or deploy starts. What a host is already running (an import,
   * the deploy) is not cut off half-way: it ends there and is reported.
   */
  interrupt?: AbortSignal;
}

export interface FileUpload {
  name: string;
  skipped: boolean;
  resumedFrom: number;
  bytesSent: number;
}

export interface HostReport {
  host: string;
  address: string;
  role: 'manager' | 'worker';
  ok: boolean;
  /** Summed over the files sent (a split bundle's parts and index); skipped only when the host had every one. */
  upload?: { skipped: boolean; resumedFrom: number; bytesSent: number; files?: FileUpload[] };
  import?: { newBlobs: number; alreadyImported: boolean; images: number };
  /** `install: engine`: what the host's `airlock engine install` did, or `has-engine` when its engine ran already. */
  engine?: { action: string; version: string; form?: string };
  error?: RolloutError;
}

/** What went wrong on a host, as the operator needs it: where, why, what, and what to do. */
export interface RolloutError {
  step: RolloutStep;
  kind: string;
  reason: string;
  message: string;
  hint?: string;
  exitCode: number;
}

export interface RolloutReport {
  bundle: { name: string; version: string; sha256: string; bytes: number; parts?: number };
  hosts: HostReport[];
  /** The manager that deployed (or planned), and what it said. */
  deploy?: { host: string; ok: boolean; result?: unknown; error?: RolloutError };
}

/** What every step of one rollout shares. */
interface Rollout {
  opts: RolloutOptions;
  local: RolloutFiles;
  remoteDir: string;
  /** The airlock command on the hosts. */
  airlock: string;
  /** Where the bundle (or the index) lands on every host. */
  remotePath: string;
  progress: NonNullable<RolloutOptions['onProgress']>;
  sessions: Map<string, SshSession>;
  reports: Map<string, HostReport>;
  /** The step each host is at, so that a failure says where it happened. */
  steps: Map<string, RolloutStep>;
}

export async function rolloutBundle(opts: RolloutOptions): Promise<RolloutReport> {
  // Every local file checked (a split bundle's parts by hash) before any host is contacted.
  const local = await rolloutFiles(opts.bundle);
  const report: RolloutReport = { bundle: local.bundle, hosts: [] };
  const remoteDir = opts.remoteDir ?? DEFAULT_REMOTE_DIR;
  const run: Rollout = {
    opts,
    local,
    remoteDir,
    airlock: opts.remoteAirlock ?? 'airlock',
    remotePath: `${remoteDir}/${basename(opts.bundle)}`,
    progress: opts.onProgress ?? (() => undefined),
    sessions: new Map(),
    reports: new Map(),
    steps: new Map(),
  };
  const targets = opts.dryRun ? managersOf(opts.inventory).slice(0, 1) : opts.inventory.hosts;
  try {
    const outcomes = await forEachHost(targets, opts.parallel, (host) => prepareHost(run, host));
    for (const o of outcomes) {
      if (o.ok) report.hosts.push(o.value);
      else {
        // What got done before the failure (the upload, say) stays in the report.
        report.hosts.push({ ...(run.reports.get(o.host.name) ?? blankReport(o.host)), ok: false, error: errorOf(o.error, run.steps.get(o.host.name) ?? 'connect') });
        run.progress(o.host.name, 'failed', o.error.message);
      }
    }
    if (local.stacks > 0 && (opts.install ?? 'import') === 'import') await deployThroughManager(run, report);
    return report;
  } finally {
    for (const s of run.sessions.values()) s.close();
  }
}

/** A host enters `step`, unless the operator pressed Ctrl-C. */
function enter(run: Rollout, host: InventoryHost, step: RolloutStep): void {
  run.steps.set(host.name, step);
  stopIfInterrupted(run, host, step);
}

function stopIfInterrupted(run: Rollout, host: InventoryHost, step: RolloutStep): void {
  if (run.opts.interrupt?.aborted) throw onHost(host, step, interrupted(step));
}

/** One host's part before the deploy: connect, upload every file, import (a dry run stops after the upload). */
async function prepareHost(run: Rollout, host: InventoryHost): Promise<HostReport> {
  const { opts, progress } = run;
  const r = blankReport(host);
  run.reports.set(host.name, r);
  enter(run, host, 'connect');
  progress(host.name, 'connect', host.address);
  const session = await connectHost(host, { ...(opts.acceptNew ? { acceptNew: true } : {}) }).catch((e: unknown) => {
    throw onHost(host, 'connect', e);
  });
  run.sessions.set(host.name, session);
  if (opts.install === 'engine' && !opts.drainedByCaller) {
    enter(run, host, 'engine');
    const running = await runningEngine(run, session);
    if (running) {
      r.engine = { action: 'has-engine', version: running };
      progress(host.name, 'done', `has an engine (Docker ${running}): left alone`);
      return r;
    }
  }
  run.steps.set(host.name, 'upload');
  await uploadAll(run, host, session, r);
  const up = r.upload!;
  if (opts.dryRun) return r;
  if (opts.install === 'engine') return installEngine(run, host, session, r);
  enter(run, host, 'import');
  progress(host.name, 'import', 'verify, store, load images');
  const imported = (await runAirlock(session, run.airlock, ['bundle', 'import', run.remotePath, '--json', ...policyArgs(opts)]).catch((e: unknown) => {
    throw onHost(host, 'import', e);
  })) as { newBlobs: number; alreadyImported: boolean; images?: { loaded: string[]; present: string[] } };
  r.import = { newBlobs: imported.newBlobs, alreadyImported: imported.alreadyImported, images: (imported.images?.loaded.length ?? 0) + (imported.images?.present.length ?? 0) };
  progress(host.name, 'done', up.skipped ? 'had the bundle; imported' : 'uploaded; imported');
  return r;
}

/** The version of the engine that runs on the host, or undefined when none answers (`airlock engine status`). */
async function runningEngine(run: Rollout, session: SshSession): Promise<string | undefined> {
  // Exit 15 with its report: no engine runs (or its preflight fails), which is what is asked.
  const status = (await runAirlock(session, run.airlock, ['engine', 'status', '--json'], [15])) as { reported: { version: string } | null };
  return status.reported?.version;
}

/** `airlock engine install` on the host, with the bundle just uploaded. */
async function installEngine(run: Rollout, host: InventoryHost, session: SshSession, r: HostReport): Promise<HostReport> {
  enter(run, host, 'engine');
  run.progress(host.name, 'engine', 'preflight, install, start');
  const timeout = run.opts.timeout ? ['--timeout', run.opts.timeout] : [];
  const drained = run.opts.drainedByCaller ? ['--drained-by-caller'] : [];
  const done = (await runAirlock(session, run.airlock, ['engine', 'install', run.remotePath, '--json', ...timeout, ...drained]).catch((e: unknown) => {
    throw onHost(host, 'engine', e);
  })) as { outcome: string; version: string; form: string };
  r.engine = { action: done.outcome, version: done.version, form: done.form };
  run.progress(host.name, 'done', `engine ${done.form} ${done.version} ${done.outcome}`);
  return r;
}

/** Sends every file to the host, progress over all of them; `r.upload` says what was sent so far, should one fail. */
async function uploadAll(run: Rollout, host: InventoryHost, session: SshSession, r: HostReport): Promise<void> {
  const { opts, local, progress } = run;
  const total = local.files.reduce((n, f) => n + f.size, 0);
  const sent: FileUpload[] = [];
  let done = 0;
  for (const f of local.files) {
    const offset = done;
    stopIfInterrupted(run, host, 'upload');
    const up = await uploadFile(session.client, f.path, {
      remoteDir: run.remoteDir,
      sha256: f.sha256,
      host: host.name,
      ...(opts.interrupt ? { signal: opts.interrupt } : {}),
      onProgress: (n) => progress(host.name, 'upload', `${Math.floor((100 * (offset + n)) / Math.max(total, 1))}%${local.files.length > 1 ? ` (${f.name})` : ''}`),
    }).catch((e: unknown) => {
      throw onHost(host, 'upload', e);
    });
    done += f.size;
    sent.push({ name: f.name, skipped: up.skipped, resumedFrom: up.resumedFrom, bytesSent: up.bytesSent });
    r.upload = summed(sent, local.files.length > 1);
  }
}

/** Deploys (or plans) through the first manager that has the bundle; it journals the deployment. */
async function deployThroughManager(run: Rollout, report: RolloutReport): Promise<void> {
  const { opts, progress } = run;
  const step: RolloutStep = opts.dryRun ? 'plan' : 'deploy';
  const manager = report.hosts.find((h) => h.ok && h.role === 'manager');
  if (opts.interrupt?.aborted) {
    report.deploy = { host: manager?.host ?? '', ok: false, error: errorOf(interrupted(step), step) };
    return;
  }
  if (!manager) {
    const failed = report.hosts.filter((h) => h.role === 'manager' && h.error).map((h) => `${h.host} failed at ${h.error!.step}`);
    const why = failed.length > 0 ? failed.join(', ') : 'the inventory names none';
    report.deploy = {
      host: '',
      ok: false,
      error: { step, kind: 'remote', reason: 'no-manager', message: `no swarm manager imported the bundle (${why}): nothing was deployed`, exitCode: ExitCode.remote },
    };
    return;
  }
  const session = run.sessions.get(manager.host)!;
  const timeout = opts.timeout ? ['--timeout', opts.timeout] : [];
  progress(manager.host, step, opts.dryRun ? 'planning' : 'deploying the stacks, waiting for convergence');
  try {
    const result = await runAirlock(session, run.airlock, opts.dryRun ? ['bundle', 'plan', run.remotePath, '--json'] : ['bundle', 'apply', run.remotePath, '--json', ...timeout, ...policyArgs(opts)]);
    report.deploy = { host: manager.host, ok: true, result };
    progress(manager.host, 'done', opts.dryRun ? 'planned' : 'deployed');
  } catch (e) {
    const err = onHost(session.host, step, e);
    report.deploy = { host: manager.host, ok: false, error: errorOf(err, step) };
    progress(manager.host, 'failed', err.message);
  }
}

/** One upload line per host: the files' counts added up, with each file listed for a split bundle. */
function summed(files: FileUpload[], listFiles: boolean): NonNullable<HostReport['upload']> {
  return {
    skipped: files.every((f) => f.skipped),
    resumedFrom: files.reduce((n, f) => n + f.resumedFrom, 0),
    bytesSent: files.reduce((n, f) => n + f.bytesSent, 0),
    ...(listFiles ? { files } : {}),
  };
}

function blankReport(host: InventoryHost): HostReport {
  return { host: host.name, address: host.address, role: swarmRole(host), ok: true };
}

/** A step not started, or an upload stopped, because the operator pressed Ctrl-C. */
function interrupted(step: RolloutStep): AirlockError {
  const what = step === 'upload' ? 'the upload stopped; its partial stays on the host' : `the ${step} was not started`;
  return new AirlockError('interrupted', `interrupted (Ctrl-C): ${what}`, {
    reason: 'interrupted',
    hint: step === 'upload' ? 'run the command again: the upload resumes where it stopped' : 'run the command again to go on',
  });
}

/** The interruption as the signal carries it, so that an upload stopped by it says so too. */
export function interruptReason(): AirlockError {
  return interrupted('upload');
}

const errorOf = (e: AirlockError, step: RolloutStep): RolloutError => ({
  step,
  kind: e.kind,
  reason: e.reason,
  message: e.message,
  ...(e.hint === undefined ? {} : { hint: e.hint }),
  exitCode: e.exitCode,
});

/**
 * Runs airlock on the host with --json and returns what it printed; a
 * refusal comes back as the host's own error, with its class and reason.
 * `alsoReportsWith`: exit codes that still come with the report asked for (`engine status`: 15).
 */
export async function runAirlock(session: SshSession, airlock: string, args: string[], alsoReportsWith: readonly number[] = []): Promise<unknown> {
  const command = [airlock, ...args].map(shq).join(' ');
  const r = await session.exec(command);
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  let parsed: Record<string, unknown> | undefined;
  try {
    parsed = JSON.parse(last) as Record<string, unknown>;
  } catch {
    parsed = undefined;
  }
  if (parsed && typeof parsed.error !== 'string' && (r.code === 0 || alsoReportsWith.includes(r.code))) return parsed;
  if (parsed && typeof parsed.error === 'string' && parsed.error in ExitCode) {
    throw new AirlockError(parsed.error as ExitCodeName, `${args.slice(0, 2).join(' ')}: ${String(parsed.message)}`, {
      reason: String(parsed.reason ?? parsed.error),
      subject: session.host.name,
      ...(typeof parsed.hint === 'string' ? { hint: parsed.hint } : {}),
    });
  }
  const why = r.stderr.trim().split('\n').at(-1) || `exit ${r.code}`;
  throw new AirlockError('remote', `\`${command}\` failed: ${why}`, {
    reason: r.code === 127 ? 'no-airlock' : 'remote-command-failed',
    subject: session.host.name,
    ...(r.code === 127 ? { hint: 'install the airlock package on the host, or pass --remote-airlock PATH' } : {}),
  });
}
