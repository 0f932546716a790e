/**
 * What the engine preflight knows of a host, as plain data: read once from
 * the running system (host-facts.ts) or given by a test, then judged by pure
 * rules (rules.ts).
 */
import type { FreeSpace } from '../../store/free-space.js';

/** Where airlock keeps the static form: `<version>/` folders and the `current` link (docs/engine-install.md). */
export { ENGINE_HOME as AIRLOCK_ENGINE_HOME } from '../host-paths.js';

export type Proto = 'tcp' | 'udp';

/** The ports a swarm node needs (Docker's "Use overlay networks" list), with what each is for. */
export const SWARM_PORTS: readonly { port: number; proto: Proto; use: string }[] = [
  { port: 2377, proto: 'tcp', use: 'cluster management' },
  { port: 7946, proto: 'tcp', use: 'node gossip' },
  { port: 7946, proto: 'udp', use: 'node gossip' },
  { port: 4789, proto: 'udp', use: 'overlay network traffic (VXLAN)' },
];

export interface SocketHolder {
  pid: number;
  /** The process's command name (/proc/PID/comm). */
  comm: string;
  /** Its program (/proc/PID/exe), when that is readable and its name is not the command name (Node calls its thread `MainThread`). */
  exe?: string;
}

/** A socket on one of the swarm ports: a TCP listener or a bound UDP socket. */
export interface PortUse {
  port: number;
  proto: Proto;
  /** The local address as /proc/net shows it, decoded (`0.0.0.0`, `::`, `127.0.0.1`). */
  address: string;
  /** The socket's inode. */
  inode: number;
  /** The processes with the socket open; empty when none was found (the kernel's, or hidden from this user). */
  holders: SocketHolder[];
  /** No process holds it, and every process's files were visible: the kernel's own socket (a VXLAN device's). */
  kernel: boolean;
}

export const KERNEL_MODULES = ['overlay', 'br_netfilter', 'vxlan'] as const;
export type KernelModule = (typeof KERNEL_MODULES)[number];

/**
 * `loaded`: in the running kernel now; `builtin`: compiled in; `loadable`: a
 * module file the kernel can load; `missing`: neither; `unknown`: the host
 * shows no module list or kernel config to tell.
 */
export type ModuleState = 'loaded' | 'builtin' | 'loadable' | 'missing' | 'unknown';

/** A distribution package of the engine's family, as `dpkg-query -W` reports it. */
export interface PackageFact {
  name: string;
  version: string;
  /** `install ok installed`; a package removed but not purged is not. */
  installed: boolean;
}

/** A `dockerd` binary found on the host, and whose it is. */
export interface DockerdFact {
  path: string;
  realPath: string;
  /** The package that owns it (dpkg's file list), when one does. */
  package?: string;
  /** Whether it is airlock's static engine (under AIRLOCK_ENGINE_HOME). */
  airlock: boolean;
}

/** A path whose file system the engine needs room on. */
export type SpaceFact = FreeSpace & { path: string };

export interface HostFacts {
  /** uname release, `6.1.0-18-amd64`. */
  kernelRelease: string;
  /** The host's architecture in Docker's names (`amd64`, `arm64`, `arm`). */
  architecture: string;
  /** The C library's version when it is glibc (the runtime's, as Node reports it). */
  glibc: string | undefined;
  /** Whether a musl dynamic loader is on the host (`/lib/ld-musl-*.so.1`). */
  musl: boolean;
  modules: Record<KernelModule, ModuleState>;
  /** The file system at /sys/fs/cgroup: cgroup2 (v2), tmpfs holding v1 hierarchies, or none. */
  cgroup: 'v2' | 'v1' | 'none';
  /** The `iptables` dockerd would find, and the first line of its `--version`. */
  iptables: { path: string; version: string } | undefined;
  /** The sockets on the swarm ports, in this network namespace. */
  ports: PortUse[];
  /** Room where the binaries go, and at the data root. */
  space: { binaries: SpaceFact; dataRoot: SpaceFact };
  dockerds: DockerdFact[];
  /** Running `dockerd` processes. */
  dockerdPids: number[];
  /** The engine family's packages; undefined when the host has no dpkg-query. */
  packages: PackageFact[] | undefined;
  packageTools: { dpkg: boolean; apt: boolean };
  /** A snap of Docker: its path. */
  snap: string | undefined;
  /** Signs of a rootless engine: `dockerd-rootless.sh (pid 812)`, `/run/user/1000/docker.sock`. */
  rootless: string[];
  /** The version airlock's static engine link points at, when there is one. */
  airlockEngine: string | undefined;
}

/** What the reader needs to be told: where to measure, and whether it may load modules. */
export interface FactsWanted {
  binariesHome: string;
  dataRoot: string;
  /** Run `modprobe` for a module that is loadable but not loaded, then look again. */
  loadModules: boolean;
}

export type HostFactsReader = (wanted: FactsWanted) => Promise<HostFacts>;
