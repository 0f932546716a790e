/**
 * A multi-host lab for tests: `scripts/lab up N --dir DIR` starts hosts
 * h1..hN, each a network namespace with its own address on a private bridge,
 * its own mount namespace (/var/run, /var/lib/docker, /var/lib/airlock,
 * /etc/airlock, /etc/docker are the host's own folders), its own dockerd and
 * its own sshd. The test process is the jump box. See docs/lab.md.
 * `startBareLab` starts hosts with no engine, each on its own root filesystem.
 *
 *   const lab = await startLab(dir, 2);
 *   const d1 = lab.docker('h1');                  // h1's daemon, through its socket
 *   const ssh = await lab.ssh('h1');              // ssh2 Client, host key checked
 *   await lab.exec('h2', ['ls', '/var/lib/airlock']);
 *   await lab.stop();
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, type ConnectConfig } from 'ssh2';
import { Docker, unixSocketTransport } from '../../src/docker/index.js';

/** scripts/lab of this checkout (tests run from dist/test/helpers). */
export const LAB_SCRIPT = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'scripts/lab');

/** What every lab host has, with or without an engine the lab started. */
export interface LabHostBase {
  /** h1, h2, ... */
  name: string;
  /** Its address on the lab subnet, e.g. 10.99.0.11; sshd listens on port 22 there. */
  address: string;
  /** Network namespace name (`/run/netns/<netns>`). */
  netns: string;
  roles: ('manager' | 'worker')[];
  labels: Record<string, string>;
  /** DIR/hN: everything of this host lives below. */
  hostDir: string;
  /** The host's /var/run/docker.sock as seen from the jump box (DIR/hN/run/docker.sock). */
  dockerSocket: string;
  /** `unix://` + dockerSocket. */
  dockerHost: string;
  /** The host's /var/run (DIR/hN/run). */
  runDir: string;
  /** The host's /var/lib/airlock (DIR/hN/state). */
  stateDir: string;
  /** The host's /etc/airlock (DIR/hN/etc). */
  etcDir: string;
  /** The engine's data root (a lab host's own dockerd --data-root; a bare host's /var/lib/docker, DIR/hN/docker). */
  dataRoot: string;
  /** The --cgroup-parent of the host's containers; `down` kills and removes it. */
  cgroupParent: string;
  sshdLog: string;
  sshdConfig: string;
  /** Path of the host's public host key (OpenSSH format). */
  hostKey: string;
  /** `/proc/<holder>/ns/mnt`: the host's mount namespace. */
  mountNs: string;
  /** Prefix that runs a command inside the host: nsenter --target <holder> --mount --uts --net -- env -u DOCKER_HOST (inside, the engine is the host's /var/run/docker.sock). */
  enter: string[];
  pids: { holder: number; sshd: number };
}

/** A host of `startLab`: the lab started its dockerd. */
export interface LabHost extends LabHostBase {
  /** dockerd --exec-root. */
  execRoot: string;
  dockerdLog: string;
  pids: { holder: number; dockerd: number; sshd: number };
}

/** A host of `startBareLab`: its own root filesystem, its own sshd, no engine until one is installed there. */
export interface BareLabHost extends LabHostBase {
  /** The host's / as the jump box sees it (DIR/hN/root: an overlay of `scripts/engines bare-root`), without the folders bound over it inside (/run, /var/lib/docker, /tmp, …). */
  root: string;
  /** The overlay's upper dir (DIR/hN/upper): every change made in the host's root, and nothing else. */
  upperDir: string;
  /** daemon.json keys an engine installed in the host needs so that it leaves the machine and the other hosts alone. */
  engineDaemon: { bridge: string; iptables: boolean; ip6tables: boolean; 'cgroup-parent': string };
}

