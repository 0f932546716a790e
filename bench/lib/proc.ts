/** Child processes for benchmarks: whole-process wall time and peak RSS. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

export const GNU_TIME = '/usr/bin/time';
export const hasGnuTime = (): boolean => existsSync(GNU_TIME);

export interface Timed {
  /** From spawn() to the child's exit, in milliseconds. */
  wallMs: number;
  /** Peak resident set size in bytes (GNU time %M, else VmHWM polled from /proc). */
  peakRssBytes: number | null;
  /** User plus system CPU time of the child and its children (GNU time %U + %S), in milliseconds. */
  cpuMs: number | null;
  stdout: string;
  stderr: string;
}

let seq = 0;

/**
 * Runs `cmd args` to completion and measures it. The wall clock covers the
 * whole child, process start-up included. With GNU time available the child
 * runs under `/usr/bin/time -f '%M %U %S' -o FILE`, whatever the command, so
 * every side of a comparison pays the same wrapper cost.
 */
export async function timed(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Timed> {
  const rssFile = join(tmpdir(), `bench-rss-${process.pid}-${seq++}`);
  const useTime = hasGnuTime();
  const [file, argv] = useTime ? [GNU_TIME, ['-f', '%M %U %S', '-o', rssFile, cmd, ...args]] : [cmd, args];
  const started = process.hrtime.bigint();
  const child = spawn(file, argv, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let polledHwm = 0;
  const poll = useTime
    ? undefined
    : setInterval(() => {
        void readFile(`/proc/${child.pid}/status`, 'utf8')
          .then((s) => {
            const m = /VmHWM:\s+(\d+) kB/.exec(s);
            if (m) polledHwm = Math.max(polledHwm, Number(m[1]) * 1024);
          })
          .catch(() => undefined);
      }, 10);
  const code = await new Promise<number>((res, rej) => {
    child.on('error', rej);
    child.on('close', (c) => res(c ?? -1));
  });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (poll) clearInterval(poll);
  let peakRssBytes: number | null = polledHwm || null;
  let cpuMs: number | null = null;
  if (useTime) {
    const text = await readFile(rssFile, 'utf8').catch(() => '');
    await rm(rssFile, { force: true });
    // GNU time writes "Command exited with non-zero status N" before the figures when it fails.
    const m = /^(\d+) ([\d.]+) ([\d.]+)$/.exec(text.trim().split('\n').pop() ?? '');
    if (m) {
      peakRssBytes = Number(m[1]) * 1024;
      cpuMs = (Number(m[2]) + Number(m[3])) * 1000;
    }
  }
  if (code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited with ${code}\n${stderr || stdout}`);
  }
  return { wallMs, peakRssBytes, cpuMs, stdout, stderr };
}

/** Runs a command for its output; throws on failure. */
export function capture(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
  return r.stdout.trim();
}

/** Flushes dirty pages, so that one measured command does not pay for another's writes. */
export function syncAll(): void {
  capture('sync', []);
}
