/**
 * Engines already on the host: dockerd binaries and whose they are, the
 * engine family's Debian packages, Docker's snap, rootless engines and
 * airlock's own static engine.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { AIRLOCK_ENGINE_HOME, type DockerdFact, type PackageFact } from './facts.js';

/** The packages an engine comes in on Debian and Ubuntu (Debian's, Docker's, Microsoft's) and the ones beside it. */
export const ENGINE_FAMILY_PACKAGES = ['docker.io', 'docker-ce', 'docker-ce-cli', 'moby-engine', 'podman-docker', 'containerd', 'containerd.io', 'runc'];

/** Where a dockerd is looked for besides PATH: where packages and hand installs put it. */
const DOCKERD_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin', '/bin', '/sbin'];

/** The folders of PATH, then `extra`, each once. */
export function searchDirs(extra: readonly string[]): string[] {
  return [...new Set([...(process.env.PATH ?? '').split(delimiter).filter((d) => d.startsWith('/')), ...extra])];
}

/** The first executable file `name` in `dirs`. */
export async function findExecutable(name: string, dirs: readonly string[]): Promise<string | undefined> {
  for (const dir of dirs) {
    const path = join(dir, name);
    const st = await stat(path).catch(() => undefined);
    if (st?.isFile() && (st.mode & 0o111) !== 0) return path;
  }
  return undefined;
}

/** Runs a program and gives its stdout whatever its exit status (dpkg-query exits 1 for a package it never heard of). */
export async function stdoutOf(cmd: string, args: readonly string[]): Promise<string> {
  try {
    return (await promisify(execFile)(cmd, args, { timeout: 30_000 })).stdout;
  } catch (e) {
    const out = (e as { stdout?: unknown }).stdout;
    if (typeof out === 'string' && (e as { code?: unknown }).code !== 'ENOENT') return out;
    throw e;
  }
}

/** Parses `dpkg-query -W -f '${Package} ${Version} ${Status}\n'` output. */
export function parseDpkgQuery(text: string): PackageFact[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 2 && f[0])
    .map(([name, ...rest]) => {
      // A package dpkg knows but never installed prints an empty version: `docker-ce  unknown ok not-installed`.
      const status = rest.slice(-3).join(' ');
      const version = rest.length > 3 ? rest[0]! : '';
      return { name: name!, version, installed: status === 'install ok installed' };
    });
}

/** The engine family's packages, or undefined on a host without dpkg-query. */
export async function readPackages(dirs: readonly string[]): Promise<PackageFact[] | undefined> {
  const dpkgQuery = await findExecutable('dpkg-query', dirs);
  if (!dpkgQuery) return undefined;
  return parseDpkgQuery(await stdoutOf(dpkgQuery, ['-W', '-f', '${Package} ${Version} ${Status}\n', ...ENGINE_FAMILY_PACKAGES]));
}

/** The files an installed package placed, from dpkg's own list (`NAME.list`, or `NAME:ARCH.list` for a multi-arch one). */
async function packageFiles(name: string, dpkgInfo = '/var/lib/dpkg/info'): Promise<Set<string>> {
  const lists = (await readdir(dpkgInfo).catch(() => [] as string[])).filter((f) => f === `${name}.list` || (f.startsWith(`${name}:`) && f.endsWith('.list')));
  const files = new Set<string>();
  for (const l of lists) for (const line of (await readFile(join(dpkgInfo, l), 'utf8')).split('\n')) if (line) files.add(line);
  return files;
}

/** Every distinct dockerd binary in PATH and the usual folders, with its owner. */
export async function readDockerds(dirs: readonly string[], packages: readonly PackageFact[] | undefined): Promise<DockerdFact[]> {
  const owners = await Promise.all((packages ?? []).filter((p) => p.installed).map(async (p) => ({ name: p.name, files: await packageFiles(p.name) })));
  const found = new Map<string, DockerdFact>();
  for (const dir of searchDirs([...dirs, ...DOCKERD_DIRS])) {
    const path = join(dir, 'dockerd');
    if (!existsSync(path)) continue;
    const real = await realpath(path).catch(() => path);
    if (found.has(real)) continue;
    const owner = owners.find((o) => o.files.has(path) || o.files.has(real));
    found.set(real, { path, realPath: real, airlock: real.startsWith(`${AIRLOCK_ENGINE_HOME}/`), ...(owner ? { package: owner.name } : {}) });
  }
  return [...found.values()];
}

/** Docker's snap: the command snapd links, or a downloaded snap file. */
export async function readSnap(): Promise<string | undefined> {
  if (existsSync('/snap/bin/docker')) return '/snap/bin/docker';
  const snaps = await readdir('/var/lib/snapd/snaps').catch(() => [] as string[]);
  const docker = snaps.find((f) => /^docker_.*\.snap$/.test(f));
  return docker ? `/var/lib/snapd/snaps/${docker}` : undefined;
}

/** Processes by command name and command line: running dockerd pids, and rootless engines' scripts. */
export async function readEngineProcesses(): Promise<{ dockerdPids: number[]; rootless: string[] }> {
  const dockerdPids: number[] = [];
  const rootless: string[] = [];
  for (const pid of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
    if (comm === 'dockerd') dockerdPids.push(Number(pid));
    // A script's comm is cut to 15 characters (`dockerd-rootles`); its command line is whole.
    else if (comm.startsWith('dockerd-rootles') || comm === 'rootlesskit') rootless.push(`${comm === 'rootlesskit' ? comm : 'dockerd-rootless.sh'} (pid ${pid})`);
  }
  const users = await readdir('/run/user').catch(() => [] as string[]);
  for (const uid of users) if (existsSync(`/run/user/${uid}/docker.sock`)) rootless.push(`/run/user/${uid}/docker.sock`);
  return { dockerdPids: dockerdPids.sort((a, b) => a - b), rootless };
}

/** The version airlock's `current` link points at. */
export async function readAirlockEngine(): Promise<string | undefined> {
  const target = await readlink(join(AIRLOCK_ENGINE_HOME, 'current')).catch(() => undefined);
  return target?.split('/').filter(Boolean).pop();
}
