/**
 * The package form on a Debian host: a closed set of local .deb files
 * installed by apt in one transaction, offline. A simulation first names any
 * dependency the set and the host lack, before anything changes. An rpm twin
 * (dnf with its repositories off) would sit beside this with the same two calls.
 */
import { access, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { EngineRecord } from '../bundle/manifest-format.js';
import { AirlockError } from '../errors/index.js';
import { defaultEngineHostPaths, type EngineHostPaths } from './host-paths.js';
import { runCommand, tailOf } from './run-command.js';

/**
 * apt sees only the host's installed packages and the files named: with no
 * source list there is nowhere to download from. (`--no-download` says so
 * again in the simulation; the real install cannot take it: apt 3 then looks
 * for the local files in its archive cache, "Pathname to install is not absolute".)
 */
const OFFLINE = ['-o', 'Dir::Etc::SourceList=/dev/null', '-o', 'Dir::Etc::SourceParts=/dev/null', '--no-install-recommends'];

export interface MissingDependency {
  /** The package that needs it. */
  package: string;
  /** What it needs, as apt says it (`containerd (>= 1.6.24~ds1)`). */
  needs: string;
  /** apt's reason (`it is not installable`). */
  why: string;
}

export interface PackagePlan {
  /** `name version` of each package apt would install or upgrade. */
  installs: string[];
  /** Installed packages apt would remove (a conflicting engine). */
  removes: string[];
}

/** The lines of apt's "unmet dependencies" report: ` pkg : Depends: dep (>= v) but it is not installable`, the next ones for the same pkg indented. */
export function parseUnmetDependencies(output: string): MissingDependency[] {
  const found: MissingDependency[] = [];
  let current: string | undefined;
  for (const line of output.split('\n')) {
    const head = /^ (\S+) : (.*)$/.exec(line);
    const rest = head ? head[2]! : /^\s{3,}(\S.*)$/.exec(line)?.[1];
    if (head) current = head[1]!;
    if (rest === undefined || current === undefined) {
      if (!head) current = undefined;
      continue;
    }
    const dep = /^(?:Pre)?Depends: (.+?)(?: but (.+))?$/.exec(rest.trim());
    if (dep) found.push({ package: current, needs: dep[1]!, why: dep[2] ?? 'it is not in the set' });
  }
  return found;
}

function parsePlan(stdout: string): PackagePlan {
  const installs: string[] = [];
  const removes: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^(Inst|Remv) (\S+)(?: \[[^\]]*\])?(?: \((\S+))?/.exec(line);
    if (m?.[1] === 'Inst') installs.push(`${m[2]} ${m[3] ?? ''}`.trim());
    else if (m?.[1] === 'Remv') removes.push(m[2]!);
  }
  return { installs, removes };
}

