// The engine preflight (src/engine/preflight.ts): each rule with injected host facts, fail and
// pass; then the real reader on this machine (its Debian docker.io found as an existing engine),
// and a real port conflict in a network namespace the test makes, named by the holder's pid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, realpathSync } from 'node:fs';
import type { EngineRecord } from '../../src/bundle/manifest-format.js';
import { ExitCode } from '../../src/errors/index.js';
import { formatPreflight, preflightError, runPreflight, type HostFacts, type PreflightOptions, type PreflightReport } from '../../src/engine/preflight.js';
import { readHostFacts } from '../../src/engine/preflight/host-facts.js';
import { parseDpkgQuery } from '../../src/engine/preflight/host-engines.js';
import { moduleState, type ModuleSources } from '../../src/engine/preflight/kernel-modules.js';
import { decodeAddress, parseProcNet } from '../../src/engine/preflight/proc-net.js';

const GiB = 1024 ** 3;

/** A host that can take any engine: current kernel, modules loaded, cgroup v2, nothing on the ports, no engine. */
function healthy(): HostFacts {
  return {
    kernelRelease: '6.1.0-18-amd64',
    architecture: 'amd64',
    glibc: '2.36',
    musl: false,
    modules: { overlay: 'loaded', br_netfilter: 'loaded', vxlan: 'loaded' },
    cgroup: 'v2',
    iptables: { path: '/usr/sbin/iptables', version: 'iptables v1.8.9 (nf_tables)' },
    ports: [],
    space: { binaries: { path: '/opt/airlock/engine', dir: '/opt', free: 50 * GiB, dev: 1 }, dataRoot: { path: '/var/lib/docker', dir: '/var/lib', free: 50 * GiB, dev: 2 } },
    dockerds: [],
    dockerdPids: [],
    packages: [],
    packageTools: { dpkg: true, apt: true },
    snap: undefined,
    rootless: [],
    airlockEngine: undefined,
  };
}

function staticEngine(over: Partial<EngineRecord> = {}): EngineRecord {
  return { version: '28.5.2', form: 'static', platform: { os: 'linux', architecture: 'amd64' }, libc: { kind: 'static' }, files: [{ path: 'dockerd', digest: 'sha256:00', size: 80 * 1024 ** 2, mode: 0o755 }], ...over };
}

function debEngine(...names: string[]): EngineRecord {
  return {
    version: '26.1.5+dfsg1',
    form: 'deb',
    platform: { os: 'linux', architecture: 'amd64' },
    libc: { kind: 'distribution' },
    files: names.map((name) => ({ path: `${name}_1_amd64.deb`, digest: 'sha256:00', size: 30 * 1024 ** 2, mode: 0o644, package: { name, version: '1', architecture: 'amd64' } })),
  };
}

async function preflight(facts: Partial<HostFacts>, opts: PreflightOptions = {}): Promise<PreflightReport> {
  return runPreflight({ engine: staticEngine(), ...opts, host: async () => ({ ...healthy(), ...facts }) });
}

const check = (r: PreflightReport, name: string) => {
  const c = r.checks.find((c) => c.name === name);
  assert.ok(c, `no check named ${name} in ${r.checks.map((c) => c.name).join(', ')}`);
  return c;
};

test('a healthy host passes every check, and each check is one line', async () => {
  const r = await preflight({});
  assert.equal(r.ok, true);
  assert.deepEqual(r.checks.filter((c) => c.status !== 'pass'), []);
  assert.deepEqual(
    r.checks.map((c) => c.name),
    ['platform', 'libc', 'kernel', 'module overlay', 'module br_netfilter', 'module vxlan', 'cgroups', 'iptables', 'port 2377/tcp', 'port 7946/tcp', 'port 7946/udp', 'port 4789/udp', 'disk space', 'existing engine'],
  );
  assert.equal(formatPreflight(r).split('\n').length, r.checks.length);
});

