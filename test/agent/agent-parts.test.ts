/**
 * Split bundles in the agent's inbox (issue 9), with the real agent process
 * and a real dockerd: parts arriving out of order with one missing, a
 * damaged part quarantined alone and sent again, a part whose index never
 * comes, parts polled from vsftpd on loopback, and done/ pruned by sets.
 * Also a delta that arrives before its (split) base: it waits for it.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import YAML from 'yaml';
import { pruneDone } from '../../src/agent/inbox/own-folders.js';
import { AgentProcess, writeAgentConfig } from '../helpers/agent.js';
import { assertRuns, buildRelease, deployments, startBench, type Bench } from '../helpers/apply.js';
import { readJournal } from '../helpers/journal-read.js';
import { literal, splitRelease as splitReleaseOf } from '../helpers/split.js';
import { ftpCommands, startVsftpd, upload, vsftpdSkipReason, type Vsftpd } from '../helpers/vsftpd.js';

let bench: Bench;
before(async () => {
  bench = await startBench('airlock-agent-parts-');
});
after(async () => {
  await bench?.close();
});

const envFor = () => ({ DOCKER_HOST: bench.daemon.dockerHost });

const splitRelease = (stack: string, version = '1.0.0') => splitReleaseOf(bench, { version, stack, repo: stack });

/** Drops one file into the inbox the way an upload ends: written aside, then renamed in. */
async function drop(from: string, inbox: string, name: string): Promise<void> {
  const aside = join(inbox, `.${name}.tmp-upload`);
  await copyFile(from, aside);
  await rename(aside, join(inbox, name));
}

const bundleCount = (state: string) => readJournal(state, (j) => j.bundles().length);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('parts dropped out of order with one missing wait, naming it; once it arrives the set is imported and applied once', async () => {
  const s = await splitRelease('partsok');
  const [p1, p2, p3, ...rest] = s.parts as [string, string, string, ...string[]];
  const layout = await writeAgentConfig(join(bench.dir, 'a-parts'), bench.signer.trustDir);
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    // Last part first, the index in the middle, the second part not at all.
    for (const name of [...rest.reverse(), p1, s.index, p3]) await drop(join(s.dir, name), layout.inbox, name);
    const line = await agent.waitFor(new RegExp(`msg="split bundle waits for parts" .*waiting=1 .*missing=${literal(p2)}(\\s|$)`), 60_000);
    assert.match(line, /bundle="demo 1\.0\.0"/);
    assert.match(line, /bytes=1048576/);
    assert.doesNotMatch(line, /arriving=/);
    // Said once, not at every poll; nothing read, imported or applied.
    await sleep(3000);
    assert.equal(agent.lines(/msg="split bundle waits for parts" .*waiting=1 /).length, 1, agent.log);
    assert.deepEqual(agent.lines(/msg="importing bundle"/), []);
    assert.equal(bundleCount(layout.state), 0);
    assert.deepEqual((await readdir(layout.inbox)).filter((n) => !n.startsWith('.')).sort(), [s.index, p1, p3, ...rest].sort());

    const mark = agent.mark;
    await drop(join(s.dir, p2), layout.inbox, p2);
    const imported = await agent.waitFor(/msg="bundle imported"/, 60_000, mark);
    assert.match(imported, new RegExp(`file=${literal(s.index)}`));
    assert.match(imported, new RegExp(`parts=${s.parts.length}`));
    await agent.waitFor(/msg="stack deployed" .*stack=partsok/, 120_000, mark);
    // The index and every part went to done/ together; the inbox is empty.
    assert.deepEqual((await readdir(join(layout.inbox, 'done'))).sort(), [s.index, ...s.parts].sort());
    assert.deepEqual((await readdir(layout.inbox)).filter((n) => !['done', 'quarantine'].includes(n)), []);
    const ds = deployments(layout.state);
    assert.equal(ds.length, 1, JSON.stringify(ds));
    assert.equal(ds[0]!.status, 'committed');
    await assertRuns(bench.docker, layout.state, 'partsok', ds[0]!.id);
    // Applied once: no second import or deploy at later polls.
    const after = agent.mark;
    await sleep(2500);
    assert.deepEqual(agent.lines(/msg="importing bundle"/).length, 1, agent.log.split('\n').slice(after).join('\n'));
    assert.equal(deployments(layout.state).length, 1);
  } finally {
    const end = await agent.stop();
    assert.equal(end.code, 0, agent.log);
  }
});

