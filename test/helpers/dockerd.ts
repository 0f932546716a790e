/**
 * A dockerd of the test's own, on a private socket, so a test may stop it.
 * It runs in a network namespace of its own (the recipe in the product
 * brief), so its swarm ports (2377, 7946, 4789) and 127.0.0.1 never collide
 * with another test's daemon; the unix socket works across namespaces.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Docker, unixSocketTransport } from '../../src/docker/index.js';
import { engineCommand } from './engines.js';

function isRunning(pid: number): boolean {
  const stat = readFileSyncOrEmpty(`/proc/${pid}/stat`);
  return stat !== '' && !/^\d+ \(.*\) Z/.test(stat);
}

function readFileSyncOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export class PrivateDaemon {
  private child: ChildProcess | undefined;
  readonly socket: string;

  readonly netns: string;

  constructor(readonly dir: string) {
    this.socket = join(dir, 'docker.sock');
    this.netns = `airlock-${createHash('sha256').update(dir).digest('hex').slice(0, 10)}`;
  }

  private ensureNetns(): void {
    if (existsSync(`/var/run/netns/${this.netns}`)) return;
    const run = (args: string[]) => {
      const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
    };
    run(['ip', 'netns', 'add', this.netns]);
    // nsenter, not `ip netns exec`: the latter remounts /sys, which dockerd then fails on.
    run(['nsenter', `--net=/var/run/netns/${this.netns}`, 'ip', 'link', 'set', 'lo', 'up']);
  }

  get dockerHost(): string {
    return `unix://${this.socket}`;
  }

  client(): Docker {
    return new Docker({ transport: unixSocketTransport(this.socket), endpoint: this.dockerHost, retry: false });
  }

  async start(): Promise<void> {
    await mkdir(join(this.dir, 'data'), { recursive: true });
    this.ensureNetns();
    // On a loaded machine, dockerd's own wait for its containerd (opening a content store that a
    // killed load left large) can run out: that is the machine, not the test, so try again.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.launch();
      } catch (err) {
        if (attempt >= 3 || !/failed to start containerd/.test(String(err))) throw err;
        this.child = undefined;
        await this.killOwnContainerd();
      }
    }
  }

  private async launch(): Promise<void> {
    // A killed daemon leaves its pid file behind, and dockerd refuses to start over it.
    await rm(join(this.dir, 'docker.pid'), { force: true });
    const log = await open(join(this.dir, 'dockerd.log'), 'a');
    // scripts/engines runs the dockerd of the matrix row under test (test/helpers/engines.ts).
    const child = spawn(
      'nsenter',
      [
        `--net=/var/run/netns/${this.netns}`,
        ...engineCommand(this.dir, [
          // No bridge or iptables: it must not disturb the host's own daemon.
          '--bridge', 'none', '--iptables=false', '--ip6tables=false',
        ]),
      ],
      { stdio: ['ignore', log.fd, log.fd], detached: true },
    );
    await log.close();
    this.child = child;
    const docker = this.client();
    try {
      for (let i = 0; i < 120; i++) {
        if (child.exitCode !== null) {
          const tail = (await readFile(join(this.dir, 'dockerd.log'), 'utf8')).split('\n').slice(-5).join('\n');
          throw new Error(`dockerd exited with ${child.exitCode}:\n${tail}`);
        }
        try {
          await docker.system.ping();
          return;
        } catch {
          await sleep(250);
        }
      }
      throw new Error('dockerd did not answer within 30 s');
    } finally {
      await docker.close();
    }
  }

  /** SIGKILL: the daemon vanishes mid-request, as in a crash. */
  kill(): Promise<void> {
    return this.stopWith('SIGKILL');
  }

  stop(): Promise<void> {
    return this.stopWith('SIGTERM');
  }

  private async stopWith(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((res) => child.once('exit', res));
    child.kill(signal);
    await exited;
    this.child = undefined;
    await this.killOwnContainerd();
  }

  /**
   * dockerd's own containerd outlives a killed dockerd, as a crash would leave it; systemd
   * would kill the whole unit, so do the same before a restart.
   */
  private async killOwnContainerd(): Promise<void> {
    const pidFile = join(this.dir, 'exec', 'containerd', 'containerd.pid');
    const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
    // The pid may be stale and reused by now: only a containerd on this daemon's folder is ours.
    const cmdline = readFileSyncOrEmpty(`/proc/${pid}/cmdline`);
    if (pid > 0 && cmdline.includes('containerd') && cmdline.includes(this.dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      // Its database lock is held until it is really gone (a process in a disk write can take
      // a while to die); a zombie holds nothing.
      for (let i = 0; i < 300 && isRunning(pid); i++) await sleep(100);
      // dockerd takes a zombie in that pid file for a live containerd and waits on it.
    }
    await rm(pidFile, { force: true });
  }

  async destroy(): Promise<void> {
    await this.stop();
    // dockerd leaves mounts behind (its data root bound onto itself, swarm network
    // namespaces under exec-root): unmount them, deepest first, before removing.
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(`${this.dir}/`))
      .sort()
      .reverse();
    for (const m of mounts) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
    spawnSync('ip', ['netns', 'del', this.netns], { stdio: 'ignore' });
    await rm(this.dir, { recursive: true, force: true });
  }
}