const aptEnv = (): NodeJS.ProcessEnv => ({ ...process.env, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' });

/**
 * One package file: a path (a `.deb`, or a content store blob, which is
 * named by its digest), or a file with the package file name to give it
 * (the record's `path`).
 */
export type PackageFile = string | { path: string; name: string };

/** A package set's blobs under the record's package file names. */
export const packageFiles = (record: EngineRecord, blobPath: (digest: string) => string): PackageFile[] => record.files.map((f) => ({ path: blobPath(f.digest), name: f.path }));

/** A package file's own name, from its control fields (`dpkg-deb -f`), as apt names downloaded files. */
async function debNameOf(path: string): Promise<string> {
  const r = await runCommand('dpkg-deb', ['-f', path, 'Package', 'Version', 'Architecture']);
  const fields = Object.fromEntries([...r.stdout.matchAll(/^(\w+): (.+)$/gm)].map((m) => [m[1]!, m[2]!.trim()]));
  if (r.status !== 0 || !fields.Package || !fields.Version || !fields.Architecture) {
    throw new AirlockError('integrity', `${path} is not a Debian package: ${tailOf(r)}`, { reason: 'not-a-package', subject: path });
  }
  return `${fields.Package}_${fields.Version.replace(/^\d+:/, '')}_${fields.Architecture}.deb`;
}

/**
 * apt takes a local package only by an absolute path whose name ends in
 * `.deb` ("Unsupported file … given on commandline" else): a blob is given
 * such a name by a link in a private temporary folder, for the call.
 */
async function withDebNames<T>(files: readonly PackageFile[], body: (paths: string[]) => Promise<T>): Promise<T> {
  let dir: string | undefined;
  try {
    const paths: string[] = [];
    for (const f of files) {
      const path = resolve(typeof f === 'string' ? f : f.path);
      if (typeof f === 'string' && path.endsWith('.deb')) {
        paths.push(path);
        continue;
      }
      const name = typeof f === 'string' ? await debNameOf(path) : f.name;
      if (basename(name) !== name || !name.endsWith('.deb') || name.startsWith('.')) {
        throw new AirlockError('usage', `package file name '${name}' is not a .deb file name`, { reason: 'bad-package-name', subject: name });
      }
      dir ??= await mkdtemp(join(tmpdir(), 'airlock-debs-'));
      await symlink(path, join(dir, name));
      paths.push(join(dir, name));
    }
    return await body(paths);
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Asks apt, without changing anything, whether the set installs on this host
 * as it is; throws `engine-missing-dependency` (exit 19) naming each missing
 * package and who needs it.
 */
export function checkPackages(files: readonly PackageFile[], opts: { allowDowngrades?: boolean } = {}): Promise<PackagePlan> {
  return withDebNames(files, (debs) => simulate(debs, opts));
}

async function simulate(debs: string[], opts: { allowDowngrades?: boolean }): Promise<PackagePlan> {
  const r = await runCommand(
    'apt-get',
    ['install', '--simulate', '--no-download', '-o', 'Debug::NoLocking=1', ...OFFLINE, ...(opts.allowDowngrades ? ['--allow-downgrades'] : []), ...debs],
    { env: aptEnv() },
  );
  if (r.status === 0) return parsePlan(r.stdout);
  const missing = parseUnmetDependencies(r.stdout + '\n' + r.stderr);
  if (missing.length > 0) {
    const list = missing.map((m) => `${m.needs} (needed by ${m.package}: ${m.why})`).join('; ');
    throw new AirlockError('dependency', `the engine's package set cannot be installed on this host: missing ${list}`, {
      reason: 'engine-missing-dependency',
      subject: missing.map((m) => m.needs.split(' ')[0]).join(', '),
      hint: "add the missing packages to the bundle's package set (with their own dependencies), or install them on the host first",
    });
  }
  throw new AirlockError('engine', `apt-get cannot install the engine's package set: ${tailOf(r)}`, { reason: 'engine-package-install' });
}

export interface InstallOptions {
  allowDowngrades?: boolean;
  /** Default: the host's (defaultEngineHostPaths). */
  paths?: EngineHostPaths;
  onOutput?: (text: string) => void;
}

/** Debian's hook answer "do not start services now" (invoke-rc.d asks it), so the packages leave the engine stopped for airlock to start. */
const DENY_START = '#!/bin/sh\n# airlock: no service starts while the engine packages install\nexit 101\n';

/**
 * Installs the set in one apt transaction, offline, with no service started by
 * the packages' scripts; then requires `dpkg --audit` to find nothing half-done.
 */
export function installPackages(files: readonly PackageFile[], opts: InstallOptions = {}): Promise<PackagePlan> {
  return withDebNames(files, (debs) => install(debs, opts));
}

async function install(debs: string[], opts: InstallOptions): Promise<PackagePlan> {
  const paths = opts.paths ?? defaultEngineHostPaths();
  const plan = await simulate(debs, opts);
  let placedPolicy = false;
  try {
    await writeFile(paths.policyRcD, DENY_START, { mode: 0o755, flag: 'wx' });
    placedPolicy = true;
  } catch (e) {
    // One already there is the host's own: it stays, and decides.
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  try {
    const r = await runCommand(
      'apt-get',
      ['install', '-y', '-q', ...OFFLINE, '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold', ...(opts.allowDowngrades ? ['--allow-downgrades'] : []), ...debs],
      { env: aptEnv(), ...(opts.onOutput ? { onOutput: opts.onOutput } : {}) },
    );
    if (r.status !== 0) throw new AirlockError('engine', `apt-get could not install the engine's package set: ${tailOf(r)}`, { reason: 'engine-package-install', hint: 'see `dpkg --audit`; run the install again once the cause is fixed' });
  } finally {
    if (placedPolicy) await rm(paths.policyRcD, { force: true });
  }
  const audit = await runCommand('dpkg', ['--audit'], { env: aptEnv() });
  if (audit.status !== 0 || audit.stdout.trim() !== '') {
    throw new AirlockError('engine', `dpkg --audit finds packages half-installed after the engine's install: ${tailOf(audit)}`, { reason: 'engine-package-audit', hint: 'run `dpkg --configure -a` and install the engine again' });
  }
  return plan;
}

/** Whether the host has apt and dpkg at all (the package form needs them). */
export async function hasApt(): Promise<boolean> {
  try {
    await access('/usr/bin/apt-get');
    return true;
  } catch {
    return false;
  }
}
