/** The `docker` group, which the engine's socket belongs to (docker.socket's SocketGroup). */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AirlockError } from '../errors/index.js';
import { runCommand, tailOf } from './run-command.js';

/** Whether the group exists: NSS (getent) on the host itself; the group file under another root. */
async function groupExists(name: string, root: string): Promise<boolean> {
  if (root === '/') return (await runCommand('getent', ['group', name])).status === 0;
  try {
    return (await readFile(join(root, 'etc/group'), 'utf8')).split('\n').some((l) => l.split(':')[0] === name);
  } catch {
    return false;
  }
}

/** Makes the system group `docker` when it is missing; true when it made it. `root`: another system's root (groupadd --prefix). */
export async function ensureDockerGroup(root = '/'): Promise<boolean> {
  if (await groupExists('docker', root)) return false;
  const r = await runCommand('groupadd', [...(root === '/' ? [] : ['--prefix', root]), '--system', 'docker']);
  // 9: it exists already (another process made it since).
  if (r.status === 9) return false;
  if (r.status !== 0) throw new AirlockError('engine', `groupadd --system docker failed: ${tailOf(r)}`, { reason: 'engine-group', subject: 'docker' });
  return true;
}