/** DIR/lab.json as scripts/lab writes it. */
export interface LabFacts<H extends LabHostBase = LabHost> {
  dir: string;
  /** `up --bare`: hosts without an engine, on their own roots. */
  bare: boolean;
  /** The tag in the lab's namespace and link names (airlock-<name>-h1, alk-<name>). */
  name: string;
  /** e.g. 10.99.0.0/24 */
  subnet: string;
  /** The jump box's address on the subnet, e.g. 10.99.0.1. */
  gateway: string;
  switchNetns: string;
  uplink: string;
  inventory: string;
  key: string;
  knownHosts: string;
  authorizedKeys: string;
  hosts: H[];
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Written to the command's stdin. */
  input?: string | Buffer;
  /** Resolve with a non-zero exit code instead of rejecting. */
  allowFail?: boolean;
  /** Kill the command after this long (default 60 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface StartLabOptions {
  /** `--subnet 10.99.X`; default: the first free 10.99.X.0/24. */
  subnet?: string;
  /** `--name TAG` (1-8 of [a-z0-9]); default: a hash of dir. */
  name?: string;
  /** h1..hM are managers in the inventory (default 1). */
  managers?: number;
  /** Seconds `up` waits for every dockerd and sshd (default 90). */
  timeoutSec?: number;
}

/** Runs a command; rejects on a non-zero exit unless allowFail. */
export function run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolvePromise, reject) => {
    const [cmd, ...args] = argv;
    if (!cmd) {
      reject(new Error('run: empty argv'));
      return;
    }
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const r = {
        code: code ?? 128,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (r.code !== 0 && !opts.allowFail) {
        const what = signal ? `killed by ${signal}` : `exit ${r.code}`;
        reject(new Error(`${argv.join(' ')}: ${what}\n${r.stderr.trim()}`));
      } else {
        resolvePromise(r);
      }
    });
    child.stdin.on('error', () => {
      // the command may exit without reading its input
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs scripts/lab with these arguments. */
export function labScript(args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return run([LAB_SCRIPT, ...args], { timeoutMs: 180_000, ...opts });
}

export class Lab<H extends LabHostBase = LabHost> {
  readonly dir: string;
  readonly name: string;
  readonly subnet: string;
  readonly gateway: string;
  readonly hosts: H[];
  /** DIR/hosts.yml, the inventory for airlock. */
  readonly inventoryFile: string;
  /** The lab's client key (root on every host). */
  readonly keyFile: string;
  /** Every host's key for its address. */
  readonly knownHostsFile: string;
  private readonly clients = new Set<Docker>();
  private stopped = false;

  constructor(readonly facts: LabFacts<H>) {
    this.dir = facts.dir;
    this.name = facts.name;
    this.subnet = facts.subnet;
    this.gateway = facts.gateway;
    this.hosts = facts.hosts;
    this.inventoryFile = facts.inventory;
    this.keyFile = facts.key;
    this.knownHostsFile = facts.knownHosts;
  }

  /** Reads DIR/lab.json of a lab that is up. */
  static async open<H extends LabHostBase = LabHost>(dir: string): Promise<Lab<H>> {
    return new Lab(JSON.parse(await readFile(join(dir, 'lab.json'), 'utf8')) as LabFacts<H>);
  }

  host(host: H | string): H {
    if (typeof host !== 'string') return host;
    const h = this.hosts.find((x) => x.name === host || x.address === host);
    if (!h) throw new Error(`no host ${host} in the lab (${this.hosts.map((x) => x.name).join(', ')})`);
    return h;
  }

  /** The project's Docker client on the host's own socket. Closed by stop() if not before. */
  docker(host: H | string): Docker {
    const h = this.host(host);
    const d = new Docker({ transport: unixSocketTransport(h.dockerSocket), endpoint: h.dockerHost, retry: false });
    this.clients.add(d);
    return d;
  }

  /** Runs argv inside the host's network, mount and UTS namespaces (as root, no ssh). */
  exec(host: H | string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run([...this.host(host).enter, ...argv], opts);
  }

  /** ssh2 connection settings for root@host with the lab key; the host key is checked against known_hosts. */
  sshConfig(host: H | string): ConnectConfig {
    const h = this.host(host);
    const expected = knownHostKeys(this.knownHostsFile, h.address);
    if (expected.length === 0) throw new Error(`${this.knownHostsFile} has no key for ${h.address}`);
    return {
      host: h.address,
      port: 22,
      username: 'root',
      privateKey: readFileSync(this.keyFile),
      hostVerifier: (key: Buffer) => expected.some((k) => k.equals(key)),
      readyTimeout: 10_000,
    };
  }

  /** A connected ssh2 Client as root on the host; end() it when done. */
  ssh(host: H | string): Promise<Client> {
    const config = this.sshConfig(host);
    return new Promise((resolvePromise, reject) => {
      const c = new Client();
      c.once('ready', () => {
        c.off('error', reject);
        resolvePromise(c);
      });
      c.once('error', reject);
      c.connect(config);
    });
  }

  /** Runs `scripts/lab down`. Safe to call twice. */
  async stop(opts: { keep?: boolean } = {}): Promise<void> {
    for (const d of this.clients) await d.close().catch(() => undefined);
    this.clients.clear();
    if (this.stopped && !opts.keep) return;
    await labScript(['down', '--dir', this.dir, ...(opts.keep ? ['--keep'] : [])]);
    this.stopped = true;
  }
}

/** Runs a shell command over an ssh2 connection; resolves with its stdout, rejects on a non-zero exit. */
export function sshExec(c: Client, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    c.exec(command, (err, stream) => {
      if (err) return reject(err);
      let out = '';
      let errOut = '';
      stream.on('data', (b: Buffer) => (out += b.toString()));
      stream.stderr.on('data', (b: Buffer) => (errOut += b.toString()));
      stream.on('close', (code: number | null) =>
        code === 0 ? resolve(out) : reject(new Error(`${command}: exit ${code}: ${errOut}`)),
      );
    });
  });
}

