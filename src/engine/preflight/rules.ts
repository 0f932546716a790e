/**
 * The engine preflight's rules: pure functions from what a host is
 * (facts.ts) and what is to be installed to one check each. Thresholds are
 * named here and documented in docs/engine-install.md.
 */
import type { EngineForm, EngineRecord } from '../../bundle/manifest-format.js';
import type { CheckStatus } from '../../doctor/checks.js';
import { formatBytes } from '../../units/bytes.js';
import { AIRLOCK_ENGINE_HOME, SWARM_PORTS, type HostFacts, type KernelModule, type PortUse, type SocketHolder, type SpaceFact } from './facts.js';

export interface PreflightCheck {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a warning or failure. */
  fix?: string;
  /** On a failure: a stable word for scripts (docs/exit-codes.md, `preflight-failed`). */
  reason?: PreflightReason;
}

/** Why a check failed. The first two are the bundle's fault (it never installs here); the rest the host's. */
export const BUNDLE_REASONS = ['engine-wrong-platform', 'engine-wrong-libc', 'engine-form-unsupported'] as const;
export type PreflightReason =
  | (typeof BUNDLE_REASONS)[number]
  | 'kernel-too-old'
  | 'module-missing'
  | 'no-cgroups'
  | 'no-iptables'
  | 'port-in-use'
  | 'disk-full'
  | 'engine-conflict'
  | 'no-package-manager';

/** The engine airlock manages on this host now, when there is one: its own ports and binaries are no conflict. */
export interface InstalledEngine {
  version: string;
  form: EngineForm;
  /** dockerd's pid, when it runs. */
  pid?: number;
}

export interface RuleOptions {
  engine: EngineRecord | undefined;
  installed: InstalledEngine | undefined;
  /** Whether the host will be a swarm node: overlay networks need br_netfilter and vxlan. */
  swarm: boolean;
  /** Whether dockerd will manage iptables (the host config's `daemon.iptables`, default true). */
  iptables: boolean;
  /** Bytes the binaries or packages take once installed. */
  bytesNeeded: number;
}

/** Below this overlay2 cannot stack many lower layers (Linux 4.0) and the engine does not run well; refused. */
export const KERNEL_MINIMUM = [4, 0] as const;
/** Below this (the oldest long-term kernel current Docker and containerd are tested on) it may work, with a warning. */
export const KERNEL_COMFORTABLE = [5, 4] as const;
/** Spare room kept above the binaries' size on their file system. */
export const BINARIES_MARGIN = 256 * 1024 ** 2;
/** What the data root needs free before the first image arrives (as `airlock doctor` asks of the state dir). */
export const DATA_ROOT_MINIMUM = 2 * 1024 ** 3;

const ENGINE_PACKAGES = ['docker.io', 'docker-ce', 'moby-engine'];

/** Every rule, in the order the report shows them. */
export function judgeHost(facts: HostFacts, opts: RuleOptions): PreflightCheck[] {
  const hostEngine = hostEngineOf(facts, opts);
  return [
    ...(opts.engine ? [platformCheck(facts, opts.engine), libcCheck(facts, opts.engine)] : []),
    ...(opts.engine && opts.engine.form !== 'static' ? [packageManagerCheck(facts, opts.engine.form)] : []),
    kernelCheck(facts.kernelRelease),
    ...moduleChecks(facts, opts.swarm),
    cgroupCheck(facts.cgroup),
    iptablesCheck(facts.iptables, opts.iptables),
    ...portChecks(facts.ports, hostEngine.ownPids, hostEngine.ownRuns),
    diskCheck(facts.space, opts.bytesNeeded),
    hostEngine.check,
  ];
}

const fail = (name: string, detail: string, reason: PreflightReason, fix: string): PreflightCheck => ({ name, status: 'fail', detail, fix, reason });

