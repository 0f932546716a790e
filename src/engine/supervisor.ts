/**
 * Starts and stops the engine: through systemd when it is PID 1, else
 * directly (the lab, containers): airlock starts containerd and dockerd
 * itself, detached in sessions of their own, and keeps each one's pid with
 * its start time so that a later stop signals that process and never another
 * that got its pid since.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AirlockError } from '../errors/index.js';
import { probeProcess } from '../process/alive.js';
import { processStartTime } from '../process/identity.js';
import { writeWhole } from '../store/durable.js';
import type { EngineHostPaths } from './host-paths.js';
import type { EngineForm } from '../bundle/manifest-format.js';
import { runCommand, tailOf } from './run-command.js';
import { PREFER_OFFLINE } from './units.js';

export interface EngineSupervisor {
  kind: 'systemd' | 'direct';
  /** Start now and at every boot (direct: now only; nothing starts it at boot but airlock). */
  enableAndStart(): Promise<void>;
  start(): Promise<void>;
  /** Stops dockerd, then containerd; returns once both are gone. */
  stop(): Promise<void>;
  isRunning(): Promise<boolean>;
}

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface SupervisorOptions {
  /** Force a kind (tests); default: systemd when `paths.systemdRunDir` exists. */
  kind?: 'systemd' | 'direct';
  /** How long a started process has to open its socket (direct). */
  startTimeoutMs?: number;
  /** How long dockerd has to stop after SIGTERM before SIGKILL (direct); default its shutdown-timeout plus 15 s. */
  stopTimeoutMs?: number;
}

/** The supervisor for an engine of `form` (the installed one's, or the one about to be). */
export function pickSupervisor(form: EngineForm, paths: EngineHostPaths, opts: SupervisorOptions = {}): EngineSupervisor {
  const kind = opts.kind ?? (existsSync(paths.systemdRunDir) ? 'systemd' : 'direct');
  return kind === 'systemd' ? systemdSupervisor(form) : new DirectSupervisor(form, paths, opts);
}

function systemdSupervisor(form: EngineForm): EngineSupervisor {
  // The package form's units: docker.io's docker.service pulls in its socket and containerd.service itself.
  const units = form === 'static' ? ['docker.socket', 'containerd.service', 'docker.service'] : ['docker.service'];
  const systemctl = async (...args: string[]) => {
    const r = await runCommand('systemctl', args);
    if (r.status !== 0) throw new AirlockError('engine', `systemctl ${args.join(' ')} failed: ${tailOf(r)}`, { reason: 'engine-start-failed', hint: 'see journalctl -u docker -u containerd' });
  };
  // An engine stopped and started by airlock counts against the unit's start limit (docker.service:
  // 3 in 60 s); a deliberate start clears what earlier starts left, or an upgrade and its restore are refused.
  const ready = async () => {
    await systemctl('daemon-reload');
    // A unit never started is not loaded and has nothing to clear: its refusal here means nothing.
    await runCommand('systemctl', ['reset-failed', ...units]);
  };
  return {
    kind: 'systemd',
    async enableAndStart() {
      await ready();
      await systemctl('enable', '--now', ...units);
    },
    async start() {
      await ready();
      await systemctl('start', ...units);
    },
    async stop() {
      // The socket first, or a call to it starts docker.service again.
      await systemctl('stop', 'docker.socket', 'docker.service', 'containerd.service');
    },
    async isRunning() {
      return (await runCommand('systemctl', ['is-active', '--quiet', 'docker.service'])).status === 0;
    },
  };
}

/** What the direct supervisor keeps of a process it started. */
interface PidRecord {
  pid: number;
  startTime: string;
}

type Daemon = 'containerd' | 'dockerd';

export class DirectSupervisor implements EngineSupervisor {
  readonly kind = 'direct';

  constructor(
    private readonly form: EngineForm,
    private readonly paths: EngineHostPaths,
    private readonly opts: SupervisorOptions = {},
  ) {}

  /** The static form runs from `current` (so a switch takes effect at the next start); the package form from the system's folders. */
  private binary(name: Daemon): string {
    if (this.form === 'static') return join(this.paths.currentLink, name);
    // Debian keeps dockerd in /usr/sbin; the rpm packages, in /usr/bin.
    return name === 'dockerd' && this.form === 'deb' ? '/usr/sbin/dockerd' : `/usr/bin/${name}`;
  }

  private env(): NodeJS.ProcessEnv {
    const path = this.form === 'static' ? `${this.paths.currentLink}:${SYSTEM_PATH}` : SYSTEM_PATH;
    const [key, value] = PREFER_OFFLINE.split('=') as [string, string];
    return { PATH: path, [key]: value, LANG: 'C.UTF-8' };
  }

  private pidFile = (d: Daemon) => join(this.paths.runDir, `${d}.pid`);