test('kernel: below 4.0 fails, below 5.4 warns, newer passes', async () => {
  const old = await preflight({ kernelRelease: '3.10.0-1160.el7.x86_64' });
  assert.equal(old.ok, false);
  assert.equal(check(old, 'kernel').reason, 'kernel-too-old');
  assert.match(check(old, 'kernel').detail, /3\.10\.0.*needs 4\.0 or newer/);
  assert.equal(check(await preflight({ kernelRelease: '4.19.0-27-amd64' }), 'kernel').status, 'warn');
  assert.equal(check(await preflight({ kernelRelease: '5.10.0-30-amd64' }), 'kernel').status, 'pass');
});

test('modules: overlay missing fails; br_netfilter or vxlan missing fails a swarm host only; loadable br_netfilter warns with how to load it', async () => {
  const noOverlay = await preflight({ modules: { overlay: 'missing', br_netfilter: 'loaded', vxlan: 'loaded' } });
  assert.equal(check(noOverlay, 'module overlay').reason, 'module-missing');
  assert.match(check(noOverlay, 'module overlay').fix!, /CONFIG_OVERLAY_FS/);
  const noVxlan = { modules: { overlay: 'loaded', br_netfilter: 'missing', vxlan: 'missing' } } as const;
  const swarm = await preflight(noVxlan);
  assert.equal(check(swarm, 'module vxlan').status, 'fail');
  assert.equal(check(swarm, 'module br_netfilter').status, 'fail');
  const alone = await preflight(noVxlan, { swarm: false });
  assert.equal(check(alone, 'module vxlan').status, 'warn');
  assert.equal(alone.ok, true);
  const loadable = await preflight({ modules: { overlay: 'loadable', br_netfilter: 'loadable', vxlan: 'builtin' } });
  assert.equal(check(loadable, 'module overlay').status, 'pass');
  assert.equal(check(loadable, 'module br_netfilter').status, 'warn');
  assert.match(check(loadable, 'module br_netfilter').fix!, /modprobe br_netfilter && echo br_netfilter >> \/etc\/modules-load\.d\/docker\.conf/);
  assert.equal(check(await preflight({ modules: { overlay: 'unknown', br_netfilter: 'loaded', vxlan: 'loaded' } }), 'module overlay').status, 'warn');
});

test('module states from the module tree, the kernel config and /proc', () => {
  const none: ModuleSources = { filesystems: 'nodev\tsysfs\n', present: new Set(), builtinList: undefined, depList: undefined, config: undefined };
  assert.equal(moduleState('overlay', none), 'unknown');
  assert.equal(moduleState('overlay', { ...none, filesystems: 'nodev\tsysfs\nnodev\toverlay\n' }), 'loaded');
  assert.equal(moduleState('vxlan', { ...none, present: new Set(['vxlan']) }), 'loaded');
  const tree = { builtinList: 'kernel/fs/overlayfs/overlay.ko\n', depList: 'kernel/net/bridge/br_netfilter.ko.xz: kernel/net/bridge/bridge.ko.xz\n' };
  assert.equal(moduleState('overlay', { ...none, ...tree }), 'builtin');
  assert.equal(moduleState('br_netfilter', { ...none, ...tree }), 'loadable');
  assert.equal(moduleState('vxlan', { ...none, ...tree }), 'missing');
  assert.equal(moduleState('vxlan', { ...none, config: 'CONFIG_VXLAN=y\n' }), 'builtin');
  assert.equal(moduleState('vxlan', { ...none, config: '# CONFIG_VXLAN is not set\n' }), 'missing');
  // A module in the config but no module tree on this root (a container): cannot tell.
  assert.equal(moduleState('vxlan', { ...none, config: 'CONFIG_VXLAN=m\n' }), 'unknown');
});

