/**
 * A freeze made visible: `doctor` and the agent's daily check say when the newest timestamp is
 * older than the configured age, has expired, or was never received, on a host with a root of
 * trust; a host in the simple mode has nothing to say.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkTrustFreshness } from '../../src/agent/trust-check.js';
import { makeSigner, runCli, tempDir } from '../helpers/fixtures.js';
import { readJournal } from '../helpers/journal-read.js';
import { captureLog } from '../helpers/log-capture.js';
import { makeTrustRepo, type TrustRepo } from '../helpers/trust-repo.js';

interface Check {
  name: string;
  status: string;
  detail: string;
}

/** doctor's trust checks, with no engine to wait for (its check fails; these do not depend on it). */
async function doctorTrust(t: TrustRepo, warnAge: string): Promise<{ code: number; checks: Record<string, Check> }> {
  const r = await runCli(['doctor', '--json', '--trust-warn-age', warnAge], { ...t.env, DOCKER_HOST: `unix://${join(t.stateDir, 'no-engine.sock')}` });
  const d = JSON.parse(r.stdout) as { checks: Check[] };
  return { code: r.code, checks: Object.fromEntries(d.checks.map((c) => [c.name, c])) };
}

test('doctor: no timestamp held, a fresh one, one older than --trust-warn-age, and an expired one', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const t = await makeTrustRepo(dir);
    await t.targets();
    await t.cli(['trust', 'update', ...t.files('targets.json')]);
    const none = await doctorTrust(t, '72h');
    assert.equal(none.checks['trust store']!.status, 'pass', none.checks['trust store']!.detail);
    assert.match(none.checks['trust store']!.detail, /root of trust v1 .*targets v1: 4 release keys/);
    assert.equal(none.checks['trust freshness']!.status, 'warn');
    assert.match(none.checks['trust freshness']!.detail, /no timestamp held/);

    await t.timestamp({ demo: '1.0.0' }, ['--expires', '1h']);
    await t.cli(['trust', 'update', ...t.files('snapshot.json', 'timestamp.json')]);
    assert.equal((await doctorTrust(t, '72h')).checks['trust freshness']!.status, 'pass');
    await sleep(1500);
    const stale = await doctorTrust(t, '1s');
    assert.equal(stale.checks['trust freshness']!.status, 'warn');
    assert.match(stale.checks['trust freshness']!.detail, /timestamp v1 issued .*older than 1s; the channel may be held back \(a freeze\)/);

    // A short-lived one, waited out.
    await t.timestamp({ demo: '1.0.0' }, ['--expires', '3s']);
    await t.cli(['trust', 'update', ...t.files('timestamp.json')]);
    const { timestamp } = JSON.parse((await t.cli(['trust', 'status', '--json'])).stdout) as { timestamp: { expires: string } };
    await sleep(Math.max(0, Date.parse(timestamp.expires) - Date.now()) + 500);
    const expired = await doctorTrust(t, '72h');
    assert.equal(expired.checks['trust freshness']!.status, 'fail');
    assert.match(expired.checks['trust freshness']!.detail, /expired, every new bundle is refused/);
    assert.equal(expired.code, 3);
  } finally {
    await cleanup();
  }
});

test("the agent's check warns in its log and its journal when the timestamp is older than its warnAge, and says nothing in the simple mode", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const t = await makeTrustRepo(dir);
    await t.targets();
    await t.timestamp({ demo: '1.0.0' }, ['--expires', '7d']);
    await t.cli(['trust', 'update', ...t.files('targets.json', 'snapshot.json', 'timestamp.json')]);
    const config = { trustDir: t.trustDir, stateDir: t.stateDir, trust: { schedule: null, warnAgeMs: 72 * 3600_000 } };

    const today = captureLog();
    assert.equal((await checkTrustFreshness(config, today.log))?.status, 'fresh');
    assert.deepEqual(today.lines.filter((l) => l.includes('level=warn')), []);

    // Four days of silence from the vendor.
    const later = captureLog();
    const f = await checkTrustFreshness(config, later.log, new Date(Date.now() + 4 * 86_400_000));
    assert.equal(f?.status, 'stale');
    const warned = later.lines.map((l) => l).filter((l) => l.includes('level=warn'));
    assert.equal(warned.length, 1);
    assert.match(warned[0]!, /trust freshness: timestamp v1 issued .* \(96h ago\).*older than 72h/);
    readJournal(t.stateDir, (j) => {
      const events = j.events().filter((e) => e.kind === 'trust.freshness');
      assert.deepEqual(events.map((e) => [e.outcome, e.reason]), [['info', 'timestamp-stale']]);
    });

    const simple = await makeSigner(dir, 'simple');
    const quiet = captureLog();
    assert.equal(await checkTrustFreshness({ trustDir: simple.trustDir, stateDir: join(dir, 'simple-state'), trust: config.trust }, quiet.log), undefined);
    assert.deepEqual(quiet.lines, []);
  } finally {
    await cleanup();
  }
});
