/**
 * The agent's crash-loop guard: a deploy that kills the agent is not tried
 * for ever, and a kill from outside (an operator, a host shutting down, a
 * soak test) does not give up a good bundle. A try that never returned
 * leaves its deployment `running` at the step it died in (recovery closes
 * it as "interrupted at step X"), or no deployment when it died before one
 * began. Each such death is journaled as it is found, at the next try; the
 * bundle is given up only when its last MAX_DEATHS tries all died at the
 * same step: what a crash the deploy causes looks like, and random kills do
 * not.
 */
import { DeploymentRecords } from '../journal/deployments.js';
import type { Journal } from '../journal/journal.js';
import type { EventKind } from '../journal/event-kinds.js';

/** Tries in a row that ended with the agent gone at the same step: then the bundle is given up. */
export const MAX_DEATHS = 3;

/** Where a try died: an apply step, or `start` when no deployment had begun. */
export interface Death {
  step: string;
  deployment: number | null;
}

const KIND: EventKind = 'agent.deploy';
const REASON = 'agent-gone';

/**
 * Called as try `tryNumber` of a bundle begins (the queue counts only tries
 * that did not return): journals the death of a try before it that is not
 * journaled yet, and returns it (`noted`) with every death of the bundle,
 * newest first.
 */
export function noteDeath(journal: Journal, bundleId: number, label: string, tryNumber: number): { noted?: Death; deaths: Death[] } {
  const earlier = deathsOf(journal, label);
  // Every try before this one that did not return is journaled already (a later try returned, say).
  if (earlier.length >= tryNumber - 1) return { deaths: earlier };
  const after = Math.max(0, ...earlier.map((d) => d.deployment ?? 0));
  // The newest deployment of this bundle that a death left behind and no death named yet.
  const d = new DeploymentRecords(journal).newestInterruptedApply(bundleId, after);
  const death: Death = d ? { step: d.step, deployment: d.id } : { step: 'start', deployment: null };
  const where = d ? `at step ${d.step} (deployment #${d.id})` : 'before its deployment began';
  journal.record({ kind: KIND, outcome: 'failed', subject: label, reason: REASON, message: `try ${tryNumber - 1} ended with the agent gone ${where}`, details: { ...death } });
  return { noted: death, deaths: [death, ...earlier] };
}

/** Whether the last deaths make a crash loop: the last MAX_DEATHS all at the same step. */
export function isCrashLoop(deaths: readonly Death[]): boolean {
  const last = deaths.slice(0, MAX_DEATHS);
  return last.length === MAX_DEATHS && last.every((d) => d.step === last[0]!.step);
}

function deathsOf(journal: Journal, label: string): Death[] {
  const rows = journal.events({ kind: KIND, reason: REASON, subject: label, limit: 'all' });
  return rows.map((r) => JSON.parse(r.details ?? '{}') as Death);
}
