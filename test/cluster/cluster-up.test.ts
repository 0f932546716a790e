/**
 * `airlock cluster up` and `cluster status` on a real 3-host lab (scripts/lab):
 * each host has its own dockerd behind its own /var/run/docker.sock and its
 * own sshd; the test process is the jump box and runs the real CLI.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SwarmNode } from '../../src/docker/index.js';
import type { AirlockError } from '../../src/errors/index.js';
import { loadInventory } from '../../src/remote/inventory.js';
import { parseKnownHosts } from '../../src/remote/known-hosts.js';
import { connectHost } from '../../src/remote/ssh.js';
import { CLI, runCli } from '../helpers/fixtures.js';
import { type Lab, run, startLab } from '../helpers/lab.js';

// Short: unix socket paths below the lab folder must stay under 108 bytes.
const base = await mkdtemp('/tmp/airlock-lab-cu-');

interface UpJson {
  ok: boolean;
  manager: string | null;
  clusterId: string | null;
  hosts: { host: string; address: string; role: string; action: string; engineVersion: string | null; changes: string[]; error?: { reason: string; message: string; exitCode: number } }[];
  unlisted?: { nodeId: string; action: string }[];
}

describe('cluster up on a 3-host lab', { timeout: 170_000 }, () => {
  let lab: Lab;
  let tokens: string[] = [];

  const nodes = async (): Promise<SwarmNode[]> => (await lab.docker('h1').nodes.list()).sort((a, b) => (a.Description?.Hostname ?? '').localeCompare(b.Description?.Hostname ?? ''));
  const byName = (list: SwarmNode[], name: string) => list.find((n) => n.Description?.Hostname === name);
  const up = async (inventory: string, ...extra: string[]) => {
    const r = await runCli(['cluster', 'up', '--inventory', inventory, '--json', ...extra]);
    for (const t of tokens) assert.ok(!r.stdout.includes(t) && !r.stderr.includes(t), 'a join token was printed');
    return { ...r, json: JSON.parse(r.stdout) as UpJson };
  };
  const actions = (j: UpJson) => Object.fromEntries(j.hosts.map((h) => [h.host, h.action]));

  before(async () => {
    lab = await startLab(join(base, 'lab'), 3);
  });
  after(async () => {
    await lab?.stop();
    await rm(base, { recursive: true, force: true });
  });

  test("the Docker API over SSH is the host's own engine, through its unix socket; no engine TCP port", async () => {
    const inv = await loadInventory(lab.inventoryFile);
    for (const name of ['h1', 'h2']) {
      const host = inv.hosts.find((h) => h.name === name)!;
      const s = await connectHost(host);
      try {
        assert.equal(s.endpoint, `ssh://root@${host.address}`);
        const remote = await s.docker().system.info();
        const local = await lab.docker(name).system.info();
        assert.equal(remote.ID, local.ID, 'same engine');
        assert.equal(remote.Name, name);
        const r = await s.exec('hostname; cat; echo oops >&2; exit 3', { input: 'from stdin\n' });
        assert.deepEqual(r, { code: 3, stdout: `${name}\nfrom stdin\n`, stderr: 'oops\n' });
        await assert.rejects(s.exec('sleep 30', { timeoutMs: 300 }), (e: AirlockError) => e.reason === 'timeout' && e.exitCode === 17 && e.message.startsWith(`${name} (`));
      } finally {
        await s.close();
      }
      // dockerd serves its API on a unix socket only (the host's /var/run/docker.sock, or the chroot
      // engine's own that it links to), and listens on no TCP port at all before the swarm.
      const pid = lab.host(name).pids.dockerd;
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      const hosts = argv.filter((a) => /^(-H|--host|tcp:|unix:)/.test(a));
      assert.equal(hosts.length, 2, hosts.join(' '));
      assert.equal(hosts[0], '-H');
      assert.match(hosts[1]!, /^unix:\/\//);
      const inside = (await lab.exec(name, ['stat', '-Lc', '%d:%i', '/var/run/docker.sock'])).stdout.trim();
      const served = (await lab.exec(name, ['stat', '-Lc', '%d:%i', hosts[1]!.slice('unix://'.length)])).stdout.trim();
      assert.equal(inside, served, "the host's /var/run/docker.sock is the socket dockerd serves");
      const listening = (await lab.exec(name, ['ss', '-Hltnp'])).stdout;
      assert.ok(!/dockerd/.test(listening), `dockerd listens on TCP:\n${listening}`);
    }
  });

  test('strict host-key checking refuses unknown hosts (exit 17, naming each), and changes nothing', async () => {
    const kh = join(base, 'empty_known_hosts');
    await writeFile(kh, '');
    const inventory = join(base, 'strict.yml');
    await writeFile(inventory, (await readFile(lab.inventoryFile, 'utf8')).replace(/knownHosts: .*/, `knownHosts: ${kh}`));
    const r = await runCli(['cluster', 'up', '--inventory', inventory]);
    assert.equal(r.code, 17, r.stdout + r.stderr);
    for (const h of lab.hosts) {
      assert.match(r.stdout, new RegExp(`^${h.name}\\s+${h.address.replace(/\./g, '\\.')}\\s+\\S+\\s+-\\s+error\\s+unknown-host-key$`, 'm'));
      assert.match(r.stdout, new RegExp(`${h.name} \\(${h.address.replace(/\./g, '\\.')}\\): unknown host key: ${kh} has no key for ${h.address.replace(/\./g, '\\.')}`));
    }
    assert.match(r.stdout, /--accept-new/);
    assert.equal(await readFile(kh, 'utf8'), '', 'nothing written without --accept-new');
    for (const h of lab.hosts) assert.equal((await lab.docker(h).system.info()).Swarm.LocalNodeState, 'inactive');

    // First contact with --accept-new: the keys are written, and the swarm is made.
    const first = await up(inventory, '--accept-new');
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const written = parseKnownHosts(await readFile(kh, 'utf8'));
    const labKeys = parseKnownHosts(await readFile(lab.knownHostsFile, 'utf8'));
    assert.deepEqual(
      written.map((e) => [e.hosts, e.type, e.key.toString('base64')]).sort(),
      labKeys.map((e) => [e.hosts, e.type, e.key.toString('base64')]).sort(),
      'the keys the hosts really have',
    );
    assert.deepEqual(actions(first.json), { h1: 'initialised', h2: 'joined', h3: 'joined' });
    assert.equal(first.json.manager, 'h1');
    const h2 = first.json.hosts.find((h) => h.host === 'h2')!;
    assert.deepEqual(h2.changes, [`joined as worker through ${lab.host('h1').address}:2377 (advertise ${lab.host('h2').address})`, 'label zone=b']);
  });

  test('1 manager and 2 workers with the inventory labels, advertising their inventory addresses', async () => {
    const swarm = await lab.docker('h1').swarm.inspect();
    tokens = [swarm.JoinTokens.Worker, swarm.JoinTokens.Manager];
    const list = await nodes();
    assert.deepEqual(
      list.map((n) => [n.Description?.Hostname, n.Spec.Role, n.Status.State, n.Spec.Labels]),
      [
        ['h1', 'manager', 'ready', {}],
        ['h2', 'worker', 'ready', { zone: 'b', 'io.airlock.labels': 'zone' }],
        ['h3', 'worker', 'ready', { zone: 'c', 'io.airlock.labels': 'zone' }],
      ],
    );
    assert.equal(byName(list, 'h1')?.ManagerStatus?.Addr, `${lab.host('h1').address}:2377`);
    for (const h of ['h2', 'h3']) assert.equal(byName(list, h)?.Status.Addr, lab.host(h).address);
    for (const h of lab.hosts) assert.equal((await lab.docker(h).system.info()).Swarm.Cluster?.ID ?? swarm.ID, swarm.ID);
    // The swarm's own ports are all dockerd listens on: its API stays on the unix socket.
    const ports = (await lab.exec('h1', ['ss', '-Hltnp'])).stdout
      .split('\n')
      .filter((l) => l.includes('"dockerd"'))
      .map((l) => l.trim().split(/\s+/)[3]!.replace(/^.*:/, ''));
    assert.deepEqual([...new Set(ports)].sort(), ['2377', '7946']);
  });

  test('a second run reports every host unchanged and changes nothing', async () => {
    const before = (await nodes()).map((n) => [n.ID, n.Version.Index]);
    const r = await up(lab.inventoryFile);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(actions(r.json), { h1: 'unchanged', h2: 'unchanged', h3: 'unchanged' });
    assert.deepEqual(r.json.hosts.map((h) => h.changes), [[], [], []]);
    assert.deepEqual((await nodes()).map((n) => [n.ID, n.Version.Index]), before, 'no node was updated');
    const text = await runCli(['cluster', 'up', '--inventory', lab.inventoryFile]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /^h2\s+\S+\s+worker\s+\S+\s+unchanged\s+-$/m);
    assert.match(text.stdout, /0 changed, 3 unchanged, 0 failed/);
  });

  test('cluster status lists the nodes with roles, availability, labels and engine versions', async () => {
    const r = await runCli(['cluster', 'status', '--inventory', lab.inventoryFile, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { manager: string; clusterId: string; nodes: Record<string, unknown>[]; notInSwarm: unknown[]; errors: unknown[] };
    const version = (await lab.docker('h1').system.version()).Version;
    assert.equal(s.manager, 'h1');
    assert.equal(s.clusterId, (await lab.docker('h1').swarm.inspect()).ID);
    assert.deepEqual(
      s.nodes.map((n) => [n.host, n.hostname, n.address, n.role, n.availability, n.state, n.labels, n.engineVersion, n.managerReachability ?? null, n.leader]),
      [
        ['h1', 'h1', lab.host('h1').address, 'manager', 'active', 'ready', {}, version, 'reachable', true],
        ['h2', 'h2', lab.host('h2').address, 'worker', 'active', 'ready', { zone: 'b', 'io.airlock.labels': 'zone' }, version, null, false],
        ['h3', 'h3', lab.host('h3').address, 'worker', 'active', 'ready', { zone: 'c', 'io.airlock.labels': 'zone' }, version, null, false],
      ],
    );
    assert.deepEqual(s.notInSwarm, []);
    assert.deepEqual(s.errors, []);
    const text = await runCli(['cluster', 'status', '--inventory', lab.inventoryFile]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, new RegExp(`^h3\\s+h3\\s+${lab.host('h3').address.replace(/\./g, '\\.')}\\s+worker\\s+active\\s+ready\\s+-\\s+\\S+\\s+io\\.airlock\\.labels=zone,zone=c$`, 'm'));
    assert.match(text.stdout, /^h1\s+h1\s+\S+\s+manager\s+active\s+ready\s+leader\s/m);
  });

  test('labels: the inventory wins for the keys it names; other labels stay, those it dropped go', async () => {
    const d = lab.docker('h1');
    const h2 = byName(await nodes(), 'h2')!;
    await d.nodes.update(h2.ID, h2.Version.Index, { ...h2.Spec, Labels: { ...h2.Spec.Labels, rack: '7' } });
    const inventory = join(base, 'relabel.yml');
    await writeFile(inventory, (await readFile(lab.inventoryFile, 'utf8')).replace('labels: { zone: c }', 'labels: { zone: z, disk: ssd }'));
    const r = await up(inventory);
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(actions(r.json), { h1: 'unchanged', h2: 'unchanged', h3: 'updated' });
    assert.deepEqual(r.json.hosts.find((h) => h.host === 'h3')?.changes, ['label disk=ssd', 'label zone: c -> z']);
    const list = await nodes();
    assert.deepEqual(byName(list, 'h2')?.Spec.Labels, { zone: 'b', rack: '7', 'io.airlock.labels': 'zone' });
    assert.deepEqual(byName(list, 'h3')?.Spec.Labels, { zone: 'z', disk: 'ssd', 'io.airlock.labels': 'disk,zone' });
    // Back to the lab's inventory: disk was airlock's, so it goes; zone goes back to c.
    const back = await up(lab.inventoryFile);
    assert.equal(back.code, 0, back.stdout);
    assert.deepEqual(back.json.hosts.find((h) => h.host === 'h3')?.changes, ['label disk removed', 'label zone: z -> c']);
    assert.deepEqual(byName(await nodes(), 'h3')?.Spec.Labels, { zone: 'c', 'io.airlock.labels': 'zone' });
  });

  test('a host in another swarm is reported by name and left in it; once it leaves, it joins', async () => {
    const d3 = lab.docker('h3');
    await d3.swarm.leave({ force: true });
    await d3.swarm.init({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: lab.host('h3').address });
    const other = (await d3.swarm.inspect()).ID;
    const r = await up(lab.inventoryFile);
    assert.equal(r.code, 17, r.stdout);
    assert.deepEqual(actions(r.json), { h1: 'unchanged', h2: 'unchanged', h3: 'error' });
    const e = r.json.hosts.find((h) => h.host === 'h3')!.error!;
    assert.equal(e.reason, 'other-swarm');
    assert.equal(e.exitCode, 17);
    assert.match(e.message, new RegExp(`^h3 \\(${lab.host('h3').address.replace(/\./g, '\\.')}\\) is already in another swarm \\(cluster ${other.slice(0, 12)}`));
    assert.equal((await d3.swarm.inspect()).ID, other, 'never made to leave');
    const text = await runCli(['cluster', 'up', '--inventory', lab.inventoryFile]);
    assert.equal(text.code, 17);
    assert.match(text.stdout, /^h3\s+\S+\s+worker\s+\S+\s+error\s+other-swarm$/m);
    assert.match(text.stdout, /hint: airlock never makes a node leave a swarm/);

    await d3.swarm.leave({ force: true });
    // Into the swarm that exists, h3 joins paused; h1's airlock has deployed nothing, so it is set active at once.
    const again = await up(lab.inventoryFile, '--remote-airlock', CLI);
    assert.equal(again.code, 0, again.stdout);
    assert.deepEqual(actions(again.json), { h1: 'unchanged', h2: 'unchanged', h3: 'joined' });
    assert.match(again.json.hosts.find((h) => h.host === 'h3')!.changes[0]!, /^joined as worker through .*, paused$/);
    assert.equal(again.json.hosts.find((h) => h.host === 'h3')!.changes.at(-1), 'nothing deployed to give; set active');
    // h3 is a new node now (the one it left lingers until the manager marks it down).
    const id = (await d3.system.info()).Swarm.NodeID;
    const node = (await nodes()).find((n) => n.ID === id);
    assert.equal(node?.Spec.Role, 'worker');
    assert.equal(node?.Spec.Availability, 'active');
    assert.deepEqual(node?.Spec.Labels, { zone: 'c', 'io.airlock.labels': 'zone' });
    // The node h3 left behind is no inventory host: reported, and with --prune removed.
    const old = (await nodes()).filter((n) => n.Description?.Hostname === 'h3' && n.ID !== id);
    assert.equal(old.length, 1);
    assert.deepEqual(again.json.unlisted?.map((u) => [u.nodeId, u.action]), [[old[0]!.ID, 'reported']]);
    const pruned = await up(lab.inventoryFile, '--prune', '--remote-airlock', CLI);
    assert.equal(pruned.code, 0, pruned.stdout);
    assert.deepEqual(pruned.json.unlisted?.map((u) => [u.nodeId, u.action]), [[old[0]!.ID, 'removed']]);
    assert.deepEqual((await nodes()).filter((n) => n.Description?.Hostname === 'h3').map((n) => n.ID), [id]);
  });

  test('status names hosts it cannot reach (a refused key, no such host) and exits 17', async () => {
    const otherKey = join(base, 'other_key');
    await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', otherKey]);
    const inventory = join(base, 'extra.yml');
    const text = (await readFile(lab.inventoryFile, 'utf8')).replace('labels: { zone: b }', `labels: { zone: b }\n    key: ${otherKey}`);
    await writeFile(inventory, `${text}  h9:\n    address: ${lab.gateway.replace(/\.1$/, '.99')}\n    roles: [worker]\n    timeout: 2s\n`);
    const r = await runCli(['cluster', 'status', '--inventory', inventory, '--json']);
    assert.equal(r.code, 17, r.stdout);
    const s = JSON.parse(r.stdout) as { nodes: unknown[]; notInSwarm: { host: string; reason: string }[]; errors: { host: string; reason: string; message: string }[] };
    // h2 is still found among the nodes, by its address.
    assert.deepEqual(s.nodes.map((n) => (n as { host?: string }).host).filter(Boolean), ['h1', 'h2', 'h3'], 'the node h3 left is no inventory host');
    assert.deepEqual(s.notInSwarm.map((m) => [m.host, m.reason]), [['h9', 'unreachable']]);
    assert.deepEqual(s.errors.map((e) => e.host), ['h2', 'h9']);
    assert.equal(s.errors[0]?.reason, 'auth-failed');
    assert.match(s.errors[0]?.message ?? '', new RegExp(`^h2 \\(${lab.host('h2').address.replace(/\./g, '\\.')}\\): authentication as root failed with key ${otherKey}`));
    assert.ok(['timeout', 'unreachable'].includes(s.errors[1]?.reason ?? ''), JSON.stringify(s.errors));
  });
});
