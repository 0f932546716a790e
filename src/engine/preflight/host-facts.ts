/** Reads HostFacts from the running system: /proc and /sys where they say it, a program only where nothing else does. */
import { existsSync, readdirSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { machine, release } from 'node:os';
import { normalizePlatform } from '../../images/platform.js';
import { freeSpaceAt } from '../../store/free-space.js';
import { SWARM_PORTS, type FactsWanted, type HostFacts } from './facts.js';
import { findExecutable, readAirlockEngine, readDockerds, readEngineProcesses, readPackages, readSnap, searchDirs, stdoutOf } from './host-engines.js';
import { readModules } from './kernel-modules.js';
import { socketsOn } from './proc-net.js';

const CGROUP2_SUPER_MAGIC = 0x63677270;
const TMPFS_MAGIC = 0x01021994;

/** Where the engine's units look for programs (docker.service's PATH) besides this process's PATH. */
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export async function readHostFacts(wanted: FactsWanted): Promise<HostFacts> {
  const kernelRelease = release();
  const dirs = searchDirs(SYSTEM_DIRS);
  const packages = await readPackages(dirs);
  const [modules, cgroup, iptables, ports, binaries, dataRoot, dockerds, processes, snap, airlockEngine, dpkg, apt] = await Promise.all([
    readModules(kernelRelease, wanted.loadModules),
    readCgroup(),
    readIptables(dirs),
    socketsOn(SWARM_PORTS),
    freeSpaceAt(wanted.binariesHome),
    freeSpaceAt(wanted.dataRoot),
    readDockerds(dirs, packages),
    readEngineProcesses(),
    readSnap(),
    readAirlockEngine(),
    findExecutable('dpkg', dirs),
    findExecutable('apt-get', dirs),
  ]);
  return {
    kernelRelease,
    architecture: normalizePlatform({ os: 'linux', architecture: machine() }).architecture,
    glibc: glibcVersion(),
    musl: hasMuslLoader(),
    modules,
    cgroup,
    iptables,
    ports,
    space: { binaries: { path: wanted.binariesHome, ...binaries }, dataRoot: { path: wanted.dataRoot, ...dataRoot } },
    dockerds,
    dockerdPids: processes.dockerdPids,
    packages,
    packageTools: { dpkg: dpkg !== undefined, apt: apt !== undefined },
    snap,
    rootless: processes.rootless,
    airlockEngine,
  };
}

/** The glibc this process runs on, as Node's diagnostic report names it; absent on musl. */
function glibcVersion(): string | undefined {
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  return header?.glibcVersionRuntime;
}

function hasMuslLoader(): boolean {
  for (const dir of ['/lib', '/usr/lib']) if (existsSync(dir) && readdirSync(dir).some((f) => /^ld-musl-.*\.so\.1$/.test(f))) return true;
  return false;
}

async function readCgroup(): Promise<HostFacts['cgroup']> {
  const fs = await statfs('/sys/fs/cgroup').catch(() => undefined);
  if (fs?.type === CGROUP2_SUPER_MAGIC) return 'v2';
  // v1 mounts a tmpfs there with one cgroup file system per controller under it.
  if (fs?.type === TMPFS_MAGIC && readdirSync('/sys/fs/cgroup').length > 0) return 'v1';
  return 'none';
}

async function readIptables(dirs: readonly string[]): Promise<HostFacts['iptables']> {
  const path = await findExecutable('iptables', dirs);
  if (!path) return undefined;
  const version = await stdoutOf(path, ['--version']).catch((e: Error) => `cannot run it: ${e.message}`);
  return { path, version: version.split('\n')[0]!.trim() };
}
