/**
 * Drift: what the engine runs, against the journal's last deployment of each
 * stack (src/apply/stack-drift.ts). Each drifted stack is recorded as an
 * event; it is put back only when the config says so, by restoring the
 * recorded deployment, unless the key that signed its bundle was revoked
 * since: that is never put back unattended.
 */
import type { SealingOptions } from '../seal/sealing-options.js';
import { rollbackStack } from '../apply/rollback.js';
import { stackDrift, type StackDrift } from '../apply/stack-drift.js';
import type { Engine } from '../docker/engine.js';
import { asAirlockError } from '../errors/index.js';
import { DeploymentRecords } from '../journal/deployments.js';
import { Journal } from '../journal/journal.js';
import type { TrustStore } from '../trust/trust-store.js';
import type { Logger } from './log.js';

/** Compares every stack with a committed deployment; returns the ones that drifted. */
export async function findDrift(docker: Engine, journal: Journal): Promise<StackDrift[]> {
  const deployments = new DeploymentRecords(journal);
  const drifted: StackDrift[] = [];
  for (const stack of deployments.stacks()) {
    const current = deployments.current(stack);
    const drift = current && (await stackDrift(docker, deployments, current));
    if (drift) drifted.push(drift);
  }
  return drifted;
}

export function describeDrift(d: StackDrift): string {
  const parts = [
    ...d.missing.map((s) => `${s} removed`),
    ...d.extra.map((s) => `${s} added`),
    ...d.changed.map((c) => `${c.service} changed (${c.fields.slice(0, 5).join(', ')}${c.fields.length > 5 ? ', …' : ''})`),
  ];
  return `stack ${d.stack} differs from deployment #${d.deployment}: ${parts.join('; ')}`;
}

export interface DriftCheckOptions {
  stateDir: string;
  docker: Engine;
  reapply: boolean;
  timeoutMs: number;
  /** Whose revocation list decides whether a recorded deployment may be put back. */
  trust: () => Promise<TrustStore>;
  log: Logger;
  /** The identities that open the sealed secrets a repair recreates. */
  sealing?: SealingOptions;
}

/** The scheduled check: records drift as events, and restores the recorded deployment when asked to. */
export async function checkDrift(opts: DriftCheckOptions): Promise<StackDrift[]> {
  const journal = Journal.open(opts.stateDir);
  let drifted: StackDrift[];
  try {
    drifted = await findDrift(opts.docker, journal);
    for (const d of drifted) {
      journal.record({ kind: 'drift', outcome: 'info', subject: d.stack, reason: 'drift', message: describeDrift(d), details: { ...d } });
      opts.log.warn('drift', { stack: d.stack, deployment: d.deployment, detail: describeDrift(d) });
    }
  } finally {
    journal.close();
  }
  if (drifted.length === 0) opts.log.debug('no drift');
  if (!opts.reapply) return drifted;
  for (const d of drifted) {
    opts.log.info('restoring the recorded deployment', { stack: d.stack, deployment: d.deployment });
    try {
      const r = await rollbackStack(d.stack, String(d.deployment), { stateDir: opts.stateDir, docker: opts.docker, timeoutMs: opts.timeoutMs, lockWaitMs: 10 * 60_000, revocation: { trust: opts.trust }, ...(opts.sealing ? { sealing: opts.sealing } : {}) });
      opts.log.info('drift repaired', { stack: d.stack, deployment: r.deployment, restores: r.restores });
    } catch (e) {
      // One stack that cannot be put back (a revoked key, say) leaves the others to be repaired.
      const err = asAirlockError(e);
      opts.log.error('drift not repaired', { stack: d.stack, deployment: d.deployment, class: err.kind, reason: err.reason, error: err.message });
    }
  }
  return drifted;
}