function platformCheck(facts: HostFacts, engine: EngineRecord): PreflightCheck {
  const wanted = `${engine.platform.os}/${engine.platform.architecture}`;
  const host = `linux/${facts.architecture}`;
  if (wanted === host) return { name: 'platform', status: 'pass', detail: `${wanted}, as the host` };
  return fail('platform', `the engine is built for ${wanted}; this host is ${host}`, 'engine-wrong-platform', `use an engine bundle built for ${host}`);
}

function libcCheck(facts: HostFacts, engine: EngineRecord): PreflightCheck {
  const name = 'libc';
  const hostLibc = facts.glibc ? `glibc ${facts.glibc}` : facts.musl ? 'musl' : 'no glibc or musl found';
  switch (engine.libc.kind) {
    case 'static':
      return { name, status: 'pass', detail: 'the engine is linked statically; the host has ' + hostLibc };
    case 'distribution':
      return { name, status: 'pass', detail: `the packages' dependencies name it; the host has ${hostLibc}` };
    case 'musl':
      return facts.musl
        ? { name, status: 'pass', detail: 'the engine needs musl; the host has its loader' }
        : fail(name, `the engine is linked against musl; the host has ${hostLibc}`, 'engine-wrong-libc', 'use an engine bundle built for glibc, or a static one');
    case 'glibc': {
      const min = engine.libc.minimum;
      if (facts.glibc === undefined) return fail(name, `the engine needs glibc ${min} or newer; the host has ${hostLibc}`, 'engine-wrong-libc', 'use a static engine bundle (Docker\'s static archive)');
      if (compareVersions(facts.glibc, min) < 0)
        return fail(name, `the engine needs glibc ${min} or newer; the host has glibc ${facts.glibc}`, 'engine-wrong-libc', `use an engine built on a distribution with glibc ${facts.glibc} or older, or a static one`);
      return { name, status: 'pass', detail: `the engine needs glibc ${min}; the host has ${facts.glibc}` };
    }
  }
}

function packageManagerCheck(facts: HostFacts, form: Exclude<EngineForm, 'static'>): PreflightCheck {
  const name = 'package manager';
  if (form === 'rpm') return fail(name, 'the engine comes as .rpm packages, which this airlock does not install yet', 'engine-form-unsupported', 'use the static form or .deb packages');
  const missing = [!facts.packageTools.dpkg && 'dpkg', !facts.packageTools.apt && 'apt-get'].filter((t): t is string => typeof t === 'string');
  if (missing.length === 0) return { name, status: 'pass', detail: 'dpkg and apt-get install the .deb packages' };
  return fail(name, `the engine comes as .deb packages and the host has no ${missing.join(' or ')}`, 'no-package-manager', 'use the static form of the engine on this host');
}

/** Compares dotted numeric versions (`2.36` < `2.41`, `5.4` < `5.10`). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((n) => parseInt(n, 10) || 0);
  const pb = b.split('.').map((n) => parseInt(n, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function kernelCheck(release: string): PreflightCheck {
  const name = 'kernel';
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return { name, status: 'warn', detail: `cannot read the version of kernel ${release}`, fix: `airlock wants Linux ${KERNEL_COMFORTABLE.join('.')} or newer` };
  const version = `${m[1]}.${m[2]}`;
  if (compareVersions(version, KERNEL_MINIMUM.join('.')) < 0)
    return fail(name, `Linux ${release}: the engine needs ${KERNEL_MINIMUM.join('.')} or newer (overlay2)`, 'kernel-too-old', `upgrade the kernel to ${KERNEL_COMFORTABLE.join('.')} or newer`);
  if (compareVersions(version, KERNEL_COMFORTABLE.join('.')) < 0)
    return { name, status: 'warn', detail: `Linux ${release}: works, but older than ${KERNEL_COMFORTABLE.join('.')}, the oldest kernel current engines are tested on`, fix: `upgrade the kernel to ${KERNEL_COMFORTABLE.join('.')} or newer when you can` };
  return { name, status: 'pass', detail: `Linux ${release}` };
}

const MODULE_USE: Record<KernelModule, string> = {
  overlay: 'the overlay2 storage driver',
  br_netfilter: 'firewalling of bridged container traffic',
  vxlan: 'overlay networks between swarm nodes',
};

/**
 * overlay and vxlan are loaded by the kernel itself on first use (a mount,
 * a link of that type), so loadable is enough; br_netfilter is not, and
 * must be loaded before dockerd starts.
 */
