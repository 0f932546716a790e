import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isAirlockError } from '../../src/errors/index.js';
import { daemonConfig, writeDaemonConfig } from '../../src/engine/daemon-config.js';
import { ensureDockerGroup } from '../../src/engine/docker-group.js';
import { engineHostPathsUnder } from '../../src/engine/host-paths.js';
import { writeUnits } from '../../src/engine/units.js';
import { tempDir } from '../helpers/fixtures.js';

test("the daemon config: rotated json-file logs, live-restore off, the data root, the host's own keys over the defaults", () => {
  assert.deepEqual(daemonConfig({ dataRoot: '/srv/docker', daemon: { bip: '10.9.0.1/24', 'log-opts': { 'max-size': '50m' } } }), {
    'log-driver': 'json-file',
    'log-opts': { 'max-size': '50m' },
    bip: '10.9.0.1/24',
    'live-restore': false,
    'data-root': '/srv/docker',
  });
  assert.deepEqual(daemonConfig(), { 'log-driver': 'json-file', 'log-opts': { 'max-size': '10m', 'max-file': '3' }, 'live-restore': false });
});

test('a host config that turns live-restore on is refused, naming the key; one that sets it false is taken', () => {
  assert.throws(
    () => daemonConfig({ daemon: { 'live-restore': true } }),
    (e: unknown) => isAirlockError(e) && e.reason === 'engine-live-restore' && e.exitCode === 3 && e.subject === 'engine.daemon.live-restore' && /swarm/.test(e.message),
  );
  assert.equal(daemonConfig({ daemon: { 'live-restore': false } })['live-restore'], false);
  assert.throws(() => daemonConfig({ dataRoot: '/a', daemon: { 'data-root': '/b' } }), (e: unknown) => isAirlockError(e) && e.subject === 'engine.daemon.data-root');
  assert.throws(() => daemonConfig({ daemon: { hosts: ['tcp://0.0.0.0:2375'] } }), (e: unknown) => isAirlockError(e) && e.exitCode === 3 && e.subject === 'engine.daemon.hosts');
});

test('daemon.json is written canonically once; a second write changes nothing; a changed config rewrites it', async () => {
  const t = await tempDir();
  try {
    const paths = engineHostPathsUnder(t.dir);
    assert.equal(await writeDaemonConfig(paths, daemonConfig({ dataRoot: '/d', daemon: { iptables: false } })), true);
    const text = await readFile(paths.daemonJson, 'utf8');
    assert.equal(text, '{\n  "data-root": "/d",\n  "iptables": false,\n  "live-restore": false,\n  "log-driver": "json-file",\n  "log-opts": {\n    "max-file": "3",\n    "max-size": "10m"\n  }\n}\n');
    const mtime = (await stat(paths.daemonJson)).mtimeMs;
    assert.equal(await writeDaemonConfig(paths, daemonConfig({ daemon: { iptables: false }, dataRoot: '/d' })), false);
    assert.equal((await stat(paths.daemonJson)).mtimeMs, mtime);
    // airlock's own earlier file is rewritten, not kept aside.
    assert.equal(await writeDaemonConfig(paths, daemonConfig({ dataRoot: '/e' }), { onSavedAside: (p) => assert.fail(`kept aside ${p}`) }), true);
    assert.deepEqual((await readdir(dirname(paths.daemonJson))).sort(), ['daemon.json', 'daemon.json.airlock']);
  } finally {
    await t.cleanup();
  }
});

test('a daemon.json someone else wrote is kept as daemon.json.airlock-saved-<time>, and the write says where', async () => {
  const t = await tempDir();
  try {
    const paths = engineHostPathsUnder(t.dir);
    await mkdir(dirname(paths.daemonJson), { recursive: true });
    await writeFile(paths.daemonJson, '{"debug": true}\n');
    let savedAs = '';
    assert.equal(await writeDaemonConfig(paths, daemonConfig(), { onSavedAside: (p) => (savedAs = p) }), true);
    assert.match(savedAs, /daemon\.json\.airlock-saved-\d{4}-/);
    assert.equal(await readFile(savedAs, 'utf8'), '{"debug": true}\n');
    assert.equal(JSON.parse(await readFile(paths.daemonJson, 'utf8'))['live-restore'], false);
  } finally {
    await t.cleanup();
  }
});

