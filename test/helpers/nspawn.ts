/**
 * A real systemd, booted as PID 1 of a systemd-nspawn container, for tests of what runs under
 * it (the agent's unit, the engine's units). The machine has no systemd of its own, so nothing
 * here talks to a host systemd: the container is not registered (`--register=no`), makes no
 * scope (`--keep-unit`), and has only a loopback interface (`--private-network`).
 *
 * Its root is an overlay: the bare root of `scripts/engines bare-root` (Debian 13 with systemd,
 * dbus and sshd, no engine) below, an upper folder in the test's own folder above, so the shared
 * root is never written. The checkout, its node_modules and the packaged Node runtime are bound
 * read-only at their own paths, so `bin/airlock` runs inside exactly as outside.
 *
 * Commands run inside by entering the namespaces of the container's PID 1 (`nsenter`), with a
 * clean environment. Only the processes started here are ever signalled, by their pid.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { chmod, copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { ENGINES_SCRIPT } from './engines.js';
import { REPO } from './fixtures.js';

/** The checkout inside a booted container, outside /tmp: what a service with PrivateTmp= runs. */
export const CHECKOUT_IN_BOX = '/opt/airlock-checkout';

export const NSPAWN = '/usr/bin/systemd-nspawn';

/** Why no systemd can be booted here, or false. Under CI the test runner fails a skip, so a missing tool fails there. */
export function nspawnMissing(): string | false {
  if (!existsSync(NSPAWN)) return `${NSPAWN} is missing: install Debian's systemd-container (scripts/install-deps does)`;
  if (process.getuid?.() !== 0) return 'booting a systemd in systemd-nspawn needs root';
  return false;
}

/**
 * The packaged Node runtime the tree runs on (`.runtime/node`), as a real path, and the folder
 * bound into the container: its `bin/`, because the unpacked runtime's top folder is 0700 and a
 * service's own user could not reach the binary through it (the folder nspawn makes for the
 * mount point inside is 0755).
 */
export function packagedRuntime(): { node: string; folder: string } {
  const node = realpathSync(join(REPO, '.runtime/node'));
  return { node, folder: dirname(node) };
}

export interface BootOptions {
  /** The test's own folder: the overlay's upper, work and merged folders and the console log go there. */
  dir: string;
  /** Host folders bound read-write into the container at their own paths. */
  bind?: readonly string[];
  /** More host folders bound read-only at their own paths (the checkout and the runtime always are). */
  bindReadOnly?: readonly string[];
  /** How long booting to a settled system may take. Default 60 s. */
  bootTimeoutMs?: number;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** Extra environment (the base is PATH, LANG and no pager or colours). */
  env?: Record<string, string>;
  /** nsenter's namespace flags and target; default: every namespace of the container's PID 1. */
  enter?: { pid: number; flags: readonly string[] };
  timeoutMs?: number;
}

/** `systemctl show`'s view of a unit that tests assert on. */
export interface UnitState {
  ActiveState: string;
  SubState: string;
  MainPID: number;
  ExecMainStatus: number;
  ExecMainCode: number;
  Result: string;
  ControlGroup: string;
  /** Automatic restarts since the unit was last started by hand. */
  NRestarts: number;
}

const UNIT_PROPERTIES = ['ActiveState', 'SubState', 'MainPID', 'ExecMainStatus', 'ExecMainCode', 'Result', 'ControlGroup', 'NRestarts'] as const;
const ALL_NAMESPACES = ['-m', '-u', '-i', '-n', '-p', '-C'] as const;
const CLEAN_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8', 'SYSTEMD_PAGER=cat', 'SYSTEMD_COLORS=0'];

export class BootedSystemd {
  private stopped = false;

  private constructor(
    /** The container's root as the host sees it (the overlay's merged folder). */
    readonly root: string,
    /** The host pid of the container's PID 1 (systemd). */
    readonly leader: number,
    private readonly nspawn: ChildProcess,
    private readonly consoleLog: string,
  ) {}

  /** Boots a systemd and waits until `systemctl is-system-running --wait` says the boot is over (running or degraded). */
  static async boot(opts: BootOptions): Promise<BootedSystemd> {
    const missing = nspawnMissing();
    if (missing) throw new Error(missing);
    const lower = bareRoot();
    const upper = join(opts.dir, 'upper');
    const work = join(opts.dir, 'work');
    const merged = join(opts.dir, 'merged');
    await Promise.all([upper, work, merged].map((d) => mkdir(d, { recursive: true })));
    run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);

