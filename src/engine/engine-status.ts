/** `airlock engine status`: what is installed, whether it runs, the preflight, and the journal's last engine changes. */
import { existsSync } from 'node:fs';
import { EngineChanges, type EngineChangeRow } from '../journal/engine-changes.js';
import { Journal } from '../journal/journal.js';
import { journalPathIn } from '../store/state-dir.js';
import type { EngineHostConfig } from './daemon-config.js';
import type { EngineHostPaths } from './host-paths.js';
import { engineState } from './engine-state.js';
import { currentEngine, staticVersions, type InstalledEngine } from './installed.js';
import { formatPreflight, runPreflight, type PreflightReport } from './preflight.js';
import { preflightOptions } from './preflight-options.js';
import { pickSupervisor } from './supervisor.js';

export interface EngineStatus {
  installed: InstalledEngine | null;
  /** Static versions kept for rollback. */
  versions: string[];
  running: boolean;
  reported: { version: string; apiVersion: string } | null;
  swarm: { state: string; nodeId: string | null; manager: boolean } | null;
  supervisor: 'systemd' | 'direct';
  preflight: PreflightReport;
  changes: EngineChangeRow[];
}

export async function engineStatus(o: { stateDir: string; paths: EngineHostPaths; config: EngineHostConfig }): Promise<EngineStatus> {
  const installed = (await currentEngine(o.paths)) ?? null;
  const { reported, swarm } = await engineState(o.paths);
  let changes: EngineChangeRow[] = [];
  if (existsSync(journalPathIn(o.stateDir))) {
    const journal = Journal.open(o.stateDir, { readonly: true });
    try {
      changes = new EngineChanges(journal).list(5);
    } finally {
      journal.close();
    }
  }
  return {
    installed,
    versions: await staticVersions(o.paths),
    running: reported !== null,
    reported,
    swarm,
    supervisor: pickSupervisor(installed?.form ?? 'static', o.paths).kind,
    preflight: await runPreflight(preflightOptions(undefined, installed ?? undefined, o)),
    changes,
  };
}

export function engineStatusLines(s: EngineStatus): string[] {
  const lines = [
    `installed   ${s.installed ? `${s.installed.form} ${s.installed.version}${s.installed.dir ? ` (${s.installed.dir})` : ''}${s.installed.package ? ` (package ${s.installed.package})` : ''}` : 'none by airlock'}`,
    `running     ${s.reported ? `yes: Docker ${s.reported.version} (API ${s.reported.apiVersion}), started by ${s.supervisor}` : 'no'}`,
    `swarm       ${s.swarm ? `${s.swarm.state}${s.swarm.nodeId ? ` as node ${s.swarm.nodeId} (${s.swarm.manager ? 'manager' : 'worker'})` : ''}` : 'unknown (no engine)'}`,
  ];
  if (s.versions.length > 0) lines.push(`kept        ${s.versions.join(', ')} (for rollback)`);
  lines.push('', 'preflight:', ...formatPreflight(s.preflight).split('\n').map((l) => `  ${l}`));
  if (s.changes.length > 0) {
    lines.push('', 'last changes:');
    for (const c of s.changes) lines.push(`  #${c.id} ${c.started_at} ${c.kind} ${c.form} ${c.version}${c.previous_version ? ` (from ${c.previous_version})` : ''}: ${c.status}${c.status === 'running' ? ` at ${c.step}` : ''}${c.reason ? ` (${c.reason})` : ''} by ${c.applied_by}`);
  }
  return lines;
}
