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
import { swarmRole, type Inventory, type InventoryHost } from '../remote/inventory.js';
import { forEachHost } from '../remote/for-each-host.js';
import { connectHost, type SshSession } from '../remote/ssh.js';
import { shq, uploadFile } from '../remote/upload.js';
import { onHost } from './connect.js';
import { rolloutFiles } from './rollout-files.js';

/** Not the agent's inbox: an operator's apply and a host's agent never race for one file. */
export const DEFAULT_REMOTE_DIR = '/var/lib/airlock/uploads';

export type RolloutPhase = 'connect' | 'upload' | 'import' | 'plan' | 'deploy' | 'done' | 'failed';
/** The step a host failed at. */
export type RolloutStep = Exclude<RolloutPhase, 'done' | 'failed'>;

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

export async function rolloutBundle(opts: RolloutOptions): Promise<RolloutReport> {
  // Every local file checked (a split bundle's parts by hash) before any host is contacted.
  const local = await rolloutFiles(opts.bundle);
  const report: RolloutReport = { bundle: local.bundle, hosts: [] };
  const remoteDir = opts.remoteDir ?? DEFAULT_REMOTE_DIR;
  const airlock = opts.remoteAirlock ?? 'airlock';
  const remotePath = `${remoteDir}/${basename(opts.bundle)}`;
  const progress = opts.onProgress ?? (() => undefined);
  const managers = opts.inventory.hosts.filter((h) => swarmRole(h) === 'manager');
  const targets = opts.dryRun ? managers.slice(0, 1) : opts.inventory.hosts;

  const sessions = new Map<string, SshSession>();
  const reports = new Map<string, HostReport>();
  /** The step each host is at, so that a failure says where it happened. */
  const steps = new Map<string, RolloutStep>();
  const stopIfInterrupted = (host: InventoryHost, step: RolloutStep) => {
    if (opts.interrupt?.aborted) throw onHost(host, step, interrupted(step));
  };
  try {
    const outcomes = await forEachHost(targets, opts.parallel, async (host) => {
      const r = blankReport(host);
      reports.set(host.name, r);
      steps.set(host.name, 'connect');
      stopIfInterrupted(host, 'connect');
      progress(host.name, 'connect', host.address);
      const session = await connectHost(host, { ...(opts.acceptNew ? { acceptNew: true } : {}) }).catch((e: unknown) => {
        throw onHost(host, 'connect', e);
      });
      sessions.set(host.name, session);
      const total = local.files.reduce((n, f) => n + f.size, 0);
      const sent: FileUpload[] = [];
      let done = 0;
      steps.set(host.name, 'upload');
      for (const f of local.files) {
        const offset = done;
        stopIfInterrupted(host, 'upload');
        const up = await uploadFile(session.client, f.path, {
          remoteDir,
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
      const up = r.upload!;
      if (opts.dryRun) return r;
      steps.set(host.name, 'import');
      stopIfInterrupted(host, 'import');
      progress(host.name, 'import', 'verify, store, load images');
      const imported = (await runAirlock(session, airlock, ['bundle', 'import', remotePath, '--json']).catch((e: unknown) => {
        throw onHost(host, 'import', e);
      })) as { newBlobs: number; alreadyImported: boolean; images?: { loaded: string[]; present: string[] } };
      r.import = { newBlobs: imported.newBlobs, alreadyImported: imported.alreadyImported, images: (imported.images?.loaded.length ?? 0) + (imported.images?.present.length ?? 0) };
      progress(host.name, 'done', up.skipped ? 'had the bundle; imported' : 'uploaded; imported');
      return r;
    });
    for (const o of outcomes) {
      if (o.ok) report.hosts.push(o.value);
      else {
        // What got done before the failure (the upload, say) stays in the report.
        report.hosts.push({ ...(reports.get(o.host.name) ?? blankReport(o.host)), ok: false, error: errorOf(o.error, steps.get(o.host.name) ?? 'connect') });
        progress(o.host.name, 'failed', o.error.message);
      }
    }
    if (local.stacks === 0) return report;
    // Deploy through the first manager that has the bundle; it journals the deployment.
    const manager = report.hosts.find((h) => h.ok && h.role === 'manager');
    if (opts.interrupt?.aborted) {
      const step = opts.dryRun ? 'plan' : 'deploy';
      report.deploy = { host: manager?.host ?? '', ok: false, error: errorOf(interrupted(step), step) };
      return report;
    }
    if (!manager) {
      const failed = report.hosts.filter((h) => h.role === 'manager' && h.error).map((h) => `${h.host} failed at ${h.error!.step}`);
      const why = failed.length > 0 ? failed.join(', ') : 'the inventory names none';
      report.deploy = {
        host: '',
        ok: false,
        error: { step: opts.dryRun ? 'plan' : 'deploy', kind: 'remote', reason: 'no-manager', message: `no swarm manager imported the bundle (${why}): nothing was deployed`, exitCode: ExitCode.remote },
      };
      return report;
    }
    const session = sessions.get(manager.host)!;
    const timeout = opts.timeout ? ['--timeout', opts.timeout] : [];
    progress(manager.host, opts.dryRun ? 'plan' : 'deploy', opts.dryRun ? 'planning' : 'deploying the stacks, waiting for convergence');
    try {
      const result = await runAirlock(session, airlock, opts.dryRun ? ['bundle', 'plan', remotePath, '--json'] : ['bundle', 'apply', remotePath, '--json', ...timeout]);
      report.deploy = { host: manager.host, ok: true, result };
      progress(manager.host, 'done', opts.dryRun ? 'planned' : 'deployed');
    } catch (e) {
      const err = onHost(session.host, opts.dryRun ? 'plan' : 'deploy', e);
      report.deploy = { host: manager.host, ok: false, error: errorOf(err, opts.dryRun ? 'plan' : 'deploy') };
      progress(manager.host, 'failed', err.message);
    }
    return report;
  } finally {
    for (const s of sessions.values()) s.close();
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
 */
async function runAirlock(session: SshSession, airlock: string, args: string[]): Promise<unknown> {
  const command = [airlock, ...args].map(shq).join(' ');
  const r = await session.exec(command);
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  let parsed: Record<string, unknown> | undefined;
  try {
    parsed = JSON.parse(last) as Record<string, unknown>;
  } catch {
    parsed = undefined;
  }
  if (r.code === 0 && parsed) return parsed;
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