/** The raw public keys (SSH wire format) known_hosts lists for this address on port 22. */
export function knownHostKeys(knownHostsFile: string, address: string): Buffer[] {
  const keys: Buffer[] = [];
  for (const line of readFileSync(knownHostsFile, 'utf8').split('\n')) {
    const [names, , b64] = line.trim().split(/\s+/);
    if (!names || !b64 || names.startsWith('#')) continue;
    if (names.split(',').includes(address)) keys.push(Buffer.from(b64, 'base64'));
  }
  return keys;
}

/**
 * Starts n hosts in dir (at most 60 characters; a lab left there is taken
 * down first). Two labs in different dirs never collide: each gets its own
 * names and its own 10.99.X.0/24.
 */
export async function startLab(dir: string, n: number, opts: StartLabOptions = {}): Promise<Lab> {
  await labUp(dir, n, opts, []);
  return Lab.open<LabHost>(dir);
}

/**
 * Starts n bare hosts in dir (`scripts/lab up n --bare`): each on its own
 * root filesystem (an overlay of `scripts/engines bare-root`, Debian 13 with
 * systemd and sshd), with its own sshd and no engine. What is installed in a
 * host changes only that host's upper dir.
 */
export async function startBareLab(dir: string, n: number, opts: StartLabOptions = {}): Promise<Lab<BareLabHost>> {
  await labUp(dir, n, opts, ['--bare']);
  return Lab.open<BareLabHost>(dir);
}

async function labUp(dir: string, n: number, opts: StartLabOptions, extra: string[]): Promise<void> {
  const args = ['up', String(n), '--dir', dir, ...extra];
  if (opts.subnet) args.push('--subnet', opts.subnet);
  if (opts.name) args.push('--name', opts.name);
  if (opts.managers) args.push('--managers', String(opts.managers));
  if (opts.timeoutSec) args.push('--timeout', String(opts.timeoutSec));
  const r = await labScript(args, { allowFail: true });
  if (r.code !== 0) throw new Error(`scripts/lab ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr}`);
}
