/**
 * Release-key rotation and revocation delivered as metadata through the FTP inbox to a running
 * agent: a real vsftpd on loopback, the agent polling it read-only, a private dockerd to deploy
 * to, and a host installed with the vendor's root of trust. The agent takes trust metadata
 * before the bundles of the same scan, counts each bundle's signatures against the release
 * roles the newest targets metadata gives, and quarantines refused metadata and bundles with
 * a .reason file and a journal event.
 */
import assert from 'node:assert/strict';
import { copyFile, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import YAML from 'yaml';
import { AgentProcess, writeAgentConfig, type AgentLayout } from '../helpers/agent.js';
import { buildRelease, startBench, type Bench } from '../helpers/apply.js';
import { runCli } from '../helpers/fixtures.js';
import { readJournal } from '../helpers/journal-read.js';
import { makeTrustRepo, type RoleSpec, type TrustRepo } from '../helpers/trust-repo.js';
import { startVsftpd, upload, vsftpdSkipReason, type Vsftpd } from '../helpers/vsftpd.js';

const skip = vsftpdSkipReason();
const STACK = 'trustapp';
let bench: Bench;
let ftp: Vsftpd;
let t: TrustRepo;

before(async () => {
  if (skip) return;
  bench = await startBench('airlock-agent-trust-');
  ftp = await startVsftpd(bench.dir);
  t = await makeTrustRepo(join(bench.dir, 'vendor'));
});
after(async () => {
  await ftp?.stop();
  await bench?.close();
});

type Signer = keyof TrustRepo['keys'];

/** A release of the test app (images the bench's engine loads), built and signed by the first key, then by each further key with `bundle sign`. */
async function release(version: string, signers: Signer[]): Promise<string> {
  const first = { ...bench, signer: { ...bench.signer, keyPath: t.keys[signers[0]!].privatePath } };
  const file = await buildRelease(first, { version, stack: STACK, repo: STACK, definition: (d) => void (d.name = STACK) });
  for (const s of signers.slice(1)) await t.cli(['bundle', 'sign', file, '--key', t.keys[s].privatePath]);
  return file;
}

/** Uploads the repository's targets, snapshot and timestamp to the FTP server, under `prefix` where given. */
async function uploadMetadata(prefix = ''): Promise<void> {
  for (const name of ['targets.json', 'snapshot.json', 'timestamp.json']) await upload(join(t.repo, name), `${ftp.url}${prefix}${name}`);
}

const stacksRole = (keys: RoleSpec['keys']): RoleSpec[] => [
  { name: 'stacks', paths: ['stacks/*'], threshold: 2, keys },
  { name: 'engine', paths: ['engine/*'], threshold: 1, keys: ['eve'] },
];

async function reasonFile(layout: AgentLayout, name: string): Promise<Record<string, unknown>> {
  return YAML.parse(await readFile(join(layout.inbox, 'quarantine', `${name}.reason`), 'utf8')) as Record<string, unknown>;
}

const deployedVersions = (state: string): string[] =>
  readJournal(state, (j) => j.deployments().filter((d) => d.status === 'committed').map((d) => d.bundle_version ?? ''));

test('release-key rotation and revocation delivered as metadata through the FTP inbox to a running agent', { skip, timeout: 240_000 }, async () => {
  // The vendor's first metadata: stacks 2 of alice, bob, carol; 1.0.0 is current.
  await t.targets();
  await t.timestamp({ [STACK]: '1.0.0' });
  const timestampV1 = join(bench.dir, 'timestamp-v1.json');
  await copyFile(join(t.repo, 'timestamp.json'), timestampV1);
  const [v100, v110, v120] = await Promise.all([release('1.0.0', ['alice', 'bob']), release('1.1.0', ['alice', 'carol']), release('1.2.0', ['alice', 'eve'])]);

  // The agent's trust state is the host's: the installed root in t.trustDir, the held metadata in t.stateDir.
  const layout = await writeAgentConfig(join(bench.dir, 'agent'), t.trustDir, {
    stateDir: t.stateDir,
    inbox: { poll: '*/1 * * * * *', sources: [{ type: 'ftp', name: 'drop', url: ftp.url, timeout: '10s' }] },
  });
  const agent = new AgentProcess(layout.config, { DOCKER_HOST: bench.daemon.dockerHost });
  try {
    await agent.waitFor(/msg="agent started"/);

    // (a) Metadata and a bundle alice and bob signed: the metadata is taken first, then the bundle deploys.
    await uploadMetadata();
    await upload(v100, `${ftp.url}${STACK}-1.0.0.airlock`);
    await agent.waitFor(new RegExp(`msg="stack deployed" .*stack=${STACK}`), 90_000);
    const taken = agent.lines(/msg="trust metadata taken"/);
    assert.deepEqual(taken.map((l) => /taken="([^"]*)"/.exec(l)?.[1]), ['targets v1', 'snapshot v1', 'timestamp v1'], taken.join('\n'));
    const lines = agent.log.split('\n');
    const lastTaken = lines.findIndex((l) => /msg="trust metadata taken" .*file=timestamp\.json/.test(l));
    const imported = lines.findIndex((l) => /msg="importing bundle"/.test(l));
    assert.ok(lastTaken >= 0 && imported > lastTaken, `the bundle was imported before the metadata was taken:\n${agent.log}`);
    assert.deepEqual(deployedVersions(t.stateDir), ['1.0.0']);

    // (b) Revocation: targets v2 drops carol. A bundle alice and carol signed counts one signature of two.
    await t.targets(stacksRole(['alice', 'bob']));
    await t.timestamp({ [STACK]: '1.1.0' });
    let mark = agent.mark;
    await uploadMetadata('v2.');
    await agent.waitFor(/msg="trust metadata taken" .*file=v2\.timestamp\.json/, 30_000, mark);
    mark = agent.mark;
    await upload(v110, `${ftp.url}${STACK}-1.1.0.airlock`);
    const refused = await agent.waitFor(/msg="bundle refused and quarantined"/, 30_000, mark);
    assert.match(refused, new RegExp(`file=${STACK}-1\\.1\\.0\\.airlock .*reason=below-threshold`));
    const why = await reasonFile(layout, `${STACK}-1.1.0.airlock`);
    assert.equal(why.reason, 'below-threshold');
    assert.equal(why.error, 'signature');
    assert.equal(why.exit_code, 10);
    assert.match(String(why.message), /needs 2 signatures of role stacks .*signed by alice \([0-9a-f]{16}\); missing 1 more of bob .*key [0-9a-f]{16} is unknown/);
    readJournal(t.stateDir, (j) => {
      assert.deepEqual(j.events({ kind: 'bundle.import', reason: 'below-threshold' }).map((e) => e.outcome), ['refused']);
      assert.deepEqual(j.events({ kind: 'inbox.quarantine', reason: 'below-threshold' }).map((e) => e.subject), [`${STACK}-1.1.0.airlock`]);
      assert.deepEqual(j.bundles().map((b) => b.version), ['1.0.0'], 'the refused bundle left no row');
    });
    assert.deepEqual(deployedVersions(t.stateDir), ['1.0.0'], 'nothing deployed for 1.1.0');

    // (c) Rotation: targets v3 makes eve a stacks signer; a bundle alice and eve signed deploys.
    await t.targets(stacksRole(['alice', 'bob', 'eve']));
    await t.timestamp({ [STACK]: '1.2.0' });
    mark = agent.mark;
    await uploadMetadata('v3.');
    await agent.waitFor(/msg="trust metadata taken" .*file=v3\.timestamp\.json/, 30_000, mark);
    await upload(v120, `${ftp.url}${STACK}-1.2.0.airlock`);
    await agent.waitFor(new RegExp(`msg="stack deployed" .*stack=${STACK}`), 90_000, mark);
    assert.deepEqual(deployedVersions(t.stateDir), ['1.0.0', '1.2.0']);

    // (d) A replayed timestamp, older than the one held, under a prefixed name: refused and quarantined.
    mark = agent.mark;
    await upload(timestampV1, `${ftp.url}old.timestamp.json`);
    const rollback = await agent.waitFor(/msg="trust metadata refused and quarantined" .*file=old\.timestamp\.json/, 30_000, mark);
    assert.match(rollback, /reason=metadata-rollback/);
    const old = await reasonFile(layout, 'old.timestamp.json');
    assert.equal(old.reason, 'metadata-rollback');
    assert.equal(old.error, 'trust');
    assert.equal(old.exit_code, 21);
    assert.match(String(old.message), /timestamp v1 .*older than timestamp v3/);
    assert.deepEqual((await readdir(join(layout.inbox, 'quarantine'))).sort(), ['old.timestamp.json', 'old.timestamp.json.reason', `${STACK}-1.1.0.airlock`, `${STACK}-1.1.0.airlock.reason`]);
    readJournal(t.stateDir, (j) => {
      const trust = j.events({ kind: 'trust.update' }).map((e) => [e.outcome, e.reason ?? e.message]);
      assert.deepEqual(trust, [
        ['ok', 'took targets v1'], ['ok', 'took snapshot v1'], ['ok', 'took timestamp v1'],
        ['ok', 'took targets v2'], ['ok', 'took snapshot v2'], ['ok', 'took timestamp v2'],
        ['ok', 'took targets v3'], ['ok', 'took snapshot v3'], ['ok', 'took timestamp v3'],
        ['refused', 'metadata-rollback'],
      ]);
    });
  } finally {
    await agent.stop();
  }

  // What the host's own CLI says the agent took.
  const r = await runCli(['trust', 'status', '--json'], t.env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const status = JSON.parse(r.stdout) as {
    root: { version: number };
    targets: { version: number };
    snapshot: { version: number };
    timestamp: { version: number };
    releaseRoles: { name: string; keys: { name?: string }[] }[];
    freshness: { bundles?: Record<string, string> };
  };
  assert.deepEqual([status.root.version, status.targets.version, status.snapshot.version, status.timestamp.version], [1, 3, 3, 3]);
  assert.deepEqual(status.releaseRoles.find((x) => x.name === 'stacks')?.keys.map((k) => k.name).sort(), ['alice', 'bob', 'eve']);
  assert.deepEqual(status.freshness.bundles, { [STACK]: '1.2.0' });
});