test('a damaged part is quarantined alone with a reason naming it, nothing is applied; sent again, the set imports', async () => {
  const s = await splitRelease('partsbad');
  const bad = s.parts[2]!;
  const damaged = join(bench.dir, 'damaged-part');
  const bytes = await readFile(join(s.dir, bad));
  const at = Math.floor(bytes.length / 2);
  bytes.writeUInt8(bytes.readUInt8(at) ^ 0xff, at);
  await writeFile(damaged, bytes);
  const layout = await writeAgentConfig(join(bench.dir, 'a-bad-part'), bench.signer.trustDir);
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    for (const name of [s.index, ...s.parts]) await drop(name === bad ? damaged : join(s.dir, name), layout.inbox, name);
    const line = await agent.waitFor(/msg="damaged part quarantined; the other parts wait for it to be sent again"/, 60_000);
    assert.match(line, new RegExp(`part=${literal(bad)}`));
    assert.deepEqual((await readdir(join(layout.inbox, 'quarantine'))).sort(), [bad, `${bad}.reason`]);
    const reason = YAML.parse(await readFile(join(layout.inbox, 'quarantine', `${bad}.reason`), 'utf8')) as Record<string, unknown>;
    assert.equal(reason.file, bad);
    assert.equal(reason.entry, bad);
    assert.equal(reason.error, 'integrity');
    assert.equal(reason.reason, 'hash-mismatch');
    assert.equal(reason.exit_code, 11);
    assert.match(String(reason.message), new RegExp(`part ${literal(bad)} is damaged`));
    // Nothing stored, loaded or deployed; the refusal is journaled; the other parts wait.
    assert.equal(bundleCount(layout.state), 0);
    assert.deepEqual(deployments(layout.state), []);
    assert.deepEqual(await bench.docker.services.list({ filters: { label: ['com.docker.stack.namespace=partsbad'] } }), []);
    assert.equal(await bench.docker.images.find('partsbad/web:1.0.0'), undefined);
    const refusals = readJournal(layout.state, (j) => j.events({ kind: 'bundle.import' }).map(({ outcome, reason }) => ({ outcome, reason })));
    assert.deepEqual(refusals, [{ outcome: 'refused', reason: 'hash-mismatch' }]);
    const waits = await agent.waitFor(/msg="split bundle waits for parts"/, 30_000);
    assert.match(waits, new RegExp(`missing=${literal(bad)}`));
    assert.deepEqual((await readdir(layout.inbox)).filter((n) => !['done', 'quarantine'].includes(n)).sort(), [s.index, ...s.parts.filter((p) => p !== bad)].sort());

    // The vendor sends that one part again.
    const mark = agent.mark;
    await drop(join(s.dir, bad), layout.inbox, bad);
    await agent.waitFor(/msg="stack deployed" .*stack=partsbad/, 120_000, mark);
    assert.deepEqual((await readdir(join(layout.inbox, 'done'))).sort(), [s.index, ...s.parts].sort());
    assert.equal(deployments(layout.state).length, 1);
  } finally {
    await agent.stop();
  }
});

test('a part whose index never arrives, and a set missing a part, wait; unchanged for giveUpAfter, each is quarantined', async () => {
  const s = await splitRelease('partslone');
  // Another version: another stem, so the lone part is not one of this set's.
  const t = await splitRelease('partsgone', '1.0.1');
  const layout = await writeAgentConfig(join(bench.dir, 'a-lone'), bench.signer.trustDir, { inbox: { giveUpAfter: '3s' }, apply: { mode: 'import-only' } });
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    const lone = s.parts[1]!;
    await drop(join(s.dir, lone), layout.inbox, lone);
    const gone = t.parts[0]!;
    for (const name of [t.index, ...t.parts.slice(1)]) await drop(join(t.dir, name), layout.inbox, name);
    const waits = await agent.waitFor(/msg="part waits for its index"/, 30_000);
    assert.match(waits, new RegExp(`index=${literal(s.index)}`));
    await agent.waitFor(/msg="bundle refused and quarantined" .*reason=no-parts-index/, 30_000);
    await agent.waitFor(/msg="bundle refused and quarantined" .*reason=incomplete/, 30_000);
    assert.equal(agent.lines(new RegExp(`msg="part waits for its index" file=${literal(lone)}`)).length, 1, 'said once');
    const reason = YAML.parse(await readFile(join(layout.inbox, 'quarantine', `${lone}.reason`), 'utf8')) as Record<string, unknown>;
    assert.equal(reason.entry, lone);
    assert.match(String(reason.message), new RegExp(literal(s.index)));
    // The set went whole, its reason beside the index naming the missing part.
    const set = YAML.parse(await readFile(join(layout.inbox, 'quarantine', `${t.index}.reason`), 'utf8')) as Record<string, unknown>;
    assert.equal(set.reason, 'incomplete');
    assert.equal(set.entry, gone);
    assert.deepEqual((set.files as string[]).sort(), [t.index, ...t.parts.slice(1)].sort());
    assert.deepEqual((await readdir(join(layout.inbox, 'quarantine'))).sort(), [lone, `${lone}.reason`, t.index, `${t.index}.reason`, ...t.parts.slice(1)].sort());
    assert.equal(bundleCount(layout.state), 0);
  } finally {
    await agent.stop();
  }
});

