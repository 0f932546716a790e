/**
 * The engine matrix (scripts/engines, docs/engines.md): which Docker Engine the
 * tests' private daemons run. `AIRLOCK_TEST_ENGINE` names the row (default
 * bookworm, the machine's own docker.io 20.10); `scripts/run-tests.mjs --engine
 * ROW` sets it. A row whose root is not prepared fails the tests that need it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './fixtures.js';

export const ENGINE_ROWS = ['bookworm', 'trixie', 'forky', 'forky-containerd'] as const;
export type EngineRow = (typeof ENGINE_ROWS)[number];

export const ENGINES_SCRIPT = join(REPO, 'scripts/engines');

export function engineRow(): EngineRow {
  const row = process.env.AIRLOCK_TEST_ENGINE ?? 'bookworm';
  if (!(ENGINE_ROWS as readonly string[]).includes(row)) throw new Error(`AIRLOCK_TEST_ENGINE=${row}: not an engine row (${ENGINE_ROWS.join(', ')})`);
  return row as EngineRow;
}

/** The image store the row's engine uses. */
export const engineImageStore = (row: EngineRow = engineRow()): 'classic' | 'containerd' => (row.endsWith('-containerd') ? 'containerd' : 'classic');

/** The argv that runs a dockerd of the row in the foreground with its state in `dir` (the process becomes dockerd). */
export function engineCommand(dir: string, dockerdArgs: string[], row: EngineRow = engineRow()): string[] {
  return [ENGINES_SCRIPT, 'run', row, dir, '--', ...dockerdArgs];
}

/**
 * The docker CLI the tests hold airlock to: the machine's CLI 28 (/usr/local/bin/docker), which
 * speaks every API from 1.41 to 1.51, for every row. Debian 12's own CLI 20.10 cannot read
 * compose files without a `version:` key, and the engines of the other rows come without one.
 */
export function dockerCliFor(_row: EngineRow = engineRow()): string {
  for (const p of ['/usr/local/bin/docker', '/usr/bin/docker']) if (existsSync(p)) return p;
  return 'docker';
}

/** Why the row cannot run here, or false. */
export function engineMissing(row: EngineRow = engineRow()): string | false {
  const r = spawnSync(ENGINES_SCRIPT, ['list'], { encoding: 'utf8' });
  const line = r.stdout.split('\n').find((l) => l.startsWith(`${row} `));
  if (r.status !== 0 || !line) return `scripts/engines list failed: ${r.stderr}`;
  return line.includes('not prepared') ? `engine row ${row} is not prepared: run scripts/engines prepare ${row}` : false;
}

/** The id the row's engine shows for a bundle's image: its config digest on the classic store, its manifest digest on the containerd store. */
export function engineImageId(img: { id: string; manifest: { digest: string } }, row: EngineRow = engineRow()): string {
  return engineImageStore(row) === 'containerd' ? img.manifest.digest : img.id;
}

/** `docker stack deploy`'s flags that keep it from waiting: CLI 20.10 never waits and has no --detach; 26 and later wait unless told. */
export function stackDeployNoWait(cli: string = dockerCliFor()): string[] {
  const help = spawnSync(cli, ['stack', 'deploy', '--help'], { encoding: 'utf8' }).stdout;
  return /--detach\b/.test(help) ? ['--detach=true'] : [];
}
