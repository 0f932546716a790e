import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { engineImageStore } from '../helpers/engines.js';
import { makeSigner, runCli, tempDir } from '../helpers/fixtures.js';

interface Doctor {
  ok: boolean;
  checks: { name: string; status: string; detail: string; hint?: string }[];
}

const byName = (d: Doctor) => Object.fromEntries(d.checks.map((c) => [c.name, c]));

test('doctor passes on a host with a running engine and a sound trust store', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  await chmod(signer.trustDir, 0o755);
  const r = await runCli(['doctor', '--trust', signer.trustDir, '--state', join(dir, 'state'), '--json']);
  const d = JSON.parse(r.stdout) as Doctor;
  const c = byName(d);
  assert.equal(c.engine!.status, 'pass');
  assert.match(c['api version']!.detail, /^using 1\.\d+/);
  // The image store of the engine under test (the row of the matrix, test/helpers/engines.ts).
  assert.equal(c['image store']!.status, 'pass');
  assert.match(c['image store']!.detail, engineImageStore() === 'containerd' ? /^containerd \(snapshotter \w+\); images are named by manifest digest$/ : /^classic, storage driver overlay2$/);
  assert.ok(['pass', 'warn'].includes(c.swarm!.status));
  assert.equal(c['trust store']!.status, 'pass');
  assert.equal(r.code, d.ok ? 0 : 3);
});

test('doctor fails, naming the fix, for a writable trust store and an unreachable engine', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  await chmod(signer.trustDir, 0o777);
  const r = await runCli(['doctor', '--trust', signer.trustDir, '--state', dir, '--json'], { DOCKER_HOST: `unix://${join(dir, 'none.sock')}` });
  assert.equal(r.code, 3);
  const c = byName(JSON.parse(r.stdout) as Doctor);
  assert.equal(c.engine!.status, 'fail');
  assert.match(c.engine!.detail, /not reachable/);
  assert.equal(c['trust store']!.status, 'fail');
  assert.match(c['trust store']!.detail, /writable by group or others \(mode 777\)/);
  assert.match(c['trust store']!.hint!, /chmod -R go-w/);
  const human = await runCli(['doctor', '--trust', signer.trustDir, '--state', dir], { DOCKER_HOST: `unix://${join(dir, 'none.sock')}` });
  assert.match(human.stdout, /^FAIL\s+engine/m);
});

test('doctor shows the site identities that open sealed secrets, and fails one open to others as import would refuse it', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  await chmod(signer.trustDir, 0o755);
  const doctor = async (...extra: string[]) => {
    const r = await runCli(['doctor', '--trust', signer.trustDir, '--state', join(dir, 'state'), '--json', ...extra]);
    return byName(JSON.parse(r.stdout) as Doctor)['site keys']!;
  };
  const none = await doctor('--allow-unsealed');
  assert.equal(none.status, 'pass');
  assert.match(none.detail, /^no site identity held .*; secrets may arrive in clear$/);
  const required = await doctor('--require-sealed');
  assert.equal(required.status, 'warn');
  assert.match(required.hint!, /every bundle with a secret will be refused/);

  const site = JSON.parse((await runCli(['key', 'generate', '--kind', 'site', '--out', join(dir, 'site-a'), '--json'])).stdout) as { identityPath: string; keyId: string };
  const held = await doctor('--identity', site.identityPath, '--require-sealed');
  assert.equal(held.status, 'pass');
  assert.ok(held.detail.includes(`key id ${site.keyId}`), held.detail);
  await chmod(site.identityPath, 0o640);
  const open = await doctor('--identity', site.identityPath);
  assert.equal(open.status, 'fail');
  assert.match(open.detail, /open to others \(mode 0640\)/);
});