test('with complete.mode marker, each part and the index count only once their own marker is there', async () => {
  const s = await splitRelease('partsmark');
  const layout = await writeAgentConfig(join(bench.dir, 'a-marker'), bench.signer.trustDir, { inbox: { complete: { mode: 'marker' } }, apply: { mode: 'import-only' } });
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    for (const name of [s.index, ...s.parts]) await drop(join(s.dir, name), layout.inbox, name);
    await sleep(2500);
    assert.deepEqual(agent.lines(/msg="(importing bundle|split bundle waits for parts|part waits for its index)"/), [], 'nothing is complete without its marker');
    const last = s.parts.at(-1)!;
    for (const name of [s.index, ...s.parts.slice(0, -1)]) await writeFile(join(layout.inbox, `${name}.ready`), '');
    await agent.waitFor(new RegExp(`msg="split bundle waits for parts" .*arriving=${literal(last)}`), 30_000);
    assert.deepEqual(agent.lines(/msg="importing bundle"/), []);
    await writeFile(join(layout.inbox, `${last}.ready`), '');
    await agent.waitFor(/msg="bundle imported" .*bundle=demo/, 60_000);
    // Markers are removed with their files; the set is in done/.
    assert.deepEqual((await readdir(join(layout.inbox, 'done'))).sort(), [s.index, ...s.parts].sort());
    assert.deepEqual((await readdir(layout.inbox)).filter((n) => n !== 'done'), []);
  } finally {
    await agent.stop();
  }
});

const ftpSkip = vsftpdSkipReason();
let ftp: Vsftpd | undefined;
after(async () => {
  await ftp?.stop();
});

test('parts uploaded to an FTP source are fetched read-only, imported and applied', { skip: ftpSkip }, async () => {
  const s = await splitRelease('partsftp');
  ftp = await startVsftpd(join(bench.dir, 'ftp'));
  const layout = await writeAgentConfig(join(bench.dir, 'a-ftp-parts'), bench.signer.trustDir, {
    inbox: { poll: '*/1 * * * * *', sources: [{ type: 'ftp', name: 'drop', url: ftp.url, timeout: '10s' }] },
  });
  const before = (await ftpCommands(ftp.logFile)).length;
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    // Out of order, the index before the last part.
    const [first, ...others] = s.parts;
    for (const name of [...others.reverse(), s.index]) await upload(join(s.dir, name), `${ftp.url}${name}`);
    await agent.waitFor(new RegExp(`msg="split bundle waits for parts" .*missing=${literal(first!)}`), 60_000);
    await upload(join(s.dir, first!), `${ftp.url}${first}`);
    await agent.waitFor(/msg="stack deployed" .*stack=partsftp/, 120_000);
    assert.deepEqual((await readdir(join(layout.inbox, 'done'))).sort(), [s.index, ...s.parts].sort());
    assert.equal(deployments(layout.state).length, 1);
    // Read-only: the only writes on the server are the uploads themselves; every file stays there.
    const commands = (await ftpCommands(ftp.logFile)).slice(before);
    const writes = commands.filter((c) => /^(STOR|APPE|DELE|RNFR|RNTO|MKD|RMD|SITE)\b/i.test(c));
    assert.deepEqual(new Set(writes.map((c) => c.split(' ')[0])), new Set(['STOR']), commands.join('\n'));
    assert.deepEqual((await readdir(ftp.uploadDir)).sort(), [s.index, ...s.parts].sort());
  } finally {
    await agent.stop();
  }
});

