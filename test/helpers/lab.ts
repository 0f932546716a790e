/**
 * A multi-host lab for tests: `scripts/lab up N --dir DIR` starts hosts
 * h1..hN, each a network namespace with its own address on a private bridge,
 * its own mount namespace (/var/run, /var/lib/docker, /var/lib/airlock,
 * /etc/airlock, /etc/docker are the host's own folders), its own dockerd and
 * its own sshd. The test process is the jump box. See docs/lab.md.
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

export interface LabHost {
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
  /** dockerd --data-root, also the host's /var/lib/docker (DIR/hN/docker). */
  dataRoot: string;
  /** dockerd --exec-root (DIR/hN/exec). */
  execRoot: string;
  /** dockerd --cgroup-parent of the host's containers. */
  cgroupParent: string;
  dockerdLog: string;
  sshdLog: string;
  sshdConfig: string;
  /** Path of the host's public host key (OpenSSH format). */
  hostKey: string;
  /** `/proc/<holder>/ns/mnt`: the host's mount namespace. */
  mountNs: string;
  /** Prefix that runs a command inside the host: nsenter --target <holder> --mount --uts --net -- env -u DOCKER_HOST (inside, the engine is the host's /var/run/docker.sock). */
  enter: string[];
  pids: { holder: number; dockerd: number; sshd: number };
}

/** DIR/lab.json as scripts/lab writes it. */
export interface LabFacts {
  dir: string;
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
  hosts: LabHost[];
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

export class Lab {
  readonly dir: string;
  readonly name: string;
  readonly subnet: string;
  readonly gateway: string;
  readonly hosts: LabHost[];
  /** DIR/hosts.yml, the inventory for airlock. */
  readonly inventoryFile: string;
  /** The lab's client key (root on every host). */
  readonly keyFile: string;
  /** Every host's key for its address. */
  readonly knownHostsFile: string;
  private readonly clients = new Set<Docker>();
  private stopped = false;

  constructor(readonly facts: LabFacts) {
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
  static async open(dir: string): Promise<Lab> {
    return new Lab(JSON.parse(await readFile(join(dir, 'lab.json'), 'utf8')) as LabFacts);
  }

  host(host: LabHost | string): LabHost {
    if (typeof host !== 'string') return host;
    const h = this.hosts.find((x) => x.name === host || x.address === host);
    if (!h) throw new Error(`no host ${host} in the lab (${this.hosts.map((x) => x.name).join(', ')})`);
    return h;
  }

  /** The project's Docker client on the host's own socket. Closed by stop() if not before. */
  docker(host: LabHost | string): Docker {
    const h = this.host(host);
    const d = new Docker({ transport: unixSocketTransport(h.dockerSocket), endpoint: h.dockerHost, retry: false });
    this.clients.add(d);
    return d;
  }

  /** Runs argv inside the host's network, mount and UTS namespaces (as root, no ssh). */
  exec(host: LabHost | string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run([...this.host(host).enter, ...argv], opts);
  }

  /** ssh2 connection settings for root@host with the lab key; the host key is checked against known_hosts. */
  sshConfig(host: LabHost | string): ConnectConfig {
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
  ssh(host: LabHost | string): Promise<Client> {
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
  const args = ['up', String(n), '--dir', dir];
  if (opts.subnet) args.push('--subnet', opts.subnet);
  if (opts.name) args.push('--name', opts.name);
  if (opts.managers) args.push('--managers', String(opts.managers));
  if (opts.timeoutSec) args.push('--timeout', String(opts.timeoutSec));
  const r = await labScript(args, { allowFail: true });
  if (r.code !== 0) throw new Error(`scripts/lab up ${n} --dir ${dir} failed (exit ${r.code}):\n${r.stderr}`);
  return Lab.open(dir);
}
