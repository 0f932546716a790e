/** Facts about the machine a benchmark ran on, for its report. */
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { spawnSync } from 'node:child_process';

export interface MachineFacts {
  cpu: string;
  cores: number;
  cpuFlags: string;
  memory: string;
  kernel: string;
  node: string;
  openssl: string;
  nodeOpenssl: string;
  fileSystem: string;
  commit: string;
}

function out(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

/** `dir`'s file system: type, device and mount options, from df and /proc/mounts. */
export function fileSystemOf(dir: string): string {
  const df = out('df', ['-T', '-P', dir]).split('\n')[1]?.split(/\s+/) ?? [];
  const [device, type, , , avail, , mount] = df;
  if (!device || !type) return 'unknown';
  const opts =
    readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[1] === mount && f[0] === device)?.[3] ?? '';
  const freeGiB = avail ? `${(Number(avail) / 1024 / 1024).toFixed(0)} GiB free` : '';
  return `${type} on ${device} (mounted at ${mount}${opts ? `, ${opts.split(',').slice(0, 3).join(',')}` : ''}; ${freeGiB})`;
}

export function machineFacts(workDir: string, repo: string): MachineFacts {
  const flags = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(' ') ?? [];
  const interesting = ['sha_ni', 'avx2', 'avx512f', 'aes'].filter((f) => flags.includes(f));
  const status = out('git', ['status', '--porcelain', '--untracked-files=no'], repo);
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    cpuFlags: interesting.join(', ') || 'none of sha_ni, avx2, avx512f, aes',
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    kernel: `Linux ${release()}`,
    node: process.version,
    openssl: out('openssl', ['version']),
    nodeOpenssl: process.versions.openssl ?? 'unknown',
    fileSystem: fileSystemOf(workDir),
    commit: `${out('git', ['rev-parse', '--short', 'HEAD'], repo)}${status && status !== 'unknown' ? ' + uncommitted changes' : ''}`,
  };
}