  /** The recorded process when it still runs as the same process (same start time); undefined otherwise. */
  private async running(d: Daemon): Promise<PidRecord | undefined> {
    let rec: PidRecord;
    try {
      rec = JSON.parse(await readFile(this.pidFile(d), 'utf8')) as PidRecord;
    } catch {
      return undefined;
    }
    if (!Number.isInteger(rec.pid) || rec.pid <= 1) return undefined;
    const now = processStartTime(rec.pid);
    if (now === undefined || now !== rec.startTime || isZombie(rec.pid)) return undefined;
    return rec;
  }

  async isRunning(): Promise<boolean> {
    return (await this.running('dockerd')) !== undefined;
  }

  enableAndStart(): Promise<void> {
    return this.start();
  }

  async start(): Promise<void> {
    await mkdir(this.paths.runDir, { recursive: true, mode: 0o755 });
    await mkdir(this.paths.logDir, { recursive: true, mode: 0o750 });
    if (!(await this.running('containerd'))) {
      await this.launch('containerd', ['--address', this.paths.containerdSocket], this.paths.containerdSocket);
    }
    if (!(await this.running('dockerd'))) {
      await this.launch(
        'dockerd',
        ['--containerd', this.paths.containerdSocket, '--config-file', this.paths.daemonJson, '-H', `unix://${this.paths.socket}`],
        this.paths.socket,
      );
    }
  }

  /** Starts one daemon in a session of its own, its output appended to its log, and waits for its socket. */
  private async launch(d: Daemon, args: string[], socket: string): Promise<void> {
    const log = await open(join(this.paths.logDir, `${d}.log`), 'a', 0o640);
    let child;
    try {
      await log.write(`--- airlock starts ${d} at ${new Date().toISOString()}\n`);
      child = spawn(this.binary(d), args, { detached: true, stdio: ['ignore', log.fd, log.fd], env: this.env() });
      await new Promise<void>((resolve, reject) => {
        child!.once('spawn', resolve);
        child!.once('error', reject);
      });
    } catch (e) {
      throw new AirlockError('engine', `cannot start ${this.binary(d)}: ${(e as Error).message}`, { reason: 'engine-start-failed', subject: d, cause: e });
    } finally {
      await log.close();
    }
    child.unref();
    const pid = child.pid!;
    const startTime = processStartTime(pid);
    if (startTime === undefined) throw new AirlockError('engine', `${d} (pid ${pid}) ended at once; see ${join(this.paths.logDir, `${d}.log`)}`, { reason: 'engine-start-failed', subject: d });
    await writeWhole(this.pidFile(d), JSON.stringify({ pid, startTime } satisfies PidRecord) + '\n');
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 60_000);
    // Accepting, not only there: a socket file left by an engine that was killed is there too.
    while (!(await acceptsConnections(socket))) {
      if (!(await this.running(d)) || Date.now() > deadline) {
        const alive = (await this.running(d)) !== undefined;
        throw new AirlockError('engine', `${d} ${alive ? 'did not open' : 'ended before it opened'} ${socket}: ${await logTail(join(this.paths.logDir, `${d}.log`))}`, {
          reason: 'engine-start-failed',
          subject: d,
          hint: `see ${join(this.paths.logDir, `${d}.log`)}`,
        });
      }
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    await this.stopOne('dockerd', this.opts.stopTimeoutMs ?? (await this.dockerdShutdownMs()));
    await this.stopOne('containerd', 15_000);
  }

  /** dockerd gives containers `shutdown-timeout` seconds (15 by default) before it kills them; it gets that and a margin. */
  private async dockerdShutdownMs(): Promise<number> {
    try {
      const cfg = JSON.parse(await readFile(this.paths.daemonJson, 'utf8')) as { 'shutdown-timeout'?: unknown };
      if (typeof cfg['shutdown-timeout'] === 'number') return (cfg['shutdown-timeout'] + 15) * 1000;
    } catch {
      // No config: the default.
    }
    return 30_000;
  }

  /** SIGTERM to the recorded process (only when it is still that process), SIGKILL after `graceMs`; waits until it is gone. */
  private async stopOne(d: Daemon, graceMs: number): Promise<void> {
    const rec = await this.running(d);
    if (rec) {
      signal(rec.pid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      while (await this.running(d)) {
        if (Date.now() > deadline) {
          signal(rec.pid, 'SIGKILL');
          await this.waitGone(d, 10_000);
          break;
        }
        await sleep(100);
      }
    }
    await rm(this.pidFile(d), { force: true });
  }

  private async waitGone(d: Daemon, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while ((await this.running(d)) && Date.now() < deadline) await sleep(100);
    if (await this.running(d)) throw new AirlockError('engine', `${d} does not end, even after SIGKILL`, { reason: 'engine-stop-failed', subject: d });
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

/** A child that ended but was not reaped yet keeps its pid and start time: it does not run. */
function isZombie(pid: number): boolean {
  if (probeProcess(pid) === 'gone') return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return true;
  }
}

function acceptsConnections(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ path });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

async function logTail(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim().split('\n').slice(-5).join(' | ');
  } catch {
    return 'no log';
  }
}
