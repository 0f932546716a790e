/**
 * The engine preflight: whether this host can take the Docker Engine a
 * bundle carries (or, for `engine status`, any engine), checked before
 * anything is installed. Facts are read once (preflight/host-facts.ts),
 * judged by pure rules (preflight/rules.ts); docs/engine-install.md lists
 * every check.
 */
import type { EngineRecord } from '../bundle/manifest-format.js';
import { formatChecks } from '../doctor/format.js';
import { AirlockError } from '../errors/index.js';
import { DEFAULT_DATA_ROOT } from './host-paths.js';
import { AIRLOCK_ENGINE_HOME, type HostFactsReader } from './preflight/facts.js';
import { readHostFacts } from './preflight/host-facts.js';
import { BUNDLE_REASONS, judgeHost, type InstalledEngine, type PreflightCheck } from './preflight/rules.js';

export type { HostFacts, HostFactsReader } from './preflight/facts.js';
export type { InstalledEngine, PreflightCheck, PreflightReason } from './preflight/rules.js';

export interface PreflightOptions {
  /** The engine to install; absent for `engine status`, which checks the host alone. */
  engine?: EngineRecord;
  /** The engine airlock manages here now: its ports and binaries are no conflict for an upgrade. */
  installed?: InstalledEngine;
  /** The engine's data root (the host config's `engine.dataRoot`). */
  dataRoot?: string;
  /** Bytes the engine takes once installed; by default the size of the bundle's engine files. */
  bytesNeeded?: number;
  /** Whether the host joins a swarm (the default): overlay networks need br_netfilter and vxlan. */
  swarm?: boolean;
  /** False when the host config sets the daemon key `iptables: false`: no iptables needed then. */
  iptables?: boolean;
  /** Load a loadable module that is not loaded with modprobe (it changes the host); otherwise the check says how. */
  loadModules?: boolean;
  /** Reads the host's facts; tests give their own. */
  host?: HostFactsReader;
}

export interface PreflightReport {
  /** No check failed (warnings allowed). */
  ok: boolean;
  checks: PreflightCheck[];
}

/** Where the binaries go: the static form's folder, the package form's /usr. */
const binariesHomeOf = (engine: EngineRecord | undefined): string => (engine && engine.form !== 'static' ? '/usr' : AIRLOCK_ENGINE_HOME);

export async function runPreflight(opts: PreflightOptions = {}): Promise<PreflightReport> {
  const read = opts.host ?? readHostFacts;
  const facts = await read({ binariesHome: binariesHomeOf(opts.engine), dataRoot: opts.dataRoot ?? DEFAULT_DATA_ROOT, loadModules: opts.loadModules ?? false });
  const checks = judgeHost(facts, {
    engine: opts.engine,
    installed: opts.installed,
    swarm: opts.swarm ?? true,
    iptables: opts.iptables ?? true,
    bytesNeeded: opts.bytesNeeded ?? (opts.engine?.files ?? []).reduce((n, f) => n + f.size, 0),
  });
  return { ok: checks.every((c) => c.status !== 'fail'), checks };
}

/** One line per check, then what to do about each that did not pass: `airlock doctor`'s layout. */
export const formatPreflight = (report: PreflightReport): string => formatChecks(report.checks.map((c) => ({ name: c.name, status: c.status, detail: c.detail, hint: c.fix })));

/**
 * The refusal for a report with failures. An engine built for another
 * platform or libc, or in a form this airlock cannot install, never fits
 * this host: a policy refusal (13) with that reason, which the agent
 * quarantines. Anything else is the host's to fix, and a later try may
 * pass: `preflight-failed` (18). The message names every failing check.
 */
export function preflightError(report: PreflightReport): AirlockError {
  const failed = report.checks.filter((c) => c.status === 'fail');
  const bundleFault = failed.find((c) => c.reason !== undefined && (BUNDLE_REASONS as readonly string[]).includes(c.reason));
  const message = `the engine preflight failed: ${failed.map((c) => `${c.name}: ${c.detail}`).join('; ')}`;
  const hint = [...new Set(failed.flatMap((c) => (c.fix ? [c.fix] : [])))].join('; ') || undefined;
  const details = { ...(hint ? { hint } : {}), subject: failed.map((c) => c.name).join(', ') };
  return bundleFault ? new AirlockError('policy', message, { ...details, reason: bundleFault.reason }) : new AirlockError('preflight', message, { ...details, reason: 'preflight-failed' });
}
