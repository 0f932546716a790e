/**
 * `airlock bundle apply --inventory` from the jump box (this process) to a
 * three-host lab: every host gets the bundle over SFTP and imports it with
 * its own airlock, the stacks deploy through the manager, and tasks run on
 * workers whose images airlock loaded. A host whose trust store lacks the
 * vendor key refuses, and the report names it.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildRelease, finished, waitForStderr, type Bench, type ComposeDoc } from '../helpers/apply.js';
import { CLI, makeSigner, runCli, spawnCli } from '../helpers/fixtures.js';
import { startLab, type Lab, type LabHost } from '../helpers/lab.js';
import { writeFile } from 'node:fs/promises';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { AirlockError } from '../../src/errors/index.js';
import { type ServiceProgress, waitForConvergence } from '../../src/stack/converge.js';
import { writeBusyboxLayer, writeImageArchive } from '../helpers/images.js';

let lab: Lab;
let bench: Bench;

before(async () => {
  const dir = await mkdtemp('/tmp/airlock-rollout-');
  lab = await startLab(await mkdtemp('/tmp/airlock-lab-ro-'), 3);
  const signer = await makeSigner(dir);
  // buildRelease needs only a folder and a signer.
  bench = { dir, signer } as unknown as Bench;
  for (const h of lab.hosts) await trust(h, signer.pubPath);
  const [h1, ...workers] = lab.hosts as [LabHost, ...LabHost[]];
  const manager = lab.docker(h1);
  await manager.swarm.init({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: h1.address });
  const token = (await manager.swarm.joinTokens()).Worker;
  for (const w of workers) await lab.docker(w).swarm.join({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: w.address, RemoteAddrs: [`${h1.address}:2377`], JoinToken: token });
});
after(async () => {
  await lab?.stop();
  if (bench) await rm(bench.dir, { recursive: true, force: true });
});

async function trust(host: LabHost, pub: string): Promise<void> {
  await mkdir(join(host.etcDir, 'trusted.d'), { recursive: true });
  await writeFile(join(host.etcDir, 'trusted.d', 'vendor.pub'), await readFile(pub));
}

const applyAcross = (bundle: string, extra: string[] = []) =>
  runCli(['bundle', 'apply', bundle, '--inventory', lab.inventoryFile, '--remote-airlock', CLI, '--timeout', '90s', ...extra]);

interface Report {
  hosts: { host: string; ok: boolean; upload?: { skipped: boolean; bytesSent: number }; import?: { alreadyImported: boolean }; error?: { step: string; kind: string; reason: string; message: string; hint?: string } }[];
  deploy?: { host: string; ok: boolean };
}

test('bundle apply --inventory: every host imports, the stack deploys through the manager, tasks run on workers with images airlock loaded', async () => {
  const bundle = await buildRelease(bench, {
    version: '1.0.0',
    stack: 'lab',
    repo: 'labapp',
    compose: (doc) => {
      for (const s of Object.values(doc.services)) s.deploy = { ...(s.deploy as object), placement: { constraints: ['node.role == worker'] } };
    },
  });
  const r = await applyAcross(bundle, ['--json']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const report = JSON.parse(r.stdout) as Report;
  assert.deepEqual(report.hosts.map((h) => [h.host, h.ok]), [['h1', true], ['h2', true], ['h3', true]]);
  assert.deepEqual(report.deploy && [report.deploy.host, report.deploy.ok], ['h1', true]);
  // Images were loaded on the workers by airlock, not pulled (there is no registry).
  for (const h of lab.hosts.slice(1)) assert.ok(await lab.docker(h).images.find('labapp/web:1.0.0'), `${h.name} lacks the image`);
  const manager = lab.docker(lab.hosts[0]!);
  const nodes = new Map((await manager.nodes.list()).map((n) => [n.ID, n.Description?.Hostname]));
  const tasks = await manager.tasks.list({ filters: { 'desired-state': ['running'], label: ['com.docker.stack.namespace=lab'] } });
  assert.equal(tasks.length, 2);
  for (const t of tasks) {
    assert.equal(t.Status.State, 'running', JSON.stringify(t.Status));
    assert.notEqual(nodes.get(t.NodeID!), 'h1', 'tasks must run on the workers');
  }
  // The deployment is journaled on the manager.
  const history = await runCli(['history', 'lab', '--json', '--state', lab.hosts[0]!.stateDir]);
  assert.equal(history.code, 0, history.stderr);
  assert.equal((JSON.parse(history.stdout) as { status: string }[])[0]?.status, 'committed');

  // Again: every host already has it; nothing is sent.
  const again = await applyAcross(bundle, ['--json']);
  assert.equal(again.code, 0, again.stderr);
  const second = JSON.parse(again.stdout) as Report;
  for (const h of second.hosts) {
    assert.equal(h.upload?.skipped, true, h.host);
    assert.equal(h.upload?.bytesSent, 0);
    assert.equal(h.import?.alreadyImported, true);
  }
});

test('a host whose trust store lacks the vendor key refuses; the others succeed and the report names it', async () => {
  const h3 = lab.hosts[2]!;
  await rm(join(h3.etcDir, 'trusted.d', 'vendor.pub'));
  const bundle = await buildRelease(bench, {
    version: '1.1.0',
    stack: 'mgr',
    repo: 'mgrapp',
    compose: (doc) => {
      for (const s of Object.values(doc.services)) s.deploy = { ...(s.deploy as object), placement: { constraints: ['node.role == manager'] } };
    },
  });
  const r = await applyAcross(bundle);
  assert.equal(r.code, 17, `${r.stdout}\n${r.stderr}`);
  const row = r.stdout.split('\n').find((l) => l.startsWith('h3'));
  assert.ok(row, r.stdout);
  assert.match(row, /FAILED at import \(signature\/unknown-key\): h3 \(10\.\d+\.\d+\.13\): import: bundle import: /);
  assert.match(r.stdout, /failed on 1 of 3 hosts: h3/);
  assert.match(r.stdout, /deployed through h1: stack mgr deployment #\d+/);
  for (const h of ['h1', 'h2']) assert.match(r.stdout.split('\n').find((l) => l.startsWith(h))!, /ok$/);
  // Refused on h3: nothing stored there.
  assert.equal(await lab.docker(h3).images.find('mgrapp/web:1.1.0'), undefined);
  assert.match(row, /sent [1-9][\d.]* [KM]iB/, 'the upload happened; the import refused');

  // A changed host key: the connect step fails on that host with ssh-keygen's advice, in text and JSON.
  const known = lab.knownHostsFile;
  const original = await readFile(known, 'utf8');
  const h2 = lab.hosts[1]!;
  const otherKey = original.split('\n').find((l) => l.startsWith(`${lab.hosts[0]!.address} `))!.split(' ').slice(1).join(' ');
  await writeFile(known, original.split('\n').map((l) => (l.startsWith(`${h2.address} `) ? `${h2.address} ${otherKey}` : l)).join('\n'));
  try {
    const changed = await applyAcross(bundle, ['--json']);
    assert.equal(changed.code, 17, changed.stdout + changed.stderr);
    const json = JSON.parse(changed.stdout) as Report;
    const e = json.hosts.find((h) => h.host === 'h2')!.error!;
    assert.equal(e.step, 'connect');
    assert.match(e.message, /^h2 \(10\.\d+\.\d+\.12\): HOST KEY CHANGED/);
    assert.match(e.hint ?? '', /ssh-keygen -R/);
    const text = await applyAcross(bundle);
    assert.match(text.stdout, /^h2 .*FAILED at connect \(/m);
    assert.match(text.stdout, /^ {2}h2: hint: .*ssh-keygen -R/m);
  } finally {
    await writeFile(known, original);
  }
});

test('--dry-run plans on one manager and changes nothing', async () => {
  const bundle = await buildRelease(bench, { version: '1.2.0', stack: 'lab', repo: 'labapp' });
  const manager = lab.docker(lab.hosts[0]!);
  const before = (await manager.services.list()).map((s) => `${s.Spec.Name}@${s.Version.Index}`).sort();
  const r = await applyAcross(bundle, ['--dry-run', '--json']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const report = JSON.parse(r.stdout) as Report & { deploy: { result: { stacks: { stack: string; plan: unknown }[] } } };
  assert.deepEqual(report.hosts.map((h) => h.host), ['h1'], 'uploaded to one manager only');
  assert.equal(report.hosts[0]!.import, undefined, 'nothing imported');
  assert.deepEqual(report.deploy.result.stacks.map((s) => s.stack), ['lab']);
  assert.match(JSON.stringify(report.deploy.result.stacks[0]!.plan), /update/);
  assert.deepEqual((await manager.services.list()).map((s) => `${s.Spec.Name}@${s.Version.Index}`).sort(), before);
  assert.equal(await lab.docker(lab.hosts[1]!).images.find('labapp/web:1.2.0'), undefined);
});

test('the health gate wants a global service on every eligible node: one node without its image keeps it from converging, with the node named', async () => {
  const dir = await mkdtemp(join(bench.dir, 'global-'));
  const archive = join(dir, 'image.tar');
  const layer = join(dir, 'layer.tar');
  const ref = 'gate/global:1';
  await writeImageArchive(archive, [{ refs: [ref], layers: [{ path: layer, diffId: await writeBusyboxLayer(layer) }], cmd: ['sleep', '3600'] }], 'legacy');
  const [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost];
  for (const h of [h1, h2]) await lab.docker(h).images.loadAll(() => createReadStream(archive));
  const manager = lab.docker(h1);
  const name = 'gate-global';
  await manager.services.create({
    Name: name,
    Mode: { Global: {} },
    TaskTemplate: { ContainerSpec: { Image: ref }, RestartPolicy: { Condition: 'any', Delay: 1_000_000_000 } },
  });
  const seen: ServiceProgress[] = [];
  // h3 has no image: its task is rejected, which swarm's DesiredTasks leaves out.
  await assert.rejects(waitForConvergence(manager, [name], { timeoutMs: 20_000, stableMs: 2000, onProgress: (s) => seen.push(...s) }), (e: unknown) => {
    assert.ok(e instanceof AirlockError);
    assert.equal(e.reason, 'not-converged');
    assert.match(e.message, /gate-global: 2\/3 ready; .*No such image/);
    return true;
  });
  const swarmSays = (await manager.services.list({ status: true, filters: { name: [name] } }))[0]!.ServiceStatus;
  assert.ok(seen.every((s) => s.desired === 3), `the gate wanted 3 tasks all along (swarm says ${JSON.stringify(swarmSays)})`);
  // Once h3 has the image, swarm's retry runs there and the gate passes.
  await lab.docker(h3).images.loadAll(() => createReadStream(archive));
  const done = await waitForConvergence(manager, [name], { timeoutMs: 60_000, stableMs: 2000 });
  assert.deepEqual(done.map((s) => [s.name, s.ready, s.desired]), [[name, 3, 3]]);
  // A node drained is not eligible: the target follows it.
  const h3node = (await manager.nodes.list()).find((n) => n.Description?.Hostname === h3.name)!;
  await manager.nodes.update(h3node.ID, h3node.Version.Index, { ...h3node.Spec, Availability: 'drain' });
  try {
    const drained = await waitForConvergence(manager, [name], { timeoutMs: 60_000, stableMs: 2000 });
    assert.deepEqual(drained.map((s) => [s.ready, s.desired]), [[2, 2]]);
  } finally {
    const now = await manager.nodes.inspect(h3node.ID);
    await manager.nodes.update(h3node.ID, now.Version.Index, { ...now.Spec, Availability: 'active' });
    await manager.services.delete(name);
  }
});

test('Ctrl-C during the uploads: they stop, keep their partials, nothing is deployed, exit 130; run again, it resumes and deploys', async () => {
  for (const h of lab.hosts) await trust(h, bench.signer.pubPath);
  const bundle = await buildRelease(bench, { version: '1.3.0', stack: 'lab', repo: 'labapp', bulkBytes: 160 * 1024 * 1024 });
  const before = await labHistory();
  const child = spawnCli(['bundle', 'apply', bundle, '--inventory', lab.inventoryFile, '--remote-airlock', CLI, '--timeout', '90s']);
  const done = finished(child);
  await waitForStderr(child, /^h\d: upload/m);
  // Once some bytes have landed on a host: the partial the re-run resumes.
  const partials = lab.hosts.map((h) => join(h.stateDir, 'uploads', `.${basename(bundle)}.partial`));
  for (let i = 0; i < 600 && !partials.some((p) => existsSync(p) && statSync(p).size > 0); i++) await sleep(50);
  child.kill('SIGINT');
  const r = await done;
  assert.equal(r.code, 130, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /interrupted: uploads stop, nothing new starts/);
  assert.match(r.stdout, /FAILED at upload \(interrupted\/interrupted\): h\d \(10\.[\d.]+\): upload: interrupted \(Ctrl-C\): the upload stopped; its partial stays on the host/);
  assert.match(r.stdout, /h\d: hint: run the command again: the upload resumes where it stopped/);
  assert.match(r.stdout, /deploy through (h1|a manager) FAILED: interrupted \(Ctrl-C\): the deploy was not started/);
  assert.deepEqual(await labHistory(), before, 'nothing was deployed');

  const again = await applyAcross(bundle, ['--json']);
  assert.equal(again.code, 0, `${again.stdout}\n${again.stderr}`);
  const report = JSON.parse(again.stdout) as { hosts: { upload?: { resumedFrom: number } }[] };
  assert.ok(report.hosts.some((h) => (h.upload?.resumedFrom ?? 0) > 0), `some upload resumed: ${again.stdout}`);
  assert.equal((await labHistory())[0]?.version, '1.3.0');
});

test('Ctrl-C during the deploy: the deploy is not cut off; the operator is told, waits for it, and gets its outcome', async () => {
  const bundle = await buildRelease(bench, { version: '1.4.0', stack: 'lab', repo: 'labapp' });
  const child = spawnCli(['bundle', 'apply', bundle, '--inventory', lab.inventoryFile, '--remote-airlock', CLI, '--timeout', '90s']);
  const done = finished(child);
  await waitForStderr(child, /^h1: deploy/m, 120_000);
  child.kill('SIGINT');
  const r = await done;
  assert.equal(r.code, 130, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /interrupted: uploads stop, nothing new starts; waiting for what runs on h1 \(deploy\) to end, to report it \(Ctrl-C again to leave now\)/);
  assert.match(r.stdout, /deployed through h1: stack lab deployment #\d+/);
  const history = await labHistory();
  assert.deepEqual([history[0]?.version, history[0]?.status], ['1.4.0', 'committed']);
});

async function labHistory(): Promise<{ version: string; status: string }[]> {
  const h = await runCli(['history', 'lab', '--json', '--state', lab.hosts[0]!.stateDir]);
  assert.equal(h.code, 0, h.stderr);
  return (JSON.parse(h.stdout) as { bundle_version: string | null; status: string }[]).map((d) => ({ version: d.bundle_version ?? '', status: d.status }));
}

test('sealed secrets across the cluster: each host opens them with its own identity; a host policy refuses a secret in clear unless the operator says --allow-unsealed', async () => {
  const keys = join(bench.dir, 'site-keys');
  const site = JSON.parse((await runCli(['key', 'generate', '--kind', 'site', '--out', join(keys, 'site'), '--json'])).stdout) as { identityPath: string; recipientPath: string };
  const other = JSON.parse((await runCli(['key', 'generate', '--kind', 'site', '--out', join(keys, 'other'), '--json'])).stdout) as { recipientPath: string };
  const withSecret = (doc: ComposeDoc) => {
    doc.secrets = { token: { file: './secrets/token' } };
    doc.services.web!.secrets = ['token'];
    for (const s of Object.values(doc.services)) s.deploy = { ...(s.deploy as object), placement: { constraints: ['node.role == manager'] } };
  };
  const release = (version: string, sealTo: string[]) =>
    buildRelease(bench, { version, stack: 'seal', repo: 'sealapp', files: { 'secrets/token': `tok-${version}\n` }, compose: withSecret, sealTo, definition: (d) => (d.name = 'sealed') });
  // Each host holds the site identity where the package puts it, /etc/airlock/site-keys (root-only).
  for (const h of lab.hosts) {
    await mkdir(join(h.etcDir, 'site-keys'), { recursive: true, mode: 0o700 });
    await writeFile(join(h.etcDir, 'site-keys', 'site.identity'), await readFile(site.identityPath), { mode: 0o600 });
  }
  const sealed = await applyAcross(await release('1.0.0', [site.recipientPath]), ['--json']);
  assert.equal(sealed.code, 0, `${sealed.stdout}\n${sealed.stderr}`);
  assert.ok((await lab.docker(lab.hosts[0]!).secrets.list()).some((s) => s.Spec.Name.startsWith('seal_token-')));
  // The identities stay on the hosts: the jump box refuses to take one.
  const given = await applyAcross(await release('1.0.1', [site.recipientPath]), ['--identity', site.identityPath]);
  assert.equal(given.code, 2, given.stderr);
  assert.match(given.stderr, /site identities never leave the site's hosts/);

  const elsewhere = await applyAcross(await release('1.1.0', [other.recipientPath]));
  assert.equal(elsewhere.code, 17, elsewhere.stdout);
  assert.match(elsewhere.stdout, /^h1 .*FAILED at import \(policy\/sealed-elsewhere\)/m);

  // Every host's agent config requires sealed secrets: a plain secret is refused there, taken when the operator allows it.
  for (const h of lab.hosts) await writeFile(join(h.etcDir, 'agent.yaml'), 'secrets:\n  requireSealed: true\n');
  try {
    const plain = await release('1.2.0', []);
    const refused = await applyAcross(plain);
    assert.equal(refused.code, 17, refused.stdout);
    for (const h of ['h1', 'h2', 'h3']) assert.match(refused.stdout, new RegExp(`^${h} .*FAILED at import \\(policy/unsealed-secret\\)`, 'm'));
    const allowed = await applyAcross(plain, ['--allow-unsealed']);
    assert.equal(allowed.code, 0, `${allowed.stdout}\n${allowed.stderr}`);
  } finally {
    for (const h of lab.hosts) await rm(join(h.etcDir, 'agent.yaml'), { force: true });
  }
});