const AUTOLOADED: ReadonlySet<KernelModule> = new Set(['overlay', 'vxlan']);

function moduleChecks(facts: HostFacts, swarm: boolean): PreflightCheck[] {
  return (Object.keys(MODULE_USE) as KernelModule[]).map((mod) => {
    const name = `module ${mod}`;
    const use = MODULE_USE[mod];
    const load = `modprobe ${mod} && echo ${mod} >> /etc/modules-load.d/docker.conf`;
    switch (facts.modules[mod]) {
      case 'loaded':
        return { name, status: 'pass', detail: `loaded (${use})` };
      case 'builtin':
        return { name, status: 'pass', detail: `built into the kernel (${use})` };
      case 'loadable':
        return AUTOLOADED.has(mod)
          ? { name, status: 'pass', detail: `loadable; the kernel loads it on first use (${use})` }
          : { name, status: 'warn', detail: `loadable but not loaded (${use})`, fix: `load it now and at boot: ${load}` };
      case 'unknown':
        return { name, status: 'warn', detail: `not loaded, and the host has no module list or kernel config that says whether it can be (${use})`, fix: `check with: ${load}` };
      case 'missing':
        if (mod !== 'overlay' && !swarm) return { name, status: 'warn', detail: `not in this kernel (${use}); a host outside a swarm can do without` };
        return fail(name, `not in this kernel, neither built in nor a module under /lib/modules (${use})`, 'module-missing', `install a kernel with ${mod} (CONFIG_${mod === 'overlay' ? 'OVERLAY_FS' : mod.toUpperCase()})`);
    }
  });
}

function cgroupCheck(cgroup: HostFacts['cgroup']): PreflightCheck {
  const name = 'cgroups';
  if (cgroup === 'v2') return { name, status: 'pass', detail: 'cgroup v2 (unified)' };
  if (cgroup === 'v1')
    return { name, status: 'warn', detail: 'cgroup v1: Docker deprecates it, and it still works', fix: 'boot with systemd.unified_cgroup_hierarchy=1 to move to cgroup v2 when you can' };
  return fail(name, 'no cgroup file system at /sys/fs/cgroup', 'no-cgroups', 'mount it: mount -t cgroup2 none /sys/fs/cgroup (systemd does this at boot)');
}

function iptablesCheck(found: HostFacts['iptables'], needed: boolean): PreflightCheck {
  const name = 'iptables';
  if (!needed) return { name, status: 'pass', detail: `not needed: the host config sets iptables: false${found ? ` (${found.path} is there)` : ''}` };
  if (!found) return fail(name, 'no iptables in PATH, /usr/sbin or /sbin; dockerd needs it for its networks', 'no-iptables', 'install the distribution\'s iptables package (it works with nf_tables or legacy), or set iptables: false in the host config\'s engine daemon keys');
  const backend = /\((nf_tables|legacy)\)/.exec(found.version)?.[1];
  return { name, status: 'pass', detail: `${found.version.trim()} at ${found.path}${backend ? ` (${backend === 'legacy' ? 'legacy iptables' : 'nftables backend'})` : ''}` };
}

/**
 * Who holds a swarm port: the engine airlock manages (its pid, or the
 * kernel's VXLAN socket while that engine runs) is no conflict, anyone else
 * is, named by pid and command when they can be found.
 */
