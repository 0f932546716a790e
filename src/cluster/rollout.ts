/**
 * `airlock bundle apply BUNDLE --inventory hosts.yml`: the bundle goes to
 * every host over SFTP (resumable, checked on the host), every host runs its
 * own `airlock bundle import` (its own trust store, content store, journal
 * and engine), then one manager runs `airlock bundle apply`, journaled
 * there, and waits for convergence. docs/remote.md says why the hosts run
 * airlock themselves rather than being driven over the forwarded socket.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { openBundleFile, readBundleHead } from '../bundle/reader.js';
import { parseManifest } from '../bundle/manifest.js';
import { AirlockError, ExitCode, type ExitCodeName } from '../errors/index.js';
import { swarmRole, type Inventory, type InventoryHost } from '../remote/inventory.js';
import { connectHost, forEachHost, type SshSession } from '../remote/ssh.js';
import { shq, uploadFile } from '../remote/upload.js';
import { onHost } from './connect.js';

/** Not the agent's inbox: an operator's apply and a host's agent never race for one file. */
export const DEFAULT_REMOTE_DIR = '/var/lib/airlock/uploads';

export type RolloutPhase = 'connect' | 'upload' | 'import' | 'plan' | 'deploy' | 'done' | 'failed';

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
}

export interface HostReport {
  host: string;
  address: string;
  role: 'manager' | 'worker';
  ok: boolean;
  upload?: { skipped: boolean; resumedFrom: number; bytesSent: number };
  import?: { newBlobs: number; alreadyImported: boolean; images: number };
  error?: { kind: string; reason: string; message: string; exitCode: number };
}

export interface RolloutReport {
  bundle: { name: string; version: string; sha256: string; bytes: number };
  hosts: HostReport[];
  /** The manager that deployed (or planned), and what it said. */
  deploy?: { host: string; ok: boolean; result?: unknown; error?: HostReport['error'] };
}

export async function rolloutBundle(opts: RolloutOptions): Promise<RolloutReport> {
  const head = await readBundleHead(await openBundleFile(opts.bundle));
  const manifest = parseManifest(head.manifestBytes);
  const { sha256, bytes } = await hashFile(opts.bundle);
  const report: RolloutReport = { bundle: { name: manifest.name, version: manifest.version, sha256, bytes }, hosts: [] };
  const remoteDir = opts.remoteDir ?? DEFAULT_REMOTE_DIR;
  const airlock = opts.remoteAirlock ?? 'airlock';
  const remotePath = `${remoteDir}/${basename(opts.bundle)}`;
  const progress = opts.onProgress ?? (() => undefined);
  const managers = opts.inventory.hosts.filter((h) => swarmRole(h) === 'manager');
  const targets = opts.dryRun ? managers.slice(0, 1) : opts.inventory.hosts;

  const sessions = new Map<string, SshSession>();
  const reports = new Map<string, HostReport>();
  try {
    const outcomes = await forEachHost(targets, opts.parallel, async (host) => {
      const r = blankReport(host);
      reports.set(host.name, r);
      progress(host.name, 'connect', host.address);
      const session = await connectHost(host, { ...(opts.acceptNew ? { acceptNew: true } : {}) }).catch((e: unknown) => {
        throw onHost(host, 'connect', e);
      });
      sessions.set(host.name, session);
      const up = await uploadFile(session.client, opts.bundle, {
        remoteDir,
        sha256,
        host: host.name,
        onProgress: (sent, total) => progress(host.name, 'upload', `${Math.floor((100 * sent) / Math.max(total, 1))}%`),
      }).catch((e: unknown) => {
        throw onHost(host, 'upload', e);
      });
      r.upload = { skipped: up.skipped, resumedFrom: up.resumedFrom, bytesSent: up.bytesSent };
      if (opts.dryRun) return r;
      progress(host.name, 'import', 'verify, store, load images');
      const imported = (await runAirlock(session, airlock, ['bundle', 'import', remotePath, '--json'])) as { newBlobs: number; alreadyImported: boolean; images?: { loaded: string[]; present: string[] } };
      r.import = { newBlobs: imported.newBlobs, alreadyImported: imported.alreadyImported, images: (imported.images?.loaded.length ?? 0) + (imported.images?.present.length ?? 0) };
      progress(host.name, 'done', up.skipped ? 'had the bundle; imported' : 'uploaded; imported');
      return r;
    });
    for (const o of outcomes) {
      if (o.ok) report.hosts.push(o.value);
      else {
        // What got done before the failure (the upload, say) stays in the report.
        report.hosts.push({ ...(reports.get(o.host.name) ?? blankReport(o.host)), ok: false, error: errorOf(o.error) });
        progress(o.host.name, 'failed', o.error.message);
      }
    }
    if (manifest.stacks.length === 0) return report;
    // Deploy through the first manager that has the bundle; it journals the deployment.
    const manager = report.hosts.find((h) => h.ok && h.role === 'manager');
    if (!manager) {
      report.deploy = { host: '', ok: false, error: { kind: 'remote', reason: 'no-manager', message: 'no swarm manager has the bundle: nothing was deployed', exitCode: ExitCode.remote } };
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
      report.deploy = { host: manager.host, ok: false, error: errorOf(err) };
      progress(manager.host, 'failed', err.message);
    }
    return report;
  } finally {
    for (const s of sessions.values()) s.close();
  }
}

function blankReport(host: InventoryHost): HostReport {
  return { host: host.name, address: host.address, role: swarmRole(host), ok: true };
}

const errorOf = (e: AirlockError): NonNullable<HostReport['error']> => ({ kind: e.kind, reason: e.reason, message: e.message, exitCode: e.exitCode });

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

async function hashFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), async function* (source) {
    for await (const chunk of source) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
  });
  return { sha256: hash.digest('hex'), bytes };
}
