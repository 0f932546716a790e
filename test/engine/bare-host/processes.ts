import { readdirSync, readFileSync } from 'node:fs';

/** The engine's processes that run in this host's pid namespace, by name (an ended one not reaped yet, a zombie, does not run). */
export function engineProcesses(): string[] {
  const names: string[] = [];
  for (const p of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    } catch {
      continue;
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state !== 'Z' && ['dockerd', 'containerd', 'containerd-shim', 'containerd-shim-runc-v2', 'docker-proxy'].includes(comm)) names.push(comm);
  }
  return names;
}
