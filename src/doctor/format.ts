import { table } from '../cli/format.js';
import type { CheckStatus } from './checks.js';

/** What a line of a check report shows: doctor's checks and the engine preflight's. */
export interface ReportedCheck {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a warning or failure; shown under the table. */
  hint?: string | undefined;
}

/**
 * One line per check (`PASS  kernel  6.1.0 …`), then for each check that
 * did not pass its name and what to do: the layout `airlock doctor` prints.
 */
export function formatChecks(checks: readonly ReportedCheck[]): string {
  const lines = [table(checks.map((c) => [c.status.toUpperCase(), c.name, c.detail]))];
  for (const c of checks) if (c.hint && c.status !== 'pass') lines.push(`  ${c.name}: ${c.hint}`);
  return lines.join('\n');
}
