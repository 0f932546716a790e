/**
 * Membership from the inventory on a real 4-host lab (scripts/lab), the test
 * process being the jump box: a swarm of 3 runs a bundle with a global
 * service; the 4th host added to the inventory joins paused, gets the bundle
 * from the manager and only then is set active, so its global task never
 * meets "No such image"; roles change both ways, a dropped label goes, a
 * host dropped with --prune leaves the swarm, and a second run changes
 * nothing.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SwarmNode } from '../../src/docker/index.js';
import { buildRelease, type Bench } from '../helpers/apply.js';
import { CLI, makeSigner, runCli } from '../helpers/fixtures.js';
import { startLab, type Lab } from '../helpers/lab.js';

const base = await mkdtemp('/tmp/airlock-lab-mb-');

interface UpJson {
  ok: boolean;
  hosts: { host: string; action: string; changes: string[]; error?: { reason: string; message: string } }[];
  unlisted: { nodeId: string; hostname: string; role: string; action: string }[];
}

describe('cluster up keeps the swarm to the inventory', { timeout: 170_000 }, () => {
  let lab: Lab;
  let bench: Bench;
  const started = Date.now();

  /** An inventory of the lab's hosts: name -> role and labels. */
  const inventory = async (file: string, hosts: Record<string, { role: 'manager' | 'worker'; labels?: Record<string, string> }>) => {
    const lines = ['defaults:', '  user: root', `  key: ${lab.keyFile}`, `  knownHosts: ${lab.knownHostsFile}`, 'hosts:'];
    for (const [name, h] of Object.entries(hosts)) {
      lines.push(`  ${name}:`, `    address: ${lab.host(name).address}`, `    roles: [${h.role}]`);
      if (h.labels) lines.push(`    labels: { ${Object.entries(h.labels).map(([k, v]) => `${k}: ${v}`).join(', ')} }`);
    }
    const path = join(base, file);
    await writeFile(path, `${lines.join('\n')}\n`);
    return path;
  };
  const up = async (inv: string, ...extra: string[]) => {
    const r = await runCli(['cluster', 'up', '--inventory', inv, '--remote-airlock', CLI, '--json', ...extra]);
    return { ...r, json: JSON.parse(r.stdout) as UpJson };
  };
  const actions = (j: UpJson) => Object.fromEntries(j.hosts.map((h) => [h.host, h.action]));
  const changesOf = (j: UpJson, host: string) => j.hosts.find((h) => h.host === host)?.changes ?? [];
  const nodes = async (): Promise<SwarmNode[]> => lab.docker('h1').nodes.list();
  const nodeOf = async (name: string) => {
    const id = (await lab.docker(name).system.info()).Swarm.NodeID;
    return (await nodes()).find((n) => n.ID === id);
  };

  before(async () => {
    lab = await startLab(join(base, 'lab'), 4);
    const dir = join(base, 'bench');
    await mkdir(dir);
    const signer = await makeSigner(dir);
    bench = { dir, signer } as unknown as Bench;
    for (const h of lab.hosts) {
      await mkdir(join(h.etcDir, 'trusted.d'), { recursive: true });
      await writeFile(join(h.etcDir, 'trusted.d', 'vendor.pub'), await readFile(signer.pubPath));
    }
  });
  after(async () => {
    await lab?.stop();
    await rm(base, { recursive: true, force: true });
    process.stderr.write(`membership lab test: ${Math.round((Date.now() - started) / 1000)} s\n`);
  });

  test('a host added joins paused, gets the deployed bundle, then runs the global service; roles and labels follow the inventory', async () => {
    const three = await inventory('three.yml', { h1: { role: 'manager' }, h2: { role: 'worker', labels: { zone: 'b' } }, h3: { role: 'worker', labels: { zone: 'c', disk: 'ssd' } } });
    const first = await up(three);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.deepEqual(actions(first.json), { h1: 'initialised', h2: 'joined', h3: 'joined' });
    assert.ok(!changesOf(first.json, 'h2')[0]?.endsWith('paused'), 'into a swarm made this run, nothing is deployed: no pause');

    const bundle = await buildRelease(bench, {
      version: '1.0.0',
      stack: 'lab',
      repo: 'mbapp',
      compose: (doc) => {
        doc.services.worker!.deploy = { mode: 'global' };
      },
    });
    const applied = await runCli(['bundle', 'apply', bundle, '--inventory', three, '--remote-airlock', CLI, '--timeout', '90s']);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.equal(await lab.docker('h4').images.find('mbapp/base:1'), undefined, 'h4 is not in the inventory yet');

    // A label set by hand on h3 is no business of the inventory's.
    const h3 = (await nodeOf('h3'))!;
    await lab.docker('h1').nodes.update(h3.ID, h3.Version.Index, { ...h3.Spec, Labels: { ...h3.Spec.Labels, rack: '7' } });

    // h4 added; h2 promoted; h3 loses its disk label.
    const four = await inventory('four.yml', {
      h1: { role: 'manager' },
      h2: { role: 'manager', labels: { zone: 'b' } },
      h3: { role: 'worker', labels: { zone: 'c' } },
      h4: { role: 'worker', labels: { zone: 'd' } },
    });
    // h4 does not trust the vendor key yet: its import refuses, it stays paused, and the run names it.
    const h4Key = join(lab.host('h4').etcDir, 'trusted.d', 'vendor.pub');
    await rm(h4Key);
    const refused = await up(four);
    assert.equal(refused.code, 17, refused.stdout + refused.stderr);
    assert.deepEqual(actions(refused.json), { h1: 'unchanged', h2: 'updated', h3: 'updated', h4: 'error' });
    assert.deepEqual(changesOf(refused.json, 'h2'), ['role worker -> manager']);
    assert.deepEqual(changesOf(refused.json, 'h3'), ['label disk removed']);
    const h4Error = refused.json.hosts.find((h) => h.host === 'h4')!.error!;
    assert.match(h4Error.message, new RegExp(`^h4 \\(${lab.host('h4').address.replace(/\./g, '\\.')}\\): import: bundle import: .*\\(the node stays paused: no task is scheduled there\\)$`));
    assert.equal(h4Error.reason, 'unknown-key');
    const paused = (await nodeOf('h4'))!;
    assert.equal(paused.Spec.Availability, 'pause');
    assert.equal(paused.Spec.Labels?.['io.airlock.awaiting-bundles'], 'true');
    assert.equal(await lab.docker('h4').images.find('mbapp/base:1'), undefined);
    assert.deepEqual(await lab.docker('h1').tasks.list({ filters: { node: [paused.ID] } }), [], 'no task on the paused node');
    await writeFile(h4Key, await readFile(bench.signer.pubPath));

    // Watched while it runs: h4's availability, and whether its engine has the images yet.
    const running = up(four);
    let done = false;
    void running.finally(() => (done = true));
    const seen: { availability: string; images: boolean }[] = [];
    while (!done) {
      const id = (await lab.docker('h4').system.info()).Swarm.NodeID;
      const n = id ? (await nodes()).find((x) => x.ID === id) : undefined;
      if (n) seen.push({ availability: n.Spec.Availability ?? 'active', images: (await lab.docker('h4').images.find('mbapp/base:1')) !== undefined });
      await sleep(100);
    }
    const second = await running;
    assert.equal(second.code, 0, second.stdout + second.stderr);
    assert.ok(seen.some((o) => o.availability === 'pause' && !o.images), `seen paused without the images: ${JSON.stringify(seen)}`);
    assert.deepEqual(seen.filter((o) => o.availability !== 'pause' && !o.images), [], 'never active without the images');
    // The run before left h4 marked: this one gives it the bundle, then sets it active.
    assert.deepEqual(actions(second.json), { h1: 'unchanged', h2: 'unchanged', h3: 'unchanged', h4: 'updated' });
    assert.deepEqual(changesOf(second.json, 'h4'), ['given demo 1.0.0; set active']);
    assert.deepEqual(changesOf(refused.json, 'h4'), [`joined as worker through ${lab.host('h1').address}:2377 (advertise ${lab.host('h4').address}), paused`, 'label zone=d']);

    const n4 = (await nodeOf('h4'))!;
    assert.equal(n4.Spec.Availability, 'active');
    assert.deepEqual(n4.Spec.Labels, { zone: 'd', 'io.airlock.labels': 'zone' }, 'the mark is gone');
    for (const ref of ['mbapp/web:1.0.0', 'mbapp/base:1']) assert.ok(await lab.docker('h4').images.find(ref), `${ref} on h4`);
    assert.equal((await nodeOf('h2'))?.Spec.Role, 'manager');
    assert.deepEqual((await nodeOf('h3'))?.Spec.Labels, { zone: 'c', rack: '7', 'io.airlock.labels': 'zone' });

    // The global service runs a task on h4, and none there ever failed for want of its image.
    const manager = lab.docker('h1');
    const service = (await manager.services.list({ filters: { name: ['lab_worker'] } }))[0]!;
    let onH4: Awaited<ReturnType<typeof manager.tasks.list>> = [];
    for (let i = 0; i < 60; i++) {
      onH4 = await manager.tasks.list({ filters: { service: [service.ID], node: [n4.ID] } });
      if (onH4.some((t) => t.Status.State === 'running')) break;
      await sleep(500);
    }
    assert.ok(onH4.some((t) => t.Status.State === 'running'), JSON.stringify(onH4.map((t) => t.Status)));
    for (const t of onH4) assert.doesNotMatch(`${t.Status.Err ?? ''} ${t.Status.Message ?? ''}`, /No such image/i);
    assert.equal(onH4.length, 1, 'one task ever on h4: none failed and was replaced');
  });

  test('a demotion, a host dropped with --prune; a second run changes nothing', async () => {
    const n3 = (await nodeOf('h3'))!;
    const pruned = await inventory('pruned.yml', { h1: { role: 'manager' }, h2: { role: 'worker', labels: { zone: 'b' } }, h4: { role: 'worker', labels: { zone: 'd' } } });
    // Without --prune, h3 is only reported.
    const reported = await up(pruned);
    assert.equal(reported.code, 0, reported.stdout + reported.stderr);
    assert.deepEqual(reported.json.unlisted.map((u) => [u.hostname, u.action]), [['h3', 'reported']]);
    assert.equal((await nodeOf('h2'))?.Spec.Role, 'worker', 'h2 demoted (2 managers to 1 keeps quorum)');
    assert.ok((await nodes()).some((n) => n.ID === n3.ID));

    const r = await up(pruned, '--prune');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.json.unlisted.map((u) => [u.hostname, u.role, u.action]), [['h3', 'worker', 'removed']]);
    assert.ok(!(await nodes()).some((n) => n.ID === n3.ID), 'h3 left the swarm');

    // Specs, not Version.Index: the node objects still change with their status (a demoted node's new certificate).
    const specs = async () => (await nodes()).map((n) => [n.ID, n.Spec] as const).sort(([a], [b]) => a.localeCompare(b));
    const before = await specs();
    const again = await up(pruned, '--prune');
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.deepEqual(actions(again.json), { h1: 'unchanged', h2: 'unchanged', h4: 'unchanged' });
    assert.deepEqual(again.json.unlisted, []);
    assert.deepEqual(again.json.hosts.map((h) => h.changes), [[], [], []]);
    assert.deepEqual(await specs(), before, 'no node spec changed');
  });
  test('a demotion that would lose quorum is refused before anything changes, naming the host (exit 17)', async () => {
    const managers = await inventory('managers.yml', { h1: { role: 'manager' }, h2: { role: 'manager', labels: { zone: 'b' } }, h4: { role: 'manager', labels: { zone: 'd' } } });
    const promoted = await up(managers);
    assert.equal(promoted.code, 0, promoted.stdout + promoted.stderr);
    // cluster up returns once the promoted nodes are reachable managers.
    const n4 = (await nodeOf('h4'))!;
    assert.equal(n4.ManagerStatus?.Reachability, 'reachable');
    assert.equal((await nodeOf('h2'))?.ManagerStatus?.Reachability, 'reachable');
    // h4's engine stops answering: 2 of 3 managers reachable, the swarm's spare is 0.
    const dockerd = lab.host('h4').pids.dockerd;
    process.kill(dockerd, 'SIGSTOP');
    try {
      for (let i = 0; i < 120 && (await nodes()).find((n) => n.ID === n4.ID)?.ManagerStatus?.Reachability !== 'unreachable'; i++) await sleep(250);
      assert.equal((await nodes()).find((n) => n.ID === n4.ID)?.ManagerStatus?.Reachability, 'unreachable');
      const specs = async () => (await nodes()).map((n) => [n.ID, n.Spec] as const).sort(([a], [b]) => a.localeCompare(b));
      const before = await specs();
      // h2 made a worker, h3 (a label change) with it: the demotion is refused, and the label is not set either.
      const demote = await inventory('demote.yml', { h1: { role: 'manager', labels: { zone: 'a' } }, h2: { role: 'worker', labels: { zone: 'b' } } });
      const r = await up(demote);
      assert.equal(r.code, 17, r.stdout + r.stderr);
      const h2 = r.json.hosts.find((h) => h.host === 'h2')!;
      assert.equal(h2.error?.reason, 'would-lose-quorum');
      const addr = lab.host('h2').address.replace(/\./g, '\\.');
      assert.match(h2.error?.message ?? '', new RegExp(`^demoting h2 \\(${addr}\\) would lose the swarm's quorum: 1 of the 2 managers left would be reachable, and they need 2; nothing was changed$`));
      assert.match(r.json.hosts.find((h) => h.host === 'h1')?.error?.message ?? '', /^h1 \(.*\): nothing changed: demoting h2/);
      assert.deepEqual(await specs(), before, 'nothing changed');
      const text = await runCli(['cluster', 'up', '--inventory', demote, '--remote-airlock', CLI]);
      assert.equal(text.code, 17);
      assert.match(text.stdout, /^h2\s+\S+\s+worker\s+\S+\s+error\s+would-lose-quorum$/m);
      assert.match(text.stdout, /hint: the inventory makes it a worker\. Add or repair managers first/);
    } finally {
      process.kill(dockerd, 'SIGCONT');
    }

    // h4 answers again; taken out of the inventory with --prune, the manager is drained, demoted and removed.
    for (let i = 0; i < 120 && (await nodes()).find((n) => n.ID === n4.ID)?.ManagerStatus?.Reachability !== 'reachable'; i++) await sleep(250);
    const two = await inventory('two.yml', { h1: { role: 'manager' }, h2: { role: 'manager', labels: { zone: 'b' } } });
    const r = await up(two, '--prune');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.json.unlisted.map((u) => [u.hostname, u.role, u.action]), [['h4', 'manager', 'removed']]);
    assert.ok(!(await nodes()).some((n) => n.ID === n4.ID), 'h4 left the swarm');
    assert.deepEqual((await nodes()).filter((n) => n.ManagerStatus).map((n) => n.ManagerStatus!.Reachability), ['reachable', 'reachable'], 'two managers left, both reachable');
  });
});
