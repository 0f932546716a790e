// The binary package (issue 8): scripts/package builds the .deb and the tarball (with lintian),
// then scripts/package-test installs the .deb into a debootstrap minbase root and checks it
// there (docs/packaging.md). Both are real: the npm registry's Node.js runtime, the addon built
// for it, a Debian mirror for the root. The build's caches (/var/cache/airlock-pkg,
// /var/cache/airlock-test) make a repeat run take about a minute and a half.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { REPO } from '../helpers/fixtures.js';

const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const DEBVERSION = VERSION.replace('-', '~');
const PKG = join(REPO, 'dist/pkg');
const DEB = join(PKG, `airlock_${DEBVERSION}_amd64.deb`);
const TARBALL = join(PKG, `airlock-${VERSION}-linux-x64.tar.gz`);
const MAX_DEB_BYTES = 40 * 1000 * 1000;

interface Run {
  code: number | null;
  out: string;
  seconds: number;
}

/** Runs a script to its end, keeping its output (and echoing it when AIRLOCK_TEST_VERBOSE is set). */
function runScript(script: string, args: string[]): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(join(REPO, script), args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
    let out = '';
    const keep = (b: Buffer) => {
      out += b.toString();
      if (process.env.AIRLOCK_TEST_VERBOSE) process.stderr.write(b);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, seconds: Math.round((Date.now() - started) / 1000) }));
  });
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return r.stdout;
}

const notRoot = typeof process.getuid === 'function' && process.getuid() !== 0;