test('keepDone counts a split set as one bundle', async () => {
  const dir = join(bench.dir, 'done-prune');
  await mkdir(dir, { recursive: true });
  const files: [string, number][] = [
    ['old.airlock', 1],
    ['a-1.0.0.airlock.parts', 2],
    ['a-1.0.0.airlock.part-0001', 2],
    ['a-1.0.0.airlock.part-0002', 2],
    ['b-2.0.0.airlock.parts', 3],
    ['b-2.0.0.airlock.part-0001', 3],
    ['b-2.0.0.airlock.part-0002', 3],
    ['b-2.0.0.airlock.part-0003', 3],
  ];
  for (const [name, age] of files) {
    await writeFile(join(dir, name), name);
    const t = Date.now() / 1000 - 1000 + age * 100;
    await utimes(join(dir, name), t, t);
  }
  const removed = await pruneDone(dir, 2);
  assert.deepEqual(removed.map((p) => p.split('/').at(-1)), ['old.airlock']);
  await pruneDone(dir, 1);
  assert.deepEqual((await readdir(dir)).sort(), ['b-2.0.0.airlock.part-0001', 'b-2.0.0.airlock.part-0002', 'b-2.0.0.airlock.part-0003', 'b-2.0.0.airlock.parts']);
});

test('a delta that arrives before its split base waits for it, then both are imported and the newer one runs', async () => {
  const base = await splitRelease('deltawait', '1.0.0');
  const delta = await buildRelease(bench, { version: '1.1.0', stack: 'deltawait', repo: 'deltawait', since: join(base.dir, base.index) });
  const deltaName = 'deltawait-1.1.0.airlock';
  const [first, ...others] = base.parts as [string, ...string[]];
  const layout = await writeAgentConfig(join(bench.dir, 'a-delta-wait'), bench.signer.trustDir);
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    // The small delta completes first; the base's first part is still on its way.
    await drop(delta, layout.inbox, deltaName);
    for (const name of [base.index, ...others]) await drop(join(base.dir, name), layout.inbox, name);
    const waits = await agent.waitFor(/msg="delta waits for its base/, 60_000);
    assert.match(waits, new RegExp(`file=${literal(deltaName)}`));
    assert.match(waits, /base="demo 1\.0\.0"/);
    await sleep(2500);
    assert.equal(agent.lines(/msg="delta waits for its base/).length, 1, 'said once');
    assert.deepEqual(agent.lines(/msg="bundle refused and quarantined"/), [], agent.log);
    assert.ok((await readdir(layout.inbox)).includes(deltaName), 'the delta stays in the inbox');
    assert.equal(deployments(layout.state).length, 0);

    const mark = agent.mark;
    await drop(join(base.dir, first), layout.inbox, first);
    await agent.waitFor(new RegExp(`msg="bundle imported" .*file=${literal(base.index)}`), 60_000, mark);
    await agent.waitFor(new RegExp(`msg="bundle imported" .*file=${literal(deltaName)}`), 60_000, mark);
    await agent.waitFor(/msg="stack deployed" .*stack=deltawait .*version=1\.1\.0|msg="stack deployed" .*version=1\.1\.0 .*stack=deltawait/, 120_000, mark);
    assert.deepEqual((await readdir(join(layout.inbox, 'done'))).sort(), [deltaName, base.index, ...base.parts].sort());
    assert.deepEqual(await readdir(join(layout.inbox, 'quarantine')).catch(() => []), [], 'nothing quarantined');
    const last = deployments(layout.state).at(-1)!;
    assert.equal(last.status, 'committed');
    await assertRuns(bench.docker, layout.state, 'deltawait', last.id);
  } finally {
    const end = await agent.stop();
    assert.equal(end.code, 0, agent.log);
  }
});

test('a delta whose base never comes is quarantined after giveUpAfter, with the missing base named', async () => {
  const base = await splitRelease('deltanever', '1.0.0');
  const delta = await buildRelease(bench, { version: '1.1.0', stack: 'deltanever', repo: 'deltanever', since: join(base.dir, base.index) });
  const deltaName = 'deltanever-1.1.0.airlock';
  const layout = await writeAgentConfig(join(bench.dir, 'a-delta-never'), bench.signer.trustDir, { inbox: { giveUpAfter: '3s' }, apply: { mode: 'import-only' } });
  const agent = new AgentProcess(layout.config, envFor());
  try {
    await agent.waitFor(/msg="agent started"/);
    await drop(delta, layout.inbox, deltaName);
    await agent.waitFor(/msg="delta waits for its base/, 60_000);
    await agent.waitFor(/msg="bundle refused and quarantined" .*reason=missing-base/, 30_000);
    const reason = YAML.parse(await readFile(join(layout.inbox, 'quarantine', `${deltaName}.reason`), 'utf8')) as Record<string, unknown>;
    assert.equal(reason.reason, 'missing-base');
    assert.match(String(reason.message), /did not arrive in \d+ s/);
    assert.match(String(reason.message), /1\.0\.0/);
    assert.equal(bundleCount(layout.state), 0);
  } finally {
    await agent.stop();
  }
});