function portChecks(ports: readonly PortUse[], ownPids: ReadonlySet<number>, ownRuns: boolean): PreflightCheck[] {
  return SWARM_PORTS.map(({ port, proto, use }) => {
    const name = `port ${port}/${proto}`;
    const uses = ports.filter((u) => u.port === port && u.proto === proto);
    if (uses.length === 0) return { name, status: 'pass', detail: `free (${use})` };
    const own = (u: PortUse) => u.holders.some((h) => ownPids.has(h.pid)) || (u.kernel && ownRuns);
    const foreign = uses.filter((u) => !own(u));
    if (foreign.length === 0) {
      const by = uses.flatMap((u) => u.holders.filter((h) => ownPids.has(h.pid)).map(holderText));
      return { name, status: 'pass', detail: `held by the engine airlock manages${by.length ? ` (${[...new Set(by)].join(', ')})` : ''} (${use})` };
    }
    const who = [...new Set(foreign.map(holderOf))].join('; ');
    return fail(name, `in use on ${foreign.map((u) => u.address).join(', ')} by ${who}; the swarm needs it for ${use}`, 'port-in-use', fixFor(foreign));
  });
}

const holderText = (h: SocketHolder) => `${h.comm} (pid ${h.pid}${h.exe ? `, ${h.exe}` : ''})`;

function holderOf(u: PortUse): string {
  if (u.holders.length > 0) return u.holders.map(holderText).join(', ');
  if (u.kernel) return 'the kernel (a VXLAN device: another engine\'s overlay network, or one made by hand)';
  return `a process that could not be found (socket inode ${u.inode}; its /proc entry is hidden from this user)`;
}

function fixFor(uses: readonly PortUse[]): string {
  if (uses.every((u) => u.kernel)) return 'find it with: ip -d link show type vxlan; remove it, or leave the swarm of the engine that made it';
  return 'stop that process (or move it to another port); the swarm ports are fixed';
}

function diskCheck(space: HostFacts['space'], bytesNeeded: number): PreflightCheck {
  const name = 'disk space';
  const needs: { fact: SpaceFact; bytes: number; what: string }[] = [
    { fact: space.binaries, bytes: bytesNeeded + BINARIES_MARGIN, what: `the engine at ${space.binaries.path}` },
    { fact: space.dataRoot, bytes: DATA_ROOT_MINIMUM, what: `the data root ${space.dataRoot.path}` },
  ];
  // Two paths on one file system share its free space: their needs add up.
  const byDev = new Map<number, { fact: SpaceFact; bytes: number; what: string[] }>();
  for (const n of needs) {
    const seen = byDev.get(n.fact.dev);
    if (seen) {
      seen.bytes += n.bytes;
      seen.what.push(n.what);
    } else byDev.set(n.fact.dev, { fact: n.fact, bytes: n.bytes, what: [n.what] });
  }
  const parts = [...byDev.values()].map((d) => ({ ...d, short: d.fact.free < d.bytes, text: `${formatBytes(d.fact.free)} free at ${d.fact.dir}, ${formatBytes(d.bytes)} wanted for ${d.what.join(' and ')}` }));
  const detail = parts.map((p) => p.text).join('; ');
  const short = parts.filter((p) => p.short);
  if (short.length === 0) return { name, status: 'pass', detail };
  return fail(name, detail, 'disk-full', `free ${short.map((p) => `${formatBytes(p.bytes - p.fact.free)} at ${p.fact.dir}`).join(' and ')}, or set another data root in the host config (engine.dataRoot)`);
}

interface HostEngine {
  check: PreflightCheck;
  /** Processes whose ports are the engine's own (the one being upgraded). */
  ownPids: ReadonlySet<number>;
  /** Whether that engine runs, so the kernel's VXLAN socket is its. */
  ownRuns: boolean;
}

/**
 * What engine the host has besides the one to install, and whether it is a
 * conflict: for the static form a package-managed engine is; for packages
 * airlock's static engine is, and a package of the same name is an upgrade.
 * A snap is always in the way; a rootless engine runs in its user's own
 * namespaces and is only pointed out; a dockerd nobody owns is unknown.
 */