describe('package: scripts/package and the install test', { skip: notRoot && process.env.CI !== 'true' ? 'needs root (apt-get, debootstrap, chroot)' : false }, () => {
  let build: Run;
  let install: Run | undefined;

  before(async () => {
    build = await runScript('scripts/package', []);
    if (build.code === 0) install = await runScript('scripts/package-test', [DEB]);
  }, { timeout: 25 * 60 * 1000 });

  test('scripts/package builds the .deb and the tarball and reports their sizes', () => {
    assert.equal(build.code, 0, `scripts/package failed (exit ${build.code}):\n${build.out}`);
    assert.ok(existsSync(DEB), `${DEB} missing`);
    assert.ok(existsSync(TARBALL), `${TARBALL} missing`);
    const size = statSync(DEB).size;
    const reported = new RegExp(`^size: airlock_${DEBVERSION.replace(/[.~]/g, '\\$&')}_amd64\\.deb (\\d+) bytes`, 'm').exec(build.out);
    assert.ok(reported, `no size line for the .deb in:\n${build.out}`);
    assert.equal(Number(reported[1]), size);
    assert.ok(size <= MAX_DEB_BYTES, `the .deb is ${size} bytes, over ${MAX_DEB_BYTES}`);
    assert.match(build.out, new RegExp(`^size: airlock-${VERSION.replace(/\./g, '\\.')}-linux-x64\\.tar\\.gz \\d+ bytes`, 'm'));
    console.log(`scripts/package: ${build.seconds} s; .deb ${size} bytes, tarball ${statSync(TARBALL).size} bytes`);
  });

  test('the release check: the installed tree did the main job on a private dockerd before anything was packed', () => {
    assert.equal(build.code, 0, `scripts/package failed:\n${build.out}`);
    for (const step of [
      /ok: bundle apply --init-swarm smoke 1\.0\.0: image loaded, applied smoke 1\.0\.0 to stack smoke \(deployment #1\): smoke_app 1\/1/,
      /ok: bundle apply smoke 1\.1\.0: applied/,
      /ok: status shows smoke 1\.1\.0/,
      /ok: rollback smoke: back to 1\.0\.0/,
      /ok: history lists 3 deployments/,
    ]) {
      assert.match(build.out, step);
    }
    assert.ok(build.out.indexOf('ok: history lists') < build.out.indexOf('built /'), 'the smoke run comes before the package is built');
  });

  test('the .deb holds the launcher, the runtime, the bundle, the addon, the units and the config', () => {
    assert.equal(build.code, 0, 'scripts/package failed');
    const listing = sh('dpkg-deb', ['-c', DEB]);
    const paths = new Map(
      listing
        .trim()
        .split('\n')
        .map((l) => {
          const f = l.split(/\s+/);
          return [f.slice(5).join(' ').replace(/^\./, '').replace(/\/$/, ''), { mode: f[0]!, owner: f[1]! }] as const;
        }),
    );
    const want: [string, RegExp][] = [
      ['/usr/bin/airlock', /^-rwxr-xr-x$/],
      ['/usr/lib/airlock/node', /^-rwxr-xr-x$/],
      ['/usr/lib/airlock/airlock.js', /^-rw-r--r--$/],
      ['/usr/lib/airlock/better_sqlite3.node', /^-rw-r--r--$/],
      ['/usr/lib/airlock/package.json', /^-rw-r--r--$/],
      ['/usr/lib/systemd/system/airlock-agent.service', /^-rw-r--r--$/],
      ['/usr/lib/sysusers.d/airlock.conf', /^-rw-r--r--$/],
      ['/usr/lib/tmpfiles.d/airlock.conf', /^-rw-r--r--$/],
      ['/etc/airlock/agent.yaml', /^-rw-r--r--$/],
      ['/etc/airlock/trusted.d', /^drwxr-xr-x$/],
      ['/usr/share/doc/airlock/copyright', /^-rw-r--r--$/],
      ['/usr/share/man/man1/airlock.1.gz', /^-rw-r--r--$/],
    ];
    for (const [path, mode] of want) {
      const e = paths.get(path);
      assert.ok(e, `${path} is not in the .deb:\n${listing}`);
      assert.match(e.mode, mode, path);
      assert.equal(e.owner, 'root/root', path);
    }
    // The shipped files are the tree's own.
    const tmp = sh('mktemp', ['-d']).trim();
    try {
      sh('dpkg-deb', ['-x', DEB, tmp]);
      for (const [shipped, source] of [
        ['usr/lib/systemd/system/airlock-agent.service', 'systemd/airlock-agent.service'],
        ['usr/lib/sysusers.d/airlock.conf', 'systemd/airlock.sysusers'],
        ['usr/lib/tmpfiles.d/airlock.conf', 'systemd/airlock.tmpfiles'],
        ['etc/airlock/agent.yaml', 'systemd/agent.yaml'],
      ] as const) {
        assert.equal(readFileSync(join(tmp, shipped), 'utf8'), readFileSync(join(REPO, source), 'utf8'), `${shipped} differs from ${source}`);
      }
      // The SQLite addon is the very file this test suite loads, byte for byte.
      const sum = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
      assert.equal(sum(join(tmp, 'usr/lib/airlock/better_sqlite3.node')), sum(join(REPO, 'node_modules/better-sqlite3/prebuilds/linux-x64.node')));
    } finally {
      sh('rm', ['-rf', tmp]);
    }
  });

  test('the control data: conffiles, dependencies, maintainer scripts', () => {
    assert.equal(build.code, 0, 'scripts/package failed');
    const info = sh('dpkg-deb', ['-I', DEB]);
    assert.match(info, /^ Package: airlock$/m);
    assert.match(info, new RegExp(`^ Version: ${DEBVERSION.replace(/[.~]/g, '\\$&')}$`, 'm'));
    assert.match(info, /^ Architecture: amd64$/m);
    assert.match(info, /^ Depends: .*\blibc6 \(>= [\d.]+\).*\badduser\b/m);
    assert.match(info, /^ Recommends: docker\.io \| docker-ce$/m);
    for (const s of ['conffiles', 'postinst', 'prerm', 'postrm', 'md5sums']) assert.match(info, new RegExp(`^\\s+\\d+ bytes,\\s+\\d+ lines\\s+\\*?\\s*${s}\\b`, 'm'), `no ${s}`);
    assert.equal(sh('dpkg-deb', ['--ctrl-tarfile', DEB]).length > 0, true);
    const conffiles = sh('sh', ['-c', `dpkg-deb --ctrl-tarfile '${DEB}' | tar -xOf - ./conffiles`]);
    assert.equal(conffiles.trim(), '/etc/airlock/agent.yaml');
  });

  test('lintian: no errors, and every warning it keeps is explained in docs/packaging.md', () => {
    assert.equal(build.code, 0, 'scripts/package failed');
    const report = readFileSync(join(PKG, 'lintian-amd64.txt'), 'utf8');
    assert.doesNotMatch(report, /^E: /m, report);
    const docs = readFileSync(join(REPO, 'docs/packaging.md'), 'utf8');
    for (const m of report.matchAll(/^W: airlock: (\S+)/gm)) assert.ok(docs.includes(`\`${m[1]}\``), `lintian warning ${m[1]} is not in docs/packaging.md`);
  });

  test('the tarball holds the same files and install.sh', () => {
    assert.equal(build.code, 0, 'scripts/package failed');
    const names = sh('tar', ['-tzf', TARBALL]).trim().split('\n');
    const top = `airlock-${VERSION}-linux-x64/`;
    for (const p of ['install.sh', 'usr/bin/airlock', 'usr/lib/airlock/node', 'usr/lib/airlock/airlock.js', 'usr/lib/airlock/better_sqlite3.node', 'usr/lib/systemd/system/airlock-agent.service', 'etc/airlock/agent.yaml']) {
      assert.ok(names.includes(top + p), `${top + p} is not in the tarball`);
    }
  });

  test('scripts/package-test: install, use, remove and purge in a debootstrap minbase root', (t) => {
    assert.equal(build.code, 0, 'scripts/package failed');
    assert.ok(install, 'the install test did not run');
    // Under CI every test must really run: no mirror is a failure there.
    if (install.code === 77 && process.env.CI !== 'true') return t.skip(`no Debian mirror reachable: ${install.out.split('\n').filter((l) => l.includes('SKIP')).join(' ')}`);
    assert.equal(install.code, 0, `scripts/package-test failed (exit ${install.code}):\n${install.out}`);
    for (const check of [
      /ok: airlock --version: /,
      /ok: airlock --help lists/,
      /ok: airlock key generate/,
      /ok: airlock bundle verify \(bundle built outside\): valid/,
      /ok: airlock agent --check-config --config \/etc\/airlock\/agent\.yaml: ok/,
      /ok: systemd-analyze verify --root=ROOT airlock-agent\.service: clean/,
      /ok: user airlock \(systemd-sysusers.*groups: .*\bdocker\b/,
      /ok: bundle apply --init-swarm inside 1\.0\.0 as user airlock: image t\/web:1 loaded, .*inside_web 2\/2/,
      /ok: bundle apply inside 1\.1\.0 \(upgrade\); status: inside inside 1\.1\.0/,
      /ok: rollback inside: back to 1\.0\.0; history lists 3 deployments/,
      /ok: airlock agent: inside-1\.2\.0\.airlock from its inbox imported and deployed/,
      /ok: systemd-nspawn --boot: systemd \d+/,
      /ok: airlock-agent\.service \(user airlock, NoNewPrivs, seccomp filter, no capabilities\) took boot-1\.0\.0\.airlock from the inbox/,
      /ok: systemctl stop airlock-agent: .*Result=success/,
      /ok: apt-get remove \(systemd\): .*kept/,
      /ok: apt-get purge \(systemd\): .*gone; it printed: airlock: purge: removing \/var\/lib\/airlock/,
    ]) {
      assert.match(install.out, check);
    }
    console.log(`scripts/package-test: ${install.seconds} s`);
  });
});
