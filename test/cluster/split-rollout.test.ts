/**
 * `airlock bundle apply NAME.airlock.parts --inventory` on a two-host lab:
 * every part and the index reach each host (checked there by size and
 * sha256), each host imports the index with its own airlock, the stack
 * deploys through the manager; a second apply sends nothing. A damaged or
 * missing local part is refused on the jump box, naming it, before any host
 * gets a byte.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Bench } from '../helpers/apply.js';
import { CLI, makeSigner, runCli } from '../helpers/fixtures.js';
import { literal, splitRelease as splitReleaseOf } from '../helpers/split.js';
import { startLab, type Lab, type LabHost } from '../helpers/lab.js';

let lab: Lab;
let bench: Bench;

before(async () => {
  const dir = await mkdtemp('/tmp/airlock-split-rollout-');
  lab = await startLab(await mkdtemp('/tmp/airlock-lab-sp-'), 2);
  const signer = await makeSigner(dir);
  bench = { dir, signer } as unknown as Bench;
  for (const h of lab.hosts) {
    await mkdir(join(h.etcDir, 'trusted.d'), { recursive: true });
    await writeFile(join(h.etcDir, 'trusted.d', 'vendor.pub'), await readFile(signer.pubPath));
  }
  const [h1, h2] = lab.hosts as [LabHost, LabHost];
  const manager = lab.docker(h1);
  await manager.swarm.init({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: h1.address });
  const token = (await manager.swarm.joinTokens()).Worker;
  await lab.docker(h2).swarm.join({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: h2.address, RemoteAddrs: [`${h1.address}:2377`], JoinToken: token });
});
after(async () => {
  await lab?.stop();
  if (bench) await rm(bench.dir, { recursive: true, force: true });
});

const splitRelease = (version: string, stack: string) => splitReleaseOf(bench, { version, stack, repo: stack });

const applyAcross = (file: string, extra: string[] = []) =>
  runCli(['bundle', 'apply', file, '--inventory', lab.inventoryFile, '--remote-airlock', CLI, '--timeout', '90s', ...extra]);

const sha = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');
/** What a host holds in its uploads folder, hidden partials included. */
const uploads = (h: LabHost) => readdir(join(h.stateDir, 'uploads')).catch(() => [] as string[]);

interface Report {
  bundle: { name: string; version: string; parts?: number };
  hosts: { host: string; ok: boolean; upload?: { skipped: boolean; bytesSent: number; files?: { name: string; skipped: boolean }[] }; import?: { newBlobs: number; alreadyImported: boolean }; error?: { message: string } }[];
  deploy?: { host: string; ok: boolean };
}

test('a split bundle: each host gets every part and the index, imports it, and the stack deploys; again, nothing is sent', async () => {
  const s = await splitRelease('1.0.0', 'splitapp');
  const r = await applyAcross(join(s.dir, s.index), ['--json']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const report = JSON.parse(r.stdout) as Report;
  assert.equal(report.bundle.parts, s.parts.length);
  assert.deepEqual(report.hosts.map((h) => [h.host, h.ok]), [['h1', true], ['h2', true]], r.stdout);
  for (const h of lab.hosts) {
    const row = report.hosts.find((x) => x.host === h.name)!;
    // Parts first, the index last; each checked on the host and renamed into place whole.
    assert.deepEqual(row.upload?.files?.map((f) => f.name), [...s.parts, s.index]);
    assert.deepEqual((await uploads(h)).sort(), [...s.parts, s.index].sort(), `${h.name} lacks a file or kept a partial`);
    for (const name of [...s.parts, s.index]) assert.equal(await sha(join(h.stateDir, 'uploads', name)), await sha(join(s.dir, name)), `${h.name}:${name}`);
    assert.ok(row.import && row.import.newBlobs > 0 && !row.import.alreadyImported, JSON.stringify(row));
    assert.ok(await lab.docker(h).images.find('splitapp/web:1.0.0'), `${h.name} did not load the image`);
  }
  assert.deepEqual(report.deploy && [report.deploy.host, report.deploy.ok], ['h1', true]);
  const history = await runCli(['history', 'splitapp', '--json', '--state', lab.hosts[0]!.stateDir]);
  assert.equal((JSON.parse(history.stdout) as { status: string }[])[0]?.status, 'committed', history.stdout + history.stderr);

  const again = await applyAcross(join(s.dir, s.index), ['--json']);
  assert.equal(again.code, 0, again.stderr);
  for (const h of (JSON.parse(again.stdout) as Report).hosts) {
    assert.equal(h.upload?.skipped, true, h.host);
    assert.equal(h.upload?.bytesSent, 0);
    assert.ok(h.upload?.files?.every((f) => f.skipped));
    assert.equal(h.import?.alreadyImported, true);
  }
  // A host that lost one part is sent only that one.
  const lost = s.parts[1]!;
  await rm(join(lab.hosts[1]!.stateDir, 'uploads', lost));
  const third = await applyAcross(join(s.dir, s.index), ['--json']);
  assert.equal(third.code, 0, third.stderr);
  const rows = (JSON.parse(third.stdout) as Report).hosts;
  assert.deepEqual(rows.find((h) => h.host === 'h1')!.upload?.files?.filter((f) => !f.skipped), []);
  assert.deepEqual(rows.find((h) => h.host === 'h2')!.upload?.files?.filter((f) => !f.skipped).map((f) => f.name), [lost]);
  assert.equal(await sha(join(lab.hosts[1]!.stateDir, 'uploads', lost)), await sha(join(s.dir, lost)));
  // The table says how many parts.
  const plain = await applyAcross(join(s.dir, s.index));
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, new RegExp(`^demo 1\\.0\\.0 \\([^)]*, ${s.parts.length} parts\\)`, 'm'));
});

test('a damaged or missing local part is refused on the jump box, naming it, and nothing is uploaded', async () => {
  const s = await splitRelease('1.1.0', 'splitbad');
  const held = async () => (await Promise.all(lab.hosts.map(uploads))).flat().filter((n) => n.includes('1.1.0'));

  const damaged = join(bench.dir, 'damaged');
  await cp(s.dir, damaged, { recursive: true });
  const bad = s.parts[1]!;
  const bytes = await readFile(join(damaged, bad));
  bytes.writeUInt8(bytes.readUInt8(100) ^ 0xff, 100);
  await writeFile(join(damaged, bad), bytes);
  const r = await applyAcross(join(damaged, s.index));
  assert.equal(r.code, 11, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(`part ${literal(bad)} is damaged`));
  assert.deepEqual(await held(), []);

  const missing = join(bench.dir, 'missing');
  await cp(s.dir, missing, { recursive: true });
  const gone = s.parts.at(-1)!;
  await rm(join(missing, gone));
  const m = await applyAcross(join(missing, s.index), ['--json']);
  assert.equal(m.code, 11, `${m.stdout}\n${m.stderr}`);
  const err = JSON.parse(m.stdout) as { reason: string; subject: string; message: string };
  assert.equal(err.reason, 'missing-part');
  assert.equal(err.subject, gone);
  assert.match(err.message, new RegExp(literal(gone)));
  assert.deepEqual(await held(), []);
});