    const { folder } = packagedRuntime();
    const readOnly = [REPO, realpathSync(join(REPO, 'node_modules')), folder, ...(opts.bindReadOnly ?? [])];
    // Also where a unit with PrivateTmp= sees it: a checkout under /tmp (a fresh clone in CI) is hidden from such a service.
    readOnly.push(`${REPO}:${CHECKOUT_IN_BOX}`);
    const consoleLog = join(opts.dir, 'console.log');
    const log = openSync(consoleLog, 'w');
    // The machine name keeps parallel containers apart (nspawn keeps per-name state under /run/systemd/nspawn).
    const name = `airlock-${process.pid}-${Date.now().toString(36)}`;
    const args = ['-D', merged, '-M', name, '-b', '--register=no', '--keep-unit', '--private-network', ...readOnly.map((p) => `--bind-ro=${p}`), ...(opts.bind ?? []).map((p) => `--bind=${p}`)];
    const child = spawn(NSPAWN, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    // A failed spawn ('error') counts as an exit here; the wait below then reports it.
    const exited = once(child, 'exit').catch(() => undefined);
    const deadline = Date.now() + (opts.bootTimeoutMs ?? 60_000);
    let leader: number | undefined;
    try {
      leader = await waitFor(deadline, () => initOf(child.pid!), () => `no systemd appeared under systemd-nspawn (pid ${child.pid})`, exited);
      const booted = new BootedSystemd(merged, leader, child, consoleLog);
      await waitFor(deadline, async () => {
        const r = await booted.exec(['systemctl', 'is-system-running', '--wait'], { timeoutMs: Math.max(1, deadline - Date.now()) });
        const s = r.stdout.trim();
        return s === 'running' || s === 'degraded' ? s : undefined;
      }, () => 'systemd did not finish booting', exited);
      return booted;
    } catch (e) {
      await stopContainer(child, leader, 5_000);
      await unmount(merged);
      const tail = readFileSync(consoleLog, 'utf8').split('\n').slice(-30).join('\n');
      throw new Error(`${(e as Error).message}; console:\n${tail}`, { cause: e });
    }
  }

  /** The host pid of the systemd-nspawn process. */
  get nspawnPid(): number {
    return this.nspawn.pid!;
  }

  /** Runs a command inside the container (every namespace of its PID 1, clean environment). */
  exec(cmd: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const target = opts.enter ?? { pid: this.leader, flags: ALL_NAMESPACES };
    const env = [...CLEAN_ENV, ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`)];
    const argv = ['-t', String(target.pid), ...target.flags, '--', '/usr/bin/env', '-i', ...env, ...cmd];
    return new Promise((resolve, reject) => {
      const child = spawn('nsenter', argv, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
      child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, opts.timeoutMs ?? 60_000);
      child.on('error', reject);
      // Normally at 'close' (all output read); after a timeout at 'exit', because what nsenter
      // started inside the container outlives it and may hold the pipes open.
      const done = (code: number | null) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr: timedOut ? `${stderr}(killed after ${opts.timeoutMs ?? 60_000} ms)` : stderr });
      };
      child.on('close', done);
      child.on('exit', (code) => {
        if (timedOut) done(code);
      });
      // A command that exits without reading its input must not fail the call with EPIPE.
      child.stdin?.on('error', () => {}).end(opts.input);
    });
  }

  /** Like exec, but a non-zero exit throws with the command's output. */
  async run(cmd: readonly string[], opts: ExecOptions = {}): Promise<string> {
    const r = await this.exec(cmd, opts);
    if (r.code !== 0) throw new Error(`inside the container: ${cmd.join(' ')} exited ${r.code}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** `systemctl ARGS…` inside; throws on a non-zero exit. */
  systemctl(...args: string[]): Promise<string> {
    return this.run(['systemctl', '--no-pager', ...args]);
  }

  /** The unit's state as `systemctl show -p ActiveState,SubState,MainPID,ExecMainStatus,…` reports it. */
  async unitState(unit: string): Promise<UnitState> {
    const out = await this.systemctl('show', `--property=${UNIT_PROPERTIES.join(',')}`, unit);
    const kv = new Map(out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const));
    const str = (k: string) => kv.get(k) ?? '';
    const num = (k: string) => Number(kv.get(k) ?? NaN);
    return { ActiveState: str('ActiveState'), SubState: str('SubState'), MainPID: num('MainPID'), ExecMainStatus: num('ExecMainStatus'), ExecMainCode: num('ExecMainCode'), Result: str('Result'), ControlGroup: str('ControlGroup'), NRestarts: num('NRestarts') };
  }

  /** Writes a file into the container's root (through the overlay, as root), its folders made as needed. */
  async writeFile(path: string, content: string | Uint8Array, mode = 0o644): Promise<void> {
    const dest = this.hostPath(path);
    await mkdir(dirname(dest), { recursive: true });
    await writeFile(dest, content);
    await chmod(dest, mode);
  }

  /** Copies a host file into the container's root. */
  async copyIn(hostFile: string, path: string, mode = 0o644): Promise<void> {
    const dest = this.hostPath(path);
    await mkdir(dirname(dest), { recursive: true });
    await copyFile(hostFile, dest);
    await chmod(dest, mode);
  }

  /** The host path of a path inside the container. */
  hostPath(path: string): string {
    if (!isAbsolute(path) || normalize(path) !== path) throw new Error(`not a plain absolute path: ${path}`);
    return join(this.root, path);
  }

  /** The host pid of a process the container knows as PID (the last entry of its NSpid line), e.g. a unit's MainPID, to enter its namespaces. */
  hostPid(containerPid: number): number {
    const ours = readlinkSync(`/proc/${this.leader}/ns/pid`);
    for (const p of readdirSync('/proc').filter((f) => /^\d+$/.test(f))) {
      try {
        const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1]?.split(/\s+/).map(Number);
        if (nspid && nspid.length >= 2 && nspid[nspid.length - 1] === containerPid && readlinkSync(`/proc/${p}/ns/pid`) === ours) return Number(p);
      } catch {
        // gone while looking
      }
    }
    throw new Error(`no process is pid ${containerPid} in the container`);
  }