test('the static units run the engine from the current link with the offline variable; a second write changes nothing', async () => {
  const t = await tempDir();
  try {
    const paths = engineHostPathsUnder('/');
    const under = { ...paths, unitDir: join(t.dir, 'units') };
    assert.equal(await writeUnits('static', under), true);
    assert.deepEqual((await readdir(under.unitDir)).sort(), ['containerd.service', 'docker.service', 'docker.socket']);
    const docker = await readFile(join(under.unitDir, 'docker.service'), 'utf8');
    assert.match(docker, /^ExecStart=\/opt\/airlock\/engine\/current\/dockerd -H fd:\/\/ --containerd=\/run\/containerd\/containerd.sock --config-file=\/etc\/docker\/daemon.json$/m);
    assert.match(docker, /^Environment=PATH=\/opt\/airlock\/engine\/current:\/usr\/local\/sbin:/m);
    assert.match(docker, /^Environment=DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1$/m);
    assert.match(docker, /^Delegate=yes$/m);
    assert.match(docker, /^KillMode=process$/m);
    assert.match(await readFile(join(under.unitDir, 'containerd.service'), 'utf8'), /^ExecStart=\/opt\/airlock\/engine\/current\/containerd$/m);
    assert.match(await readFile(join(under.unitDir, 'docker.socket'), 'utf8'), /^ListenStream=\/run\/docker.sock$/m);
    const mtime = (await stat(join(under.unitDir, 'docker.service'))).mtimeMs;
    assert.equal(await writeUnits('static', under), false);
    assert.equal((await stat(join(under.unitDir, 'docker.service'))).mtimeMs, mtime);

    assert.equal(await writeUnits('deb', under), true);
    assert.equal(await readFile(join(under.unitDir, 'docker.service.d/airlock.conf'), 'utf8'), `# Written by airlock (docs/engine-install.md); airlock rewrites it when it installs the engine.\n[Service]\nEnvironment=DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1\n`);
    assert.equal(await writeUnits('deb', under), false);
  } finally {
    await t.cleanup();
  }
});

test('the docker group is made once, as a system group, by the real groupadd', async () => {
  const t = await tempDir();
  try {
    // groupadd --prefix works on a copy of this machine's account files, without the docker group.
    await mkdir(join(t.dir, 'etc'));
    for (const f of ['passwd', 'shadow', 'login.defs']) await copyFile(join('/etc', f), join(t.dir, 'etc', f));
    const strip = (text: string) => text.split('\n').filter((l) => !l.startsWith('docker:')).join('\n');
    await writeFile(join(t.dir, 'etc/group'), strip(await readFile('/etc/group', 'utf8')));
    await writeFile(join(t.dir, 'etc/gshadow'), strip(await readFile('/etc/gshadow', 'utf8')), { mode: 0o640 });
    assert.equal(await ensureDockerGroup(t.dir), true);
    const line = (await readFile(join(t.dir, 'etc/group'), 'utf8')).split('\n').find((l) => l.startsWith('docker:'));
    assert.ok(line, 'a docker group');
    assert.ok(Number(line.split(':')[2]) < 1000, `a system gid: ${line}`);
    assert.equal(await ensureDockerGroup(t.dir), false);
  } finally {
    await t.cleanup();
  }
});

test("apt's unmet-dependency report is read into each missing package and who needs it", async () => {
  const { parseUnmetDependencies } = await import('../../src/engine/packages.js');
  const report = [
    'Reading package lists...',
    'Some packages could not be installed. This may mean that you have',
    'The following packages have unmet dependencies:',
    ' docker.io : Depends: containerd (>= 1.4~) but it is not installable',
    '             Depends: runc (>= 1.1.0) but it is not going to be installed',
    ' tini : PreDepends: libc6 (>= 2.38) but 2.36-9 is to be installed',
    'E: Unable to correct problems, you have held broken packages.',
  ].join('\n');
  assert.deepEqual(parseUnmetDependencies(report), [
    { package: 'docker.io', needs: 'containerd (>= 1.4~)', why: 'it is not installable' },
    { package: 'docker.io', needs: 'runc (>= 1.1.0)', why: 'it is not going to be installed' },
    { package: 'tini', needs: 'libc6 (>= 2.38)', why: '2.36-9 is to be installed' },
  ]);
  assert.deepEqual(parseUnmetDependencies('E: Unable to locate package nope\n'), []);
});

test('a package file whose name is not a plain .deb file name is refused before apt is asked', async () => {
  const { checkPackages } = await import('../../src/engine/packages.js');
  for (const name of ['../docker.io_26_amd64.deb', 'docker.io_26_amd64.rpm', '.hidden.deb']) {
    await assert.rejects(checkPackages([{ path: '/nonexistent/blob', name }]), (e: unknown) => isAirlockError(e) && e.reason === 'bad-package-name' && e.subject === name);
  }
});
