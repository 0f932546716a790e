/** A copy of this checkout's built airlock, for benchmarks that run it for minutes. */
import { cp, realpath } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Others rebuild dist/ and reinstall modules while a bench runs: measure a
 * copy taken at start. Returns the copy's `bin/airlock`.
 */
export async function snapshotAirlock(repo: string, dir: string): Promise<string> {
  await cp(join(repo, 'dist', 'src'), join(dir, 'dist', 'src'), { recursive: true });
  await cp(join(repo, 'bin'), join(dir, 'bin'), { recursive: true });
  await cp(join(repo, 'package.json'), join(dir, 'package.json'));
  // A copy, not a link: an `npm install` elsewhere must not pull modules from under a run
  // (a worktree's node_modules may itself be a link to another tree's: copy what it points to).
  await cp(await realpath(join(repo, 'node_modules')), join(dir, 'node_modules'), { recursive: true, verbatimSymlinks: true });
  return join(dir, 'bin', 'airlock');
}
