/**
 * The engine host primitives on a real engine: two real Docker Engines
 * (Debian 13's 26.1 and Debian testing's 28.5, in Docker's static layout made
 * from Debian's packages by scripts/engine-bundles) placed
 * from blob files, started, checked, stopped and switched on a throwaway
 * bare host (an overlay of the bare Debian 13 root in namespaces of its own).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { REPO, tempDir } from '../helpers/fixtures.js';
import { packageBlobs, staticEngineBlobs } from '../helpers/engine-host.js';
import { nodeInBareHost, runInBareHost, type NsRun } from '../helpers/bare-root-ns.js';
import { engineFixtures, type EngineFixture, type EngineFixtureName } from '../helpers/engine-bundle-fixtures.js';

/** A fixture of scripts/engine-bundles (Debian's own packages, and Docker's static layout made from them); never skipped. */
function fixture(name: EngineFixtureName): EngineFixture {
  const all = engineFixtures();
  assert.ok(typeof all !== 'string', `the engine fixtures cannot be made here: ${String(all)}`);
  return all[name];
}

/** A static archive's 8 binaries as blobs of an engine record, the way the content store holds a bundle's. */
async function staticFixtureBlobs(name: 'static-26' | 'static-28', shared: string) {
  const f = fixture(name);
  const dir = join(shared, name);
  await mkdir(dir, { recursive: true });
  execFileSync('tar', ['-xzf', f.path, '-C', dir]);
  return staticEngineBlobs(f.version, join(shared, 'blobs'), (n) => join(dir, 'docker', n));
}

/** The JSON lines a bare-host run printed, one per step; fails the test with what the run said when it failed. */
function stepsOf(run: NsRun) {
  const steps = run.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { step: string; [k: string]: unknown });
  const failed = steps.find((s) => s.step === 'failed');
  assert.equal(run.status, 0, `the bare host run failed: ${String(failed?.error ?? run.stderr)}\n${run.stdout}\n${run.stderr}`);
  return { steps, by: (name: string) => steps.find((s) => s.step === name)! };
}

test('a static engine placed from blobs starts with the direct supervisor, is checked by its version, stops leaving nothing, and switches 26.1 → 28.5 → 26.1 on a swarm node', { timeout: 600_000 }, async () => {
  const t = await tempDir('airlock-engine-run-');
  try {
    const shared = join(t.dir, 'shared');
    const older = await staticFixtureBlobs('static-26', shared);
    const newer = await staticFixtureBlobs('static-28', shared);
    assert.notEqual(older.record.version, newer.record.version);
    await writeFile(join(shared, 'records.json'), JSON.stringify({ older: older.record, newer: newer.record }));
    const run = await runInBareHost(join(t.dir, 'host'), shared, [nodeInBareHost(), join(REPO, 'dist/test/engine/bare-host/static-engine-run.js'), shared], { timeoutMs: 540_000 });
    const { steps, by } = stepsOf(run);
    assert.equal(by('healthy').version, older.record.version);
    assert.match(String(by('wrong-version-refused').message), /reports version/);
    assert.deepEqual(by('stopped').left, []);
    assert.equal(by('upgraded').version, newer.record.version);
    assert.equal(by('rolled-back').version, older.record.version);
    assert.equal(by('rolled-back').nodeId, by('upgraded').nodeId);
    assert.ok(by('restarted-after-kill'));
    assert.ok(by('reused-pid-spared'));
    console.log(steps.map((s) => JSON.stringify(s)).join('\n'));
  } finally {
    await t.cleanup();
  }
});

test("the package form: a set without containerd is refused by name before anything installs; the full set installs docker.io 26.1 in one apt transaction without starting it; the direct supervisor starts it", { timeout: 600_000 }, async () => {
  const t = await tempDir('airlock-engine-deb-');
  try {
    const shared = join(t.dir, 'shared');
    // The set without containerd as plain .deb paths; the full set as the content store holds it: blobs named by digest.
    await cp(fixture('deb-26-missing').path, join(shared, 'deb-26-missing'), { recursive: true });
    const full = await packageBlobs(fixture('deb-26').path, join(shared, 'blobs'));
    await writeFile(join(shared, 'deb.json'), JSON.stringify({ version: fixture('deb-26').version, full }));
    const run = await runInBareHost(join(t.dir, 'host'), shared, [nodeInBareHost(), join(REPO, 'dist/test/engine/bare-host/package-engine-run.js'), shared], { timeoutMs: 540_000 });
    const { steps, by } = stepsOf(run);
    assert.match(String(by('missing-refused').message), /containerd/);
    assert.match(String(by('installed').package), /^26\.1\.5/);
    assert.match(String(by('healthy').version), /^26\.1\.5/);
    assert.ok(by('done'));
    console.log(steps.map((s) => JSON.stringify(s)).join('\n'));
  } finally {
    await t.cleanup();
  }
});
