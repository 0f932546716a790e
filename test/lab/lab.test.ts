/**
 * scripts/lab and its test helper: hosts with their own daemons, their own
 * /var/run/docker.sock, /var/lib/airlock and /etc/airlock, reachable over SSH
 * from the jump box (this process) and from each other; `down` leaves
 * nothing behind, and `up` clears the leftovers of a crashed lab.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from 'ssh2';
import YAML from 'yaml';
import { Docker, asSocketLike, type Transport } from '../../src/docker/index.js';
import { type Lab, type LabHost, labScript, run, sshExec, startLab } from '../helpers/lab.js';

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Processes whose command line names the lab folder (dockerd, containerd, sshd, holders). */
function processesNaming(dir: string): string[] {
  const found: string[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    if (cmd.includes(dir) && alive(Number(p))) found.push(`${p}: ${cmd}`);
  }
  return found;
}

/** The remote /var/run/docker.sock through the SSH connection, as airlock's SSH transport does it. */
function forwardedSocket(c: Client): Transport {
  return () =>
    new Promise((resolve, reject) =>
      c.openssh_forwardOutStreamLocal('/var/run/docker.sock', (err, stream) =>
        err ? reject(err) : resolve(asSocketLike(stream)),
      ),
    );
}

async function sftpWrite(c: Client, path: string, data: string): Promise<void> {
  const sftp = await new Promise<import('ssh2').SFTPWrapper>((resolve, reject) =>
    c.sftp((err, s) => (err ? reject(err) : resolve(s))),
  );
  try {
    await new Promise<void>((resolve, reject) => sftp.writeFile(path, data, (err) => (err ? reject(err) : resolve())));
  } finally {
    sftp.end();
  }
}

