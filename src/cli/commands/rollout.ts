import { loadInventory } from '../../remote/inventory.js';
import { interruptReason, rolloutBundle, type RolloutPhase, type RolloutReport } from '../../cluster/rollout.js';
import { ExitCode, usageError } from '../../errors/index.js';
import type { CommandContext } from '../command.js';
import { timeoutOption } from '../duration-option.js';
import { policyFlag } from '../sealing-inputs.js';
import { table } from '../format.js';
import { formatBytes } from '../../units/bytes.js';
import { hostLines } from '../progress.js';

/** `bundle apply --inventory`: the jump box's apply across the cluster. */
export async function rollout(bundle: string, values: CommandContext['values'], json: boolean, out: (s: string) => void): Promise<number> {
  // Checked here, before any upload: each manager's own apply takes it as given.
  timeoutOption(values.timeout);
  if (Array.isArray(values.identity) && values.identity.length > 0) {
    throw usageError('--identity does not go with --inventory: site identities never leave the site\'s hosts; each host opens sealed secrets with its own (/etc/airlock/site-keys)');
  }
  const flag = policyFlag(values);
  const sealedPolicy = flag === undefined ? undefined : flag ? '--require-sealed' : '--allow-unsealed';
  const inventory = await loadInventory(String(values.inventory));
  const parallel = values.parallel === undefined ? undefined : Number(values.parallel);
  if (parallel !== undefined && !(Number.isInteger(parallel) && parallel >= 1)) throw usageError(`--parallel ${String(values.parallel)}: give a whole number of hosts, 1 or more`);
  const lines = json ? undefined : hostLines(inventory.hosts.map((h) => h.name));
  const phases = new Map<string, RolloutPhase>();
  const interrupt = onCtrlC(phases);
  const report = await rolloutBundle({
    inventory,
    bundle,
    ...(parallel ? { parallel } : {}),
    acceptNew: values['accept-new'] === true,
    dryRun: values['dry-run'] === true,
    ...(sealedPolicy ? { sealedPolicy } : {}),
    ...(typeof values.timeout === 'string' ? { timeout: values.timeout } : {}),
    ...(typeof values['remote-airlock'] === 'string' ? { remoteAirlock: values['remote-airlock'] } : {}),
    onProgress: (host, phase, detail) => {
      phases.set(host, phase);
      lines?.set(host, phase, detail);
    },
    interrupt: interrupt.signal,
  }).finally(() => interrupt.dispose());
  lines?.finish();
  if (json) out(JSON.stringify(report));
  else out(render(report, values['dry-run'] === true));
  if (interrupt.signal.aborted) return ExitCode.interrupted;
  if (report.deploy && !report.deploy.ok) return report.deploy.error?.exitCode ?? ExitCode.remote;
  return report.hosts.some((h) => !h.ok) ? ExitCode.remote : 0;
}

/**
 * Ctrl-C once: uploads stop, nothing new starts, and what hosts are running
 * ends there and is reported. Cutting a remote deploy off half-way would only
 * leave the host a deployment to roll back. Ctrl-C again: leave at once,
 * saying which hosts still run a command (it goes on there).
 */
function onCtrlC(phases: ReadonlyMap<string, RolloutPhase>): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const onSigint = () => {
    const busy = [...phases].filter(([, p]) => p === 'import' || p === 'deploy' || p === 'plan');
    const running = busy.map(([h, p]) => `${h} (${p})`).join(', ');
    if (!ac.signal.aborted) {
      ac.abort(interruptReason());
      process.stderr.write(`\ninterrupted: uploads stop, nothing new starts${running ? `; waiting for what runs on ${running} to end, to report it` : ''} (Ctrl-C again to leave now)\n`);
      return;
    }
    const follow = busy.map(([h, p]) => `${h}: the ${p} goes on there${p === 'deploy' ? ` (its outcome: 'airlock history' on ${h})` : ''}`).join('; ');
    process.stderr.write(`left at once${follow ? `: ${follow}` : ''}\n`);
    process.exit(ExitCode.interrupted);
  };
  process.on('SIGINT', onSigint);
  return { signal: ac.signal, dispose: () => process.off('SIGINT', onSigint) };
}

function render(r: RolloutReport, dryRun: boolean): string {
  const rows = [['HOST', 'ROLE', 'UPLOAD', 'IMPORT', 'RESULT']];
  for (const h of r.hosts) {
    const upload = !h.upload ? '-' : h.upload.skipped ? 'had it' : h.upload.resumedFrom > 0 ? `resumed at ${formatBytes(h.upload.resumedFrom)}, sent ${formatBytes(h.upload.bytesSent)}` : `sent ${formatBytes(h.upload.bytesSent)}`;
    const imported = !h.import ? '-' : h.import.alreadyImported ? 'already imported' : `${h.import.newBlobs} new blobs`;
    rows.push([h.host, h.role, upload, imported, h.ok ? 'ok' : `FAILED at ${h.error!.step} (${h.error!.kind}/${h.error!.reason}): ${h.error!.message}`]);
  }
  const parts = r.bundle.parts ? `, ${r.bundle.parts} parts` : '';
  const lines = [`${r.bundle.name} ${r.bundle.version} (${formatBytes(r.bundle.bytes)}${parts})`, table(rows)];
  // What to do about each failure: the hint the host's step gave.
  for (const h of r.hosts) if (h.error?.hint) lines.push(`  ${h.host}: hint: ${h.error.hint}`);
  if (r.deploy) {
    lines.push(r.deploy.ok ? `${dryRun ? 'planned' : 'deployed'} through ${r.deploy.host}${dryRun ? '' : ': ' + deployedSummary(r.deploy.result)}` : `deploy through ${r.deploy.host || 'a manager'} FAILED: ${r.deploy.error?.message ?? ''}`);
    if (r.deploy.error?.hint) lines.push(`  hint: ${r.deploy.error.hint}`);
    if (dryRun && r.deploy.ok) lines.push(JSON.stringify(r.deploy.result, null, 2));
  }
  const failed = r.hosts.filter((h) => !h.ok).map((h) => h.host);
  if (failed.length > 0) lines.push(`failed on ${failed.length} of ${r.hosts.length} hosts: ${failed.join(', ')}`);
  return lines.join('\n');
}

function deployedSummary(result: unknown): string {
  const stacks = (result as { stacks?: { stack: string; deployment: number; services: { name: string; ready: number; desired: number }[] }[] }).stacks ?? [];
  return stacks.map((s) => `stack ${s.stack} deployment #${s.deployment} (${s.services.map((x) => `${x.name} ${x.ready}/${x.desired}`).join(', ')})`).join('; ');
}
