/**
 * Sealed secrets through the real CLI on a real dockerd: a bundle sealed to
 * several sites opens where the host holds one of their identities, the
 * service reads the right value, and the value rests nowhere on the host;
 * refusals happen before anything is stored; a key rotation renames each
 * secret once, and a rollback across it opens the old sealed blob again.
 */
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, randomBytes } from 'node:crypto';
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import YAML from 'yaml';
import { applyStoredBundle } from '../../src/apply/bundle-apply.js';
import { blobEntryName, type Manifest } from '../../src/bundle/manifest-format.js';
import { TrustStore } from '../../src/trust/trust-store.js';
import { keyedNameSuffix, namesKey } from '../../src/seal/names.js';
import { readIdentityFile } from '../../src/seal/site-keys.js';
import { buildRelease, cliFor, IDLE, startBench, type Bench, type ComposeDoc } from '../helpers/apply.js';
import { runCli } from '../helpers/fixtures.js';
import { Bundle, flipByte, sha256 } from '../helpers/tamper.js';

let bench: Bench;
const sites: Record<string, { identity: string; recipient: string; keyId: string }> = {};

before(async () => {
  bench = await startBench('airlock-sealed-');
  for (const name of ['site-a', 'site-b', 'site-c', 'site-d']) {
    const r = await runCli(['key', 'generate', '--kind', 'site', '--out', join(bench.dir, 'site-keys', name), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const k = JSON.parse(r.stdout) as { identityPath: string; recipientPath: string; keyId: string };
    sites[name] = { identity: k.identityPath, recipient: k.recipientPath, keyId: k.keyId };
  }
});
after(async () => bench?.close());

const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const fresh = (tag: string) => `${tag}-${randomBytes(6).toString('hex')}`;

/** The web service reads the secret, and is healthy only when it holds `value` (compared by md5: the test's own check). */
function withSecret(value: string): (doc: ComposeDoc) => void {
  return (doc) => {
    doc.secrets = { db_password: { file: './secrets/db_password' } };
    doc.services.web!.secrets = ['db_password'];
    doc.services.web!.command = IDLE;
    doc.services.web!.healthcheck = {
      test: ['CMD-SHELL', `test "$$(md5sum /run/secrets/db_password | cut -c1-32)" = ${md5(value)}`],
      interval: '1s',
      timeout: '2s',
      retries: 3,
      start_period: '1s',
    };
  };
}

function release(stack: string, version: string, value: string, sealTo: string[]): Promise<string> {
  return buildRelease(bench, {
    version,
    stack,
    repo: stack,
    files: { 'secrets/db_password': value },
    compose: withSecret(value),
    sealTo: sealTo.map((s) => sites[s]!.recipient),
  });
}

/** Every file under `dir`, for the search for a value at rest. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

async function assertNowhere(value: string, dir: string, outputs: string[]): Promise<void> {
  const needles = [Buffer.from(value), Buffer.from(Buffer.from(value).toString('base64'))];
  const files = await filesUnder(dir);
  assert.ok(files.some((f) => f.endsWith('journal.db')), 'the search covers the journal');
  for (const f of files) {
    const data = await readFile(f);
    for (const n of needles) assert.equal(data.indexOf(n), -1, `${f} holds the value`);
  }
  for (const o of outputs) for (const n of needles) assert.ok(!o.includes(n.toString()), `a command printed the value: ${o.slice(0, 200)}`);
}

const manifestOf = async (bundle: string): Promise<Manifest> => (await Bundle.from(await readFile(bundle))).manifest;

async function engineSecretNames(stack: string): Promise<string[]> {
  return (await bench.docker.secrets.list()).map((s) => s.Spec.Name).filter((n) => n.startsWith(`${stack}_`));
}

const expectedName = async (stack: string, value: string, site: string) =>
  `${stack}_db_password-${keyedNameSuffix(`${stack}_db_password`, Buffer.from(value), namesKey((await readIdentityFile(sites[site]!.identity))[0]!))}`;

test('a bundle sealed to two sites applies where one identity is held: the service reads the value, which rests nowhere', async () => {
  const value = fresh('pin');
  const bundle = await release('vault', '1.0.0', value, ['site-a', 'site-b']);
  const host = cliFor(bench, join(bench.dir, 'state-vault'));
  const applied = await host.apply(bundle, ['--identity', sites['site-b']!.identity]);
  assert.equal(applied.code, 0, applied.stderr + applied.stdout);
  // Healthy only with the right value: the apply's health gate passed.
  assert.deepEqual(await engineSecretNames('vault'), [await expectedName('vault', value, 'site-b')]);

  const m = await manifestOf(bundle);
  const sealedFile = m.files.find((f) => f.path === 'secrets/db_password')!;
  assert.equal(sealedFile.sealed, true);
  const rows = host.journal((j) => j.objects()).filter((o) => o.kind === 'secret');
  assert.deepEqual(rows.map((o) => [o.sealed, o.data_digest]), [[1, sealedFile.digest]], 'the journal keeps the sealed blob');

  const outputs = [applied.stdout, applied.stderr];
  for (const args of [['status', '--json'], ['history', '--json']]) {
    const r = await host.cli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    outputs.push(r.stdout, r.stderr);
  }
  for (const args of [['bundle', 'inspect', bundle, '--json'], ['bundle', 'inspect', bundle]]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    outputs.push(r.stdout, r.stderr);
  }
  const plan = await host.cli(['bundle', 'plan', bundle, '--trust', bench.signer.trustDir, '--identity', sites['site-a']!.identity, '--json', '--show-env']);
  assert.equal(plan.code, 0, plan.stderr);
  outputs.push(plan.stdout, plan.stderr);
  await assertNowhere(value, host.state, outputs);
  assert.ok(!(await readdir(host.state)).includes('names.key'), 'a host with a site identity names by it, and makes no key of its own');
});

test('each site of a three-site bundle opens only its own; a fourth is refused before anything is stored', async () => {
  const bundle = await release('trio', '1.0.0', fresh('tok'), ['site-a', 'site-b', 'site-c']);
  const m = await manifestOf(bundle);
  assert.deepEqual(m.sealedTo, ['site-a', 'site-b', 'site-c'].map((s) => sites[s]!.keyId).sort());
  for (const site of ['site-a', 'site-b', 'site-c']) {
    const host = cliFor(bench, join(bench.dir, `state-trio-${site}`));
    const r = await host.cli(['bundle', 'import', bundle, '--no-load', '--trust', bench.signer.trustDir, '--identity', sites[site]!.identity]);
    assert.equal(r.code, 0, `${site}: ${r.stderr}`);
  }
  const other = cliFor(bench, join(bench.dir, 'state-trio-site-d'));
  const r = await other.cli(['bundle', 'import', bundle, '--no-load', '--trust', bench.signer.trustDir, '--identity', sites['site-d']!.identity]);
  assert.equal(r.code, 13, r.stderr);
  assert.match(r.stderr, /bundle demo 1\.0\.0 is sealed to site keys .*; this host holds site key/);
  for (const site of ['site-a', 'site-b', 'site-c', 'site-d']) assert.ok(r.stderr.includes(sites[site]!.keyId), `the message names ${site}'s key id`);
  await assertRefusedAndEmpty(other.state, 'sealed-elsewhere');
});

/**
 * The refusal is in the journal, and no blob and no bundle was stored. A
 * bundle's fault is `refused` (the agent quarantines it); a host's own
 * (its identity file) is `failed`, and the agent keeps the bundle to try
 * again once the identity is put right.
 */
async function assertRefusedAndEmpty(state: string, reason: string, outcome: 'refused' | 'failed' = 'refused'): Promise<void> {
  const host = cliFor(bench, state);
  const events = host.journal((j) => j.events({ kind: 'bundle.import' }));
  assert.deepEqual(events.map((e) => [e.outcome, e.reason]), [[outcome, reason]]);
  assert.deepEqual(host.journal((j) => j.bundles()), []);
  const blobs = join(state, 'blobs', 'sha256');
  assert.deepEqual(await readdir(blobs).catch(() => []), []);
}

test('identity files that are missing or open to others are refused, journaled, with nothing stored', async () => {
  const bundle = await release('idref', '1.0.0', fresh('pw'), ['site-a']);
  const missing = cliFor(bench, join(bench.dir, 'state-id-missing'));
  const r1 = await missing.cli(['bundle', 'import', bundle, '--no-load', '--trust', bench.signer.trustDir, '--identity', join(bench.dir, 'nowhere.identity')]);
  assert.equal(r1.code, 4, r1.stderr);
  assert.match(r1.stderr, /site identity .*nowhere\.identity does not exist/);
  await assertRefusedAndEmpty(missing.state, 'identity-not-found', 'failed');

  const open = join(bench.dir, 'open.identity');
  await writeFile(open, await readFile(sites['site-a']!.identity));
  await chmod(open, 0o644);
  const loose = cliFor(bench, join(bench.dir, 'state-id-open'));
  const r2 = await loose.cli(['bundle', 'import', bundle, '--no-load', '--trust', bench.signer.trustDir, '--identity', open]);
  assert.equal(r2.code, 3, r2.stderr);
  assert.match(r2.stderr, /open to others \(mode 0644\)/);
  await assertRefusedAndEmpty(loose.state, 'key-too-open', 'failed');
});

test('a sealed blob that fails authentication is refused as sealed-corrupt, though the vendor signed it', async () => {
  const bundle = await release('corrupt', '1.0.0', fresh('pw'), ['site-a']);
  // A vendor-side fault: the sealed bytes changed before signing, so the signature holds.
  const b = await Bundle.from(await readFile(bundle));
  const m = b.manifest;
  const file = m.files.find((f) => f.sealed)!;
  const old = file.digest;
  const sealedBytes = b.entry(blobEntryName(old)).data;
  const bad = flipByte(sealedBytes, sealedBytes.length - 3);
  const record = { ...m.blobs.find((x) => x.digest === old)!, digest: sha256(bad) };
  file.digest = record.digest;
  m.blobs = m.blobs.filter((x) => x.digest !== old);
  const key = createPrivateKey(await readFile(bench.signer.keyPath));
  const tampered = b.remove(blobEntryName(old)).resign(m, key).addBlob(record, bad, key);
  const path = join(bench.dir, 'corrupt.airlock');
  await writeFile(path, tampered.pack());
  const host = cliFor(bench, join(bench.dir, 'state-corrupt'));
  const r = await host.cli(['bundle', 'import', path, '--no-load', '--trust', bench.signer.trustDir, '--identity', sites['site-a']!.identity]);
  assert.equal(r.code, 11, r.stderr);
  assert.match(r.stderr, /sealed-corrupt|fails age's authentication/);
  await assertRefusedAndEmpty(host.state, 'sealed-corrupt');
});

test('a secret in clear is refused where the host requires sealed secrets (flag or agent config), and taken with --allow-unsealed', async () => {
  const bundle = await release('plain', '1.0.0', fresh('pw'), []);
  const flag = cliFor(bench, join(bench.dir, 'state-plain-flag'));
  const r1 = await flag.cli(['bundle', 'import', bundle, '--no-load', '--trust', bench.signer.trustDir, '--require-sealed']);
  assert.equal(r1.code, 13, r1.stderr);
  assert.match(r1.stderr, /carries secrets\/db_password, a secret of stack plain, in clear/);
  await assertRefusedAndEmpty(flag.state, 'unsealed-secret');

  const config = join(bench.dir, 'agent-policy.yaml');
  await writeFile(config, YAML.stringify({ secrets: { requireSealed: true } }));
  const policy = cliFor(bench, join(bench.dir, 'state-plain-policy'));
  const r2 = await policy.cli(['bundle', 'import', bundle, '--no-load', '--trust', bench.signer.trustDir], { AIRLOCK_AGENT_CONFIG: config });
  assert.equal(r2.code, 13, r2.stderr);
  await assertRefusedAndEmpty(policy.state, 'unsealed-secret');
  const r3 = await policy.cli(['bundle', 'import', bundle, '--no-load', '--trust', bench.signer.trustDir, '--allow-unsealed'], { AIRLOCK_AGENT_CONFIG: config });
  assert.equal(r3.code, 0, r3.stderr);
});

test('rotation: a bundle sealed to the new key renames the secret once; rollback across it opens the old sealed blob again', async () => {
  const v1 = fresh('v1');
  const v2 = fresh('v2');
  const host = cliFor(bench, join(bench.dir, 'state-rotate'));
  const both = ['--identity', sites['site-a']!.identity, '--identity', sites['site-c']!.identity];
  const first = await host.apply(await release('rotate', '1.0.0', v1, ['site-a']), both);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(await engineSecretNames('rotate'), [await expectedName('rotate', v1, 'site-a')]);
  // The same value, now sealed to the new key only: one new name (one rolling update), then the old one goes.
  const second = await host.apply(await release('rotate', '1.1.0', v1, ['site-c']), both);
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(await engineSecretNames('rotate'), [await expectedName('rotate', v1, 'site-c')]);
  const third = await host.apply(await release('rotate', '1.2.0', v2, ['site-c']), both);
  assert.equal(third.code, 0, third.stderr);

  // Back to 1.0.0: its secret is recreated from its sealed blob, opened with the old identity still held.
  const back = await host.cli(['rollback', 'rotate', '--to', '1.0.0', '--timeout', '60s', ...both]);
  assert.equal(back.code, 0, back.stderr);
  assert.ok((await engineSecretNames('rotate')).includes(await expectedName('rotate', v1, 'site-a')));
  const rows = host.journal((j) => j.objects()).filter((o) => o.kind === 'secret');
  assert.ok(rows.every((o) => o.sealed === 1), 'every deployment, the rollback too, recorded the sealed blob');
  await assertNowhere(v1, host.state, [first.stdout, first.stderr, second.stdout, third.stdout, back.stdout, back.stderr]);
  await assertNowhere(v2, host.state, [third.stdout, third.stderr]);

  // Without the old identity the rollback cannot open it, and says so before it changes anything.
  const running = await engineSecretNames('rotate');
  const refused = await host.cli(['rollback', 'rotate', '--to', '1.2.0', '--timeout', '60s', '--identity', sites['site-a']!.identity]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /sealed-elsewhere|sealed to/);
  assert.deepEqual(await engineSecretNames('rotate'), running);
});

test('a bundle imported while secrets in clear were allowed is refused at deploy once the host requires sealed secrets', async () => {
  const bundle = await release('later', '1.0.0', fresh('pw'), []);
  const host = cliFor(bench, join(bench.dir, 'state-later'));
  const imported = await host.cli(['bundle', 'import', bundle, '--trust', bench.signer.trustDir, '--allow-unsealed', '--json']);
  assert.equal(imported.code, 0, imported.stderr);
  const { bundleId } = JSON.parse(imported.stdout) as { bundleId: number };
  // The agent's path: a stored bundle, deployed later under today's policy.
  const trust = await TrustStore.load(bench.signer.trustDir);
  await assert.rejects(
    applyStoredBundle(bundleId, { stateDir: host.state, trust, docker: bench.docker, timeoutMs: 60_000, source: 'inbox', sealing: { requireSealed: true } }),
    (e: Error & { reason?: string }) => e.reason === 'unsealed-secret' && /carries secrets\/db_password, a secret of stack later, in clear/.test(e.message),
  );
  assert.deepEqual(await engineSecretNames('later'), []);
  assert.deepEqual((await bench.docker.services.list()).filter((s) => s.Spec.Name.startsWith('later_')), []);
  assert.deepEqual(host.journal((j) => j.deployments()).map((d) => [d.stack, d.status]), [['later', 'failed']]);
});