async function netnsNames(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

async function linkExists(name: string): Promise<boolean> {
  return (await run(['ip', 'link', 'show', 'dev', name], { allowFail: true })).code === 0;
}

// Short: unix socket paths below the lab folder must stay under 108 bytes.
const base = await mkdtemp('/tmp/airlock-lab-test-');
after(() => rm(base, { recursive: true, force: true }));

describe('scripts/lab: a multi-host lab', { timeout: 150_000 }, () => {
  const dir = join(base, 'lab');
  let lab: Lab;
  let h1: LabHost;
  let h2: LabHost;
  const ids = new Map<string, string>();

  before(async () => {
    lab = await startLab(dir, 2);
    [h1, h2] = lab.hosts as [LabHost, LabHost];
  });

  after(async () => {
    await lab?.stop();
  });

  test('writes the inventory and lab.json', async () => {
    assert.equal(lab.hosts.length, 2);
    assert.match(lab.subnet, /^10\.99\.\d{1,3}\.0\/24$/);
    const net = lab.subnet.replace(/\.0\/24$/, '');
    const inv = YAML.parse(await readFile(lab.inventoryFile, 'utf8'));
    assert.deepEqual(inv.defaults, { user: 'root', port: 22, key: lab.keyFile, knownHosts: lab.knownHostsFile });
    assert.deepEqual(inv.hosts, {
      h1: { address: `${net}.11`, roles: ['manager'] },
      h2: { address: `${net}.12`, roles: ['worker'], labels: { zone: 'b' } },
    });
    assert.equal(h1.address, `${net}.11`);
    assert.equal(h2.netns, `airlock-${lab.name}-h2`);
    assert.equal(h1.dockerSocket, join(dir, 'h1/run/docker.sock'));
    assert.equal(h2.stateDir, join(dir, 'h2/state'));
    assert.equal((await stat(lab.keyFile)).mode & 0o077, 0, 'the client key is private');
  });

  test('each host has its own daemon behind its own /var/run/docker.sock', async () => {
    for (const h of lab.hosts) {
      const info = await lab.docker(h).system.info();
      assert.equal(info.Name, h.name, 'the daemon runs under the host name');
      assert.equal(info.DockerRootDir, h.dataRoot);
      ids.set(h.name, info.ID);
      // Inside the host, /var/run/docker.sock is this very socket.
      const inside = (await lab.exec(h, ['stat', '-Lc', '%d:%i', '/var/run/docker.sock'])).stdout.trim();
      const s = await stat(h.dockerSocket);
      assert.equal(inside, `${s.dev}:${s.ino}`);
      assert.equal((await lab.exec(h, ['hostname'])).stdout.trim(), h.name);
    }
    assert.notEqual(ids.get('h1'), ids.get('h2'), 'two daemons, two engine IDs');
    if (existsSync('/var/run/docker.sock')) {
      const machine = new Docker({ retry: false });
      try {
        const info = await machine.system.info().catch(() => undefined);
        if (info) assert.ok(![...ids.values()].includes(info.ID), "no host talks to the machine's own daemon");
      } finally {
        await machine.close();
      }
    }
    // /var/lib/airlock and /etc/airlock are the host's own folders.
    await writeFile(join(h1.stateDir, 'marker'), 'state of h1\n');
    await writeFile(join(h1.etcDir, 'agent.yaml'), 'inbox: /srv/inbox\n');
    assert.equal((await lab.exec(h1, ['cat', '/var/lib/airlock/marker'])).stdout, 'state of h1\n');
    assert.equal((await lab.exec(h1, ['cat', '/etc/airlock/agent.yaml'])).stdout, 'inbox: /srv/inbox\n');
    assert.equal((await lab.exec(h2, ['ls', '-A', '/var/lib/airlock', '/etc/airlock'])).stdout.includes('marker'), false);
  });

  test('ssh as root with the lab key: host key checked, sftp lands in the host, docker socket forwarded', async () => {
    for (const h of lab.hosts) {
      const c = await lab.ssh(h);
      try {
        assert.equal((await sshExec(c, 'cat /etc/hostname')).trim(), h.name);
        await sftpWrite(c, '/var/lib/airlock/pushed', `to ${h.name}\n`);
        assert.equal(await readFile(join(h.stateDir, 'pushed'), 'utf8'), `to ${h.name}\n`);
        assert.match(await sshExec(c, 'ls /var/lib/airlock'), /pushed/);

        const remote = new Docker({ transport: forwardedSocket(c), endpoint: `ssh://root@${h.address}`, retry: false });
        try {
          await remote.system.ping();
          assert.equal((await remote.system.info()).ID, ids.get(h.name), "the forwarded socket is the host's daemon");
        } finally {
          await remote.close();
        }
      } finally {
        c.end();
      }
    }
    // Each host has its own host key: h1's key does not pass for h2.
    const { Client: SshClient } = await import('ssh2');
    const h1Key = lab.sshConfig(h1).hostVerifier as (k: Buffer) => boolean;
    const wrong = { ...lab.sshConfig(h2), hostVerifier: (k: Buffer) => h1Key(k) };
    await assert.rejects(
      new Promise((resolve, reject) => {
        const c = new SshClient();
        c.once('ready', () => {
          c.end();
          resolve(undefined);
        });
        c.once('error', reject);
        c.connect(wrong);
      }),
    );
  });

  test('the hosts reach each other: h2 joins the swarm h1 starts', async () => {
    const d1 = lab.docker(h1);
    const d2 = lab.docker(h2);
    await d1.swarm.init({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: h1.address });
    const tokens = await d1.swarm.joinTokens();
    await d2.swarm.join({
      ListenAddr: '0.0.0.0:2377',
      AdvertiseAddr: h2.address,
      RemoteAddrs: [`${h1.address}:2377`],
      JoinToken: tokens.Worker,
    });
    let nodes = await d1.nodes.list();
    for (let i = 0; i < 60 && !(nodes.length === 2 && nodes.every((n) => n.Status.State === 'ready')); i++) {
      await sleep(500);
      nodes = await d1.nodes.list();
    }
    assert.deepEqual(
      nodes.map((n) => [n.Description?.Hostname, n.Status.State, n.Status.Addr]).sort(),
      [
        ['h1', 'ready', h1.address],
        ['h2', 'ready', h2.address],
      ],
    );
    assert.equal((await d2.system.info()).Swarm.NodeAddr, h2.address);
  });

  test('down stops and removes everything; a second down succeeds', async () => {
    const hostPids = lab.hosts.flatMap((h) => Object.values(h.pids));
    assert.ok(hostPids.every(alive), 'every host process the lab recorded runs before down');
    // The namespace also holds short-lived children (dockerd's iptables calls): keep the ones still there.
    const netnsPids = (await run(['ip', 'netns', 'pids', h1.netns])).stdout.split('\n').filter(Boolean).map(Number).filter(alive);
    const pids = [...hostPids, ...netnsPids];
    assert.ok(pids.length >= 7, `holder, dockerd, containerd, sshd of h1 and more: ${pids}`);

    await lab.stop();

    assert.deepEqual(pids.filter(alive), [], 'no process of the lab is left');
    assert.deepEqual(processesNaming(dir), []);
    assert.deepEqual((await netnsNames()).filter((n) => n.startsWith(`airlock-${lab.name}-`)), []);
    assert.equal(await linkExists(`alk-${lab.name}`), false, 'the uplink is gone');
    assert.deepEqual(
      readFileSync('/proc/self/mounts', 'utf8')
        .split('\n')
        .filter((l) => l.includes(dir)),
      [],
    );
    assert.equal(existsSync(dir), false, 'the lab folder is removed');

    const again = await labScript(['down', '--dir', dir]);
    assert.equal(again.code, 0);
  });
});

describe('scripts/lab up over the leftovers of a crashed lab', { timeout: 120_000 }, () => {
  const dir = join(base, 'crashed');
  let lab: Lab | undefined;

  after(async () => {
    await lab?.stop();
  });

  test('kill -9 the hosts, then up again in the same folder', async () => {
    const first = await startLab(dir, 1);
    lab = first; // taken down by the after hook should an assertion fail
    const h = first.hosts[0]!;
    const before = (await run(['ip', 'netns', 'pids', h.netns])).stdout.split('\n').filter(Boolean).map(Number);
    assert.ok(before.length >= 4, `holder, dockerd, containerd, sshd: ${before}`);
    for (const pid of [h.pids.holder, h.pids.dockerd, h.pids.sshd]) process.kill(pid, 'SIGKILL');
    await writeFile(join(h.stateDir, 'old'), 'from the crashed lab\n');

    lab = await startLab(dir, 1);
    const again = lab.hosts[0]!;
    assert.equal(again.netns, h.netns);
    assert.notEqual(again.pids.dockerd, h.pids.dockerd);
    assert.deepEqual(before.filter(alive), [], 'nothing of the crashed lab runs on');
    assert.equal(existsSync(join(again.stateDir, 'old')), false, 'the new lab starts from empty folders');
    await lab.docker(again).system.ping();
    assert.equal((await lab.exec(again, ['hostname'])).stdout.trim(), 'h1');
    await lab.stop();
    assert.equal(existsSync(dir), false);
    lab = undefined;
  });
});