test('cgroups: v2 passes, v1 warns, none fails', async () => {
  assert.equal(check(await preflight({ cgroup: 'v2' }), 'cgroups').status, 'pass');
  const v1 = check(await preflight({ cgroup: 'v1' }), 'cgroups');
  assert.equal(v1.status, 'warn');
  assert.match(v1.detail, /deprecates/);
  assert.equal(check(await preflight({ cgroup: 'none' }), 'cgroups').reason, 'no-cgroups');
});

test('iptables: none fails unless the host config turns it off; the backend is named', async () => {
  const none = await preflight({ iptables: undefined });
  assert.equal(check(none, 'iptables').reason, 'no-iptables');
  assert.match(check(none, 'iptables').fix!, /iptables: false/);
  assert.equal(check(await preflight({ iptables: undefined }, { iptables: false }), 'iptables').status, 'pass');
  assert.match(check(await preflight({ iptables: { path: '/sbin/iptables', version: 'iptables v1.8.7 (legacy)' } }), 'iptables').detail, /legacy iptables/);
});

test('ports: another process fails naming it; the engine airlock manages passes, its VXLAN socket too', async () => {
  const ports = [
    { port: 7946, proto: 'udp', address: '0.0.0.0', inode: 5, holders: [{ pid: 4242, comm: 'serf' }], kernel: false },
    { port: 4789, proto: 'udp', address: '0.0.0.0', inode: 6, holders: [], kernel: true },
  ] as const satisfies HostFacts['ports'];
  const foreign = await preflight({ ports: [...ports] });
  assert.equal(foreign.ok, false);
  assert.equal(check(foreign, 'port 7946/udp').reason, 'port-in-use');
  assert.match(check(foreign, 'port 7946/udp').detail, /by serf \(pid 4242\)/);
  assert.match(check(foreign, 'port 4789/udp').detail, /the kernel \(a VXLAN device/);
  assert.match(check(foreign, 'port 4789/udp').fix!, /ip -d link show type vxlan/);
  assert.equal(check(foreign, 'port 7946/tcp').status, 'pass');
  const upgrade = await preflight({ ports: [...ports] }, { installed: { version: '26.1.5', form: 'static', pid: 4242 } });
  assert.equal(check(upgrade, 'port 7946/udp').status, 'pass');
  assert.match(check(upgrade, 'port 7946/udp').detail, /the engine airlock manages \(serf \(pid 4242\)\)/);
  assert.equal(check(upgrade, 'port 4789/udp').status, 'pass');
  const hidden = await preflight({ ports: [{ ...ports[1], kernel: false }] });
  assert.match(check(hidden, 'port 4789/udp').detail, /could not be found \(socket inode 6/);
});

test('disk space: short at the binaries or the data root fails; two needs on one file system add up', async () => {
  const space = healthy().space;
  const short = await preflight({ space: { ...space, binaries: { ...space.binaries, free: 100 * 1024 ** 2 } } });
  assert.equal(check(short, 'disk space').reason, 'disk-full');
  assert.match(check(short, 'disk space').fix!, /at \/opt/);
  // 1.5 GiB and 2 GiB free would each do alone, but not on one file system together.
  const shared = { binaries: { ...space.binaries, free: 2.2 * GiB, dev: 7 }, dataRoot: { ...space.dataRoot, free: 2.2 * GiB, dev: 7 } };
  assert.equal(check(await preflight({ space: shared }), 'disk space').status, 'fail');
  assert.equal(check(await preflight({ space: { ...shared, dataRoot: { ...shared.dataRoot, dev: 8 } } }), 'disk space').status, 'pass');
  assert.equal(check(await preflight({ space: shared }, { bytesNeeded: 0, engine: staticEngine({ files: [] }) }), 'disk space').status, 'fail');
});

test('platform and libc: another architecture or a newer glibc is refused as the bundle\'s fault (policy, 13)', async () => {
  const arm = await preflight({}, { engine: staticEngine({ platform: { os: 'linux', architecture: 'arm64' } }) });
  assert.equal(check(arm, 'platform').reason, 'engine-wrong-platform');
  assert.match(check(arm, 'platform').detail, /built for linux\/arm64; this host is linux\/amd64/);
  const err = preflightError(arm);
  assert.equal(err.exitCode, ExitCode.policy);
  assert.equal(err.reason, 'engine-wrong-platform');

  const newer = await preflight({ glibc: '2.36' }, { engine: staticEngine({ libc: { kind: 'glibc', minimum: '2.41' } }) });
  assert.equal(check(newer, 'libc').reason, 'engine-wrong-libc');
  assert.match(check(newer, 'libc').detail, /needs glibc 2\.41 or newer; the host has glibc 2\.36/);
  assert.equal(check(await preflight({ glibc: '2.41' }, { engine: staticEngine({ libc: { kind: 'glibc', minimum: '2.41' } }) }), 'libc').status, 'pass');
  assert.equal(check(await preflight({ glibc: '2.9' }, { engine: staticEngine({ libc: { kind: 'glibc', minimum: '2.10' } }) }), 'libc').status, 'fail');
  assert.equal(check(await preflight({ glibc: undefined, musl: true }, { engine: staticEngine({ libc: { kind: 'glibc', minimum: '2.28' } }) }), 'libc').status, 'fail');
  assert.equal(check(await preflight({}, { engine: staticEngine({ libc: { kind: 'musl' } }) }), 'libc').reason, 'engine-wrong-libc');
  assert.equal(check(await preflight({ glibc: undefined, musl: true }, { engine: staticEngine({ libc: { kind: 'musl' } }) }), 'libc').status, 'pass');
});

test('package forms: .deb needs dpkg and apt-get; .rpm is not installed yet', async () => {
  const noApt = await preflight({ packageTools: { dpkg: true, apt: false } }, { engine: debEngine('docker.io') });
  assert.equal(check(noApt, 'package manager').reason, 'no-package-manager');
  assert.match(check(noApt, 'package manager').detail, /no apt-get/);
  assert.equal(check(await preflight({}, { engine: debEngine('docker.io') }), 'package manager').status, 'pass');
  const rpm = await preflight({}, { engine: { ...debEngine('moby-engine'), form: 'rpm' } });
  assert.equal(check(rpm, 'package manager').reason, 'engine-form-unsupported');
  assert.equal(preflightError(rpm).exitCode, ExitCode.policy);
});

test('existing engine: a package conflicts with the static form; the same package is an upgrade, with its ports; another is a conflict', async () => {
  const hostWithDockerIo: Partial<HostFacts> = {
    packages: [
      { name: 'docker.io', version: '20.10.24+dfsg1-1', installed: true },
      { name: 'docker-ce', version: '', installed: false },
    ],
    dockerds: [{ path: '/usr/sbin/dockerd', realPath: '/usr/sbin/dockerd', package: 'docker.io', airlock: false }],
    dockerdPids: [900],
    ports: [{ port: 2377, proto: 'tcp', address: '::', inode: 9, holders: [{ pid: 900, comm: 'dockerd' }], kernel: false }],
  };
  const asStatic = await preflight(hostWithDockerIo);
  const existing = check(asStatic, 'existing engine');
  assert.equal(existing.reason, 'engine-conflict');
  assert.match(existing.detail, /package docker\.io 20\.10\.24\+dfsg1-1 is installed, and the bundle brings the static form/);
  assert.match(existing.fix!, /apt-get remove docker\.io/);
  assert.equal(check(asStatic, 'port 2377/tcp').status, 'fail');

  const upgrade = await preflight(hostWithDockerIo, { engine: debEngine('docker.io', 'containerd', 'runc') });
  assert.equal(upgrade.ok, true, formatPreflight(upgrade));
  assert.match(check(upgrade, 'existing engine').detail, /the bundle upgrades it to 26\.1\.5\+dfsg1/);
  assert.equal(check(upgrade, 'port 2377/tcp').status, 'pass');

  const other = await preflight(hostWithDockerIo, { engine: debEngine('docker-ce', 'containerd.io') });
  assert.equal(check(other, 'existing engine').reason, 'engine-conflict');
  assert.match(check(other, 'existing engine').detail, /the bundle brings docker-ce, containerd\.io/);

  const status = await preflight(hostWithDockerIo, { engine: undefined });
  assert.equal(check(status, 'existing engine').status, 'pass');
  assert.match(check(status, 'existing engine').detail, /docker\.io .*package-managed/);
  assert.equal(status.checks.some((c) => c.name === 'platform'), false);
});

test('existing engine: airlock\'s static engine is an upgrade for the static form and a conflict for packages; a snap conflicts; unknown and rootless warn', async () => {
  const airlock: Partial<HostFacts> = { airlockEngine: '26.1.5', dockerds: [{ path: '/usr/local/bin/dockerd', realPath: '/opt/airlock/engine/26.1.5/dockerd', airlock: true }] };
  assert.match(check(await preflight(airlock), 'existing engine').detail, /airlock's static engine 26\.1\.5 .*an upgrade/);
  assert.equal(check(await preflight(airlock), 'existing engine').status, 'pass');
  const debOverStatic = check(await preflight(airlock, { engine: debEngine('docker.io') }), 'existing engine');
  assert.equal(debOverStatic.reason, 'engine-conflict');
  assert.equal(check(await preflight({ snap: '/snap/bin/docker' }), 'existing engine').reason, 'engine-conflict');
  const stray = check(await preflight({ dockerds: [{ path: '/usr/local/bin/dockerd', realPath: '/usr/local/bin/dockerd', airlock: false }] }), 'existing engine');
  assert.equal(stray.status, 'warn');
  assert.match(stray.detail, /\/usr\/local\/bin\/dockerd: a dockerd no package and not airlock installed/);
  assert.equal(check(await preflight({ rootless: ['/run/user/1000/docker.sock'] }), 'existing engine').status, 'warn');
});

test('a host-side failure is preflight-failed (18), naming every failing check and its fix', async () => {
  const r = await preflight({ cgroup: 'none', iptables: undefined });
  const err = preflightError(r);
  assert.equal(err.exitCode, 18);
  assert.equal(err.exitCode, ExitCode.preflight);
  assert.equal(err.reason, 'preflight-failed');
  assert.match(err.message, /cgroups: no cgroup file system.*; iptables: no iptables/);
  assert.equal(err.subject, 'cgroups, iptables');
  assert.match(err.hint!, /mount -t cgroup2/);
  const text = formatPreflight(r);
  assert.match(text, /^FAIL {2}cgroups +no cgroup file system at \/sys\/fs\/cgroup$/m);
  assert.match(text, /^ {2}iptables: install the distribution's iptables package/m);
});

test('/proc/net lines and dpkg-query output parse', () => {
  const tcp = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:0949 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0',
  ].join('\n');
  assert.deepEqual(parseProcNet(tcp), [{ port: 2377, address: '127.0.0.1', state: '0A', inode: 31337 }]);
  assert.equal(decodeAddress('00000000000000000000000000000000'), '::');
  assert.equal(decodeAddress('00000000000000000000000001000000'), '::1');
  assert.deepEqual(parseDpkgQuery('containerd 1.6.20~ds1-1 install ok installed\ndocker-ce  unknown ok not-installed\nrunc 1.1.5 deinstall ok config-files\n'), [
    { name: 'containerd', version: '1.6.20~ds1-1', installed: true },
    { name: 'docker-ce', version: '', installed: false },
    { name: 'runc', version: '1.1.5', installed: false },
  ]);
});

// ---- This machine, real facts ----

test('on this machine: the report runs, and finds Debian\'s docker.io as a package-managed engine', async () => {
  const dpkg = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'docker.io'], { encoding: 'utf8' });
  assert.equal(dpkg.status, 0, 'this machine has Debian\'s docker.io installed');
  const facts = await readHostFacts({ binariesHome: '/opt/airlock/engine', dataRoot: '/var/lib/docker', loadModules: false });
  const dockerd = facts.dockerds.find((d) => d.package === 'docker.io');
  assert.ok(dockerd, `dockerds found: ${JSON.stringify(facts.dockerds)}`);
  assert.equal(dockerd.airlock, false);
  assert.match(facts.kernelRelease, /^\d+\.\d+/);
  assert.equal(facts.architecture, process.arch === 'x64' ? 'amd64' : process.arch);

  const status = await runPreflight();
  assert.equal(check(status, 'existing engine').status, 'pass');
  assert.match(check(status, 'existing engine').detail, new RegExp(`package docker\\.io ${dpkg.stdout.replace(/[+.]/g, '\\$&')} \\(package-managed\\)`));
  // The static form over a package-managed engine: refused, naming the package.
  const install = await runPreflight({ engine: staticEngine() });
  assert.equal(check(install, 'existing engine').reason, 'engine-conflict');
  assert.equal(install.ok, false);
  assert.equal(preflightError(install).reason, 'preflight-failed');
});

/** Starts a process in a new network namespace that binds 2377/tcp and 7946/udp; resolves once they are bound. */
async function portHolder(): Promise<{ pid: number; stop: () => void }> {
  const script = `
    const net = require('node:net'), dgram = require('node:dgram');
    const u = dgram.createSocket('udp4');
    u.bind(7946, '0.0.0.0', () => net.createServer().listen(2377, '0.0.0.0', () => console.log('bound')));`;
  // unshare execs node in place: the pid spawn returns is the holder's.
  const child = spawn('unshare', ['--net', '--', process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await Promise.race([once(child.stdout, 'data'), once(child, 'exit').then(() => assert.fail('the port holder ended'))])) as [Buffer];
  assert.equal(line.toString().trim(), 'bound');
  return { pid: child.pid!, stop: () => child.kill('SIGKILL') };
}

/** Runs the real preflight inside the holder's network namespace. */
function preflightIn(pid: number, opts: PreflightOptions): PreflightReport {
  const mod = new URL('../../src/engine/preflight.js', import.meta.url).href;
  const script = `const { runPreflight } = await import(${JSON.stringify(mod)}); console.log(JSON.stringify(await runPreflight(${JSON.stringify(opts)})));`;
  const r = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, '--', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as PreflightReport;
}

test('a real port conflict in a namespace of the test\'s own: fails naming the holder\'s pid; as the managed engine\'s pid it passes', async (t) => {
  const holder = await portHolder();
  t.after(holder.stop);
  const r = preflightIn(holder.pid, { engine: staticEngine() });
  // Node names its main thread (`MainThread`): the program is named beside it.
  const named = `${readFileSync(`/proc/${holder.pid}/comm`, 'utf8').trim()} \\(pid ${holder.pid}, ${realpathSync(process.execPath).replace(/\./g, '\\.')}\\)`;
  for (const port of ['port 7946/udp', 'port 2377/tcp']) {
    const c = check(r, port);
    assert.equal(c.status, 'fail');
    assert.equal(c.reason, 'port-in-use');
    assert.match(c.detail, new RegExp(`on 0\\.0\\.0\\.0 by ${named}`));
  }
  // A fresh namespace: nothing else is there, not even the machine's VXLAN socket.
  assert.equal(check(r, 'port 7946/tcp').status, 'pass');
  assert.equal(check(r, 'port 4789/udp').status, 'pass');
  assert.match(preflightError(r).message, new RegExp(`port 2377/tcp: in use on 0\\.0\\.0\\.0 by ${named}`));

  const own = preflightIn(holder.pid, { engine: staticEngine(), installed: { version: '28.5.2', form: 'static', pid: holder.pid } });
  assert.equal(check(own, 'port 7946/udp').status, 'pass');
  assert.equal(check(own, 'port 2377/tcp').status, 'pass');
});