function hostEngineOf(facts: HostFacts, opts: RuleOptions): HostEngine {
  const name = 'existing engine';
  const form = opts.engine?.form;
  const found: PreflightCheck[] = [];
  const ownPids = new Set<number>(opts.installed?.pid === undefined ? [] : [opts.installed.pid]);
  let ownRuns = opts.installed?.pid !== undefined;

  const staticVersion = facts.airlockEngine ?? (opts.installed?.form === 'static' ? opts.installed.version : undefined);
  if (staticVersion !== undefined) {
    const text = `airlock's static engine ${staticVersion} in ${AIRLOCK_ENGINE_HOME}`;
    if (form === undefined || form === 'static') found.push({ name, status: 'pass', detail: form ? `${text}: ${staticVersion === opts.engine?.version ? 'the same version' : 'an upgrade'}` : text });
    else found.push(fail(name, `${text}, and the bundle brings packages`, 'engine-conflict', 'install the static form, or remove airlock\'s static engine first (stop docker.service and containerd.service, remove their units in /etc/systemd/system and ' + AIRLOCK_ENGINE_HOME + ')'));
  }

  const bundlePackages = new Set((opts.engine?.files ?? []).flatMap((f) => (f.package ? [f.package.name] : [])));
  for (const p of (facts.packages ?? []).filter((p) => p.installed && ENGINE_PACKAGES.includes(p.name))) {
    const text = `package ${p.name} ${p.version}`;
    if (form === undefined) found.push({ name, status: 'pass', detail: `${text} (package-managed)` });
    else if (form === 'static')
      found.push(fail(name, `${text} is installed, and the bundle brings the static form`, 'engine-conflict', `remove it first (apt-get remove ${p.name}; images and volumes under the data root stay), or install the engine's .deb form`));
    else if (bundlePackages.has(p.name)) {
      found.push({ name, status: 'pass', detail: `${text}: the bundle upgrades it to ${opts.engine?.version}` });
      if (facts.dockerdPids.length > 0) {
        for (const pid of facts.dockerdPids) ownPids.add(pid);
        ownRuns = true;
      }
    } else found.push(fail(name, `${text} is installed, and the bundle brings ${[...bundlePackages].join(', ') || 'other packages'}`, 'engine-conflict', `remove ${p.name} first (apt-get remove ${p.name}), or use an engine bundle of the same packages`));
  }

  for (const d of facts.dockerds.filter((d) => !d.airlock && d.package === undefined))
    found.push({ name, status: 'warn', detail: `${d.path}${d.realPath !== d.path ? ` (${d.realPath})` : ''}: a dockerd no package and not airlock installed`, fix: `remove it, or make sure nothing starts it: two engines cannot share the swarm ports` });

  if (facts.snap) {
    const text = `Docker's snap (${facts.snap})`;
    found.push(form === undefined ? { name, status: 'warn', detail: text, fix: 'snap remove docker' } : fail(name, `${text} is installed`, 'engine-conflict', 'remove it first: snap remove docker'));
  }
  for (const r of facts.rootless)
    found.push({ name, status: 'warn', detail: `a rootless engine: ${r}`, fix: 'it runs in its user\'s own namespaces and does not hold the host\'s ports; that user\'s docker commands talk to it, not to this engine' });

  if (found.length === 0) return { check: { name, status: 'pass', detail: 'none: no dockerd, engine package, snap or rootless engine found' }, ownPids, ownRuns };
  const worst = found.find((c) => c.status === 'fail') ?? found.find((c) => c.status === 'warn') ?? found[0]!;
  const fixes = [...new Set(found.filter((c) => c.status !== 'pass' && c.fix).map((c) => c.fix!))];
  return {
    check: { name, status: worst.status, detail: found.map((c) => c.detail).join('; '), ...(fixes.length ? { fix: fixes.join('; ') } : {}), ...(worst.reason ? { reason: worst.reason } : {}) },
    ownPids,
    ownRuns,
  };
}