  /** The last lines the container printed on its console. */
  console(lines = 40): string {
    return readFileSync(this.consoleLog, 'utf8').split('\n').slice(-lines).join('\n');
  }

  /** Powers the container off (`systemctl poweroff`), waits for systemd-nspawn to exit, and unmounts the overlay. */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.nspawn.exitCode === null && this.nspawn.signalCode === null) {
      // Returns before the shutdown is over; the wait below is for the container to be gone.
      await this.exec(['systemctl', 'poweroff'], { timeoutMs: 10_000 });
      await stopContainer(this.nspawn, this.leader, timeoutMs);
    }
    await unmount(this.root);
  }
}

/** `BootedSystemd.boot`, named as tests call it. */
export const bootSystemd = (opts: BootOptions): Promise<BootedSystemd> => BootedSystemd.boot(opts);

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** The bare Debian 13 root (made once, cached, by scripts/engines). */
function bareRoot(): string {
  return run(ENGINES_SCRIPT, ['bare-root']).trim();
}

/** The pid of the container's init: the child of systemd-nspawn once it has exec'd systemd. */
function initOf(nspawnPid: number): number | undefined {
  const tasks = join('/proc', String(nspawnPid), 'task');
  if (!existsSync(tasks)) return undefined;
  for (const t of readdirSync(tasks)) {
    let children: string;
    try {
      children = readFileSync(join(tasks, t, 'children'), 'utf8');
    } catch {
      continue;
    }
    for (const c of children.split(' ').filter(Boolean)) {
      try {
        if (readFileSync(`/proc/${c}/comm`, 'utf8').trim() === 'systemd') return Number(c);
      } catch {
        // gone between the two reads
      }
    }
  }
  return undefined;
}

/** Polls until probe gives a value; fails at the deadline or when systemd-nspawn exits first. */
async function waitFor<T>(deadline: number, probe: () => T | undefined | Promise<T | undefined>, what: () => string, exited: Promise<unknown>): Promise<T> {
  let gone = false;
  void exited.then(() => (gone = true));
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (gone) throw new Error(`${what()}: systemd-nspawn exited`);
    if (Date.now() > deadline) throw new Error(`${what()} in time`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Waits for systemd-nspawn to exit. If it hangs: SIGTERM to it (nspawn then asks the
 * container's init to power off), and at last SIGKILL to the container's init (which ends its
 * whole pid namespace) and to nspawn. Only these two processes, which this helper started.
 */
async function stopContainer(nspawn: ChildProcess, leader: number | undefined, timeoutMs: number): Promise<void> {
  if (nspawn.exitCode !== null || nspawn.signalCode !== null) return;
  const exited = once(nspawn, 'exit');
  const within = (ms: number) => Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
  if (await within(timeoutMs)) return;
  nspawn.kill('SIGTERM');
  if (await within(10_000)) return;
  if (leader !== undefined) {
    try {
      process.kill(leader, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  nspawn.kill('SIGKILL');
  await exited;
}

/** Unmounts the overlay and removes its folders (upper, work, merged); the test's folder stays for the test to remove. */
async function unmount(merged: string): Promise<void> {
  for (let i = 0; ; i++) {
    const r = spawnSync('umount', [merged], { encoding: 'utf8' });
    if (r.status === 0 || /not mounted/.test(r.stderr)) break;
    if (i === 20) throw new Error(`umount ${merged}: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 250));
  }
  const dir = dirname(merged);
  await Promise.all(['upper', 'work', 'merged'].map((d) => rm(join(dir, d), { recursive: true, force: true })));
}
