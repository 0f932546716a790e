/**
 * Certificates, tokens and quorum on a real 3-manager lab (scripts/lab): the
 * jump box runs the real CLI; each host's dockerd keeps its own swarm
 * certificates. The node certificate lifetime is set to the engine's minimum
 * and the CA rotated, so the nodes hold 1h certificates that status and doctor
 * warn of; then one manager's dockerd stops and status reports the quorum.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { checkCertificates } from '../../src/agent/cert-check.js';
import { createLogger } from '../../src/agent/log.js';
import { Journal } from '../../src/journal/journal.js';
import { runCli } from '../helpers/fixtures.js';
import { type Lab, startLab } from '../helpers/lab.js';

const base = await mkdtemp('/tmp/airlock-lab-crt-');
const HOUR = 3600_000;

interface Cert {
  notAfter: string;
  fingerprint: string;
  state: string;
}
interface StatusJson {
  ca: Cert | null;
  quorum: { managers: number; reachable: number; needed: number; spare: number } | null;
  certWarn: string;
  warnings: string[];
  nodes: { host?: string; certificate?: Cert; certificateError?: string }[];
}

describe('certificates, tokens and quorum on a 3-manager lab', { timeout: 150_000 }, () => {
  let lab: Lab;
  const state = join(base, 'jump-state');
  const status = async (...extra: string[]) => {
    const r = await runCli(['cluster', 'status', '--inventory', lab.inventoryFile, '--json', ...extra]);
    return { ...r, json: JSON.parse(r.stdout) as StatusJson };
  };
  const issuerKeys = async () => Object.fromEntries((await lab.docker('h1').nodes.list()).map((n) => [n.Description?.Hostname, n.Description?.TLSInfo?.CertIssuerPublicKey]));
  const events = (kind: string) => {
    if (!existsSync(join(state, 'journal.db'))) return [];
    const j = Journal.open(state, { readonly: true });
    try {
      return j.events({ kind }).reverse();
    } finally {
      j.close();
    }
  };

  before(async () => {
    lab = await startLab(join(base, 'lab'), 3, { managers: 3 });
    const up = await runCli(['cluster', 'up', '--inventory', lab.inventoryFile, '--json']);
    assert.equal(up.code, 0, up.stdout + up.stderr);
  });
  after(async () => {
    await lab?.stop();
    await rm(base, { recursive: true, force: true });
  });

  test('status shows every node certificate (90 days) and the CA; quorum 3 of 3, nothing warned', async () => {
    const s = await status();
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.json.certWarn, '720h');
    assert.deepEqual(s.json.quorum, { managers: 3, reachable: 3, needed: 2, spare: 1 });
    assert.deepEqual(s.json.warnings, []);
    for (const n of s.json.nodes) {
      const left = Date.parse(n.certificate!.notAfter) - Date.now();
      // The engine rounds the end up to its minute.
      assert.ok(left > 89 * 24 * HOUR && left <= 90 * 24 * HOUR + 60_000, `${n.host}: ${n.certificate!.notAfter}`);
      assert.equal(n.certificate!.state, 'ok');
    }
    assert.ok(Date.parse(s.json.ca!.notAfter) - Date.now() > 19 * 365 * 24 * HOUR, s.json.ca!.notAfter);
    // With a margin wider than the node certificates' 90 days, each is warned of.
    const wide = await runCli(['cluster', 'status', '--inventory', lab.inventoryFile, '--cert-warn', '2200h']);
    assert.equal(wide.code, 0, wide.stderr);
    for (const h of ['h1', 'h2', 'h3']) assert.match(wide.stdout, new RegExp(`^warning: ${h}'s node certificate expires \\S+ \\(in (89d 23h|90d 0h), within the 2200h margin\\)`, 'm'));
    assert.match(wide.stdout, /^ {2}root CA +\S+ +in \d+d \d+h$/m);
  });

  test('an expiry under the engine minimum is refused before the engine is asked, nothing changed', async () => {
    const before = await lab.docker('h1').swarm.inspect();
    const r = await runCli(['cluster', 'certs', '--inventory', lab.inventoryFile, '--expiry', '30m', '--state', state]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--expiry 30m: shorter than 1h, the shortest node certificate lifetime the engine takes/);
    const after = await lab.docker('h1').swarm.inspect();
    assert.equal(after.Version.Index, before.Version.Index);
    assert.deepEqual(after.Spec.CAConfig, before.Spec.CAConfig);
    assert.deepEqual(events('swarm.certs'), []);
  });

  test('expiry 1h and a CA rotation: every node holds a 1h certificate from the new root, warned with the default margin', async () => {
    const before = await status();
    const keysBefore = await issuerKeys();
    const r = await runCli(['cluster', 'certs', '--inventory', lab.inventoryFile, '--expiry', '1h', '--rotate', '--timeout', '60s', '--state', state]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^node certificate lifetime: 2160h -> 1h/m);
    assert.match(r.stdout, /^root CA rotated in [\d.]+ s: 3 nodes hold certificates from the new root$/m);
    assert.match(r.stderr, /^root CA rotation: 3\/3 nodes renewed$/m);
    assert.equal((await lab.docker('h1').swarm.inspect()).Spec.CAConfig?.NodeCertExpiry, HOUR * 1e6);

    const keysAfter = await issuerKeys();
    for (const h of ['h1', 'h2', 'h3']) assert.notEqual(keysAfter[h], keysBefore[h], `${h}'s certificate issuer key did not change`);
    const s = await status();
    assert.notEqual(s.json.ca!.fingerprint, before.json.ca!.fingerprint);
    for (const n of s.json.nodes) {
      const left = Date.parse(n.certificate!.notAfter) - Date.now();
      assert.ok(left > 0 && left <= HOUR + 120_000, `${n.host}: ${n.certificate!.notAfter}`);
      assert.equal(n.certificate!.state, 'expiring');
    }
    assert.equal(s.json.warnings.filter((w) => /node certificate expires .* within the 720h margin/.test(w)).length, 3, s.json.warnings.join('\n'));

    // doctor on a host reads its own certificate from the engine's data root.
    const d = await runCli(['doctor', '--json', '--state', join(base, 'h2-state'), '--trust', join(base, 'h2-trust')], { DOCKER_HOST: lab.host('h2').dockerHost });
    const check = (JSON.parse(d.stdout) as { checks: { name: string; status: string; detail: string }[] }).checks.find((c) => c.name === 'certificates');
    assert.equal(check?.status, 'warn', d.stdout);
    assert.match(check!.detail, /^the node certificate expires \S+ \(in (1h 0m|\d+m), within the 720h margin\)$/);

    // The agent's daily check on h2 logs one warning: its node certificate (the root CA has 20 years).
    const lines: string[] = [];
    const warned = await checkCertificates(lab.docker('h2'), 720 * HOUR, createLogger({ level: 'info', write: (l) => lines.push(l), colour: false }));
    assert.equal(warned.length, 1, lines.join('\n'));
    assert.match(lines.join('\n'), /level=warn msg="certificate: this node's swarm certificate expires \S+ \(in (1h 0m|\d+m), within the 720h margin\)"/);

    // On a manager itself (its own engine, no inventory), certs shows the lifetime.
    const local = await runCli(['cluster', 'certs', '--json'], { DOCKER_HOST: lab.host('h2').dockerHost });
    assert.equal(local.code, 0, local.stderr);
    assert.deepEqual(JSON.parse(local.stdout), { manager: 'this host', nodeCertExpiry: '1h', ca: { fingerprint: s.json.ca!.fingerprint, notAfter: s.json.ca!.notAfter }, rotationInProgress: false });

    const journaled = events('swarm.certs');
    assert.deepEqual(journaled.map((e) => [e.subject, e.outcome]), [['expiry 1h', 'ok'], ['rotate', 'ok']]);
    assert.match(journaled[1]!.message!, new RegExp(`^root CA ${before.json.ca!.fingerprint} -> ${s.json.ca!.fingerprint}, 3 nodes`));
  });

  test('token rotation changes both join tokens and prints neither', async () => {
    const unsaid = await runCli(['cluster', 'tokens', '--inventory', lab.inventoryFile, '--state', state]);
    assert.equal(unsaid.code, 2);
    assert.match(unsaid.stderr, /cluster tokens: say --rotate/);
    const before = (await lab.docker('h1').swarm.inspect()).JoinTokens;
    const r = await runCli(['cluster', 'tokens', '--rotate', '--inventory', lab.inventoryFile, '--state', state]);
    assert.equal(r.code, 0, r.stderr);
    const after = (await lab.docker('h1').swarm.inspect()).JoinTokens;
    assert.notEqual(after.Worker, before.Worker);
    assert.notEqual(after.Manager, before.Manager);
    for (const t of [before.Worker, before.Manager, after.Worker, after.Manager]) assert.ok(!r.stdout.includes(t) && !r.stderr.includes(t), 'a token was printed');
    assert.deepEqual(events('swarm.tokens').map((e) => [e.subject, e.outcome]), [['rotate', 'ok']]);
  });

  test("one manager's dockerd stopped: 2 of 3 reachable, quorum 2, losing one more loses it", async () => {
    process.kill(lab.host('h3').pids.dockerd, 'SIGTERM');
    const deadline = Date.now() + 30_000;
    while ((await lab.docker('h1').nodes.list()).find((n) => n.Description?.Hostname === 'h3')?.ManagerStatus?.Reachability !== 'unreachable') {
      assert.ok(Date.now() < deadline, 'h3 never became unreachable');
      await sleep(500);
    }
    const s = await status();
    // h3's engine does not answer: its certificate is not read, and the exit says so (15, the engine's).
    assert.equal(s.code, 15, s.stdout);
    assert.match(JSON.stringify(s.json), /"host":"h3","error":"engine","reason":"engine-unreachable"/);
    assert.deepEqual(s.json.quorum, { managers: 3, reachable: 2, needed: 2, spare: 0 });
    assert.ok(s.json.warnings.includes('losing one more manager loses quorum: 2 of 3 managers reachable, 2 needed'), s.json.warnings.join('\n'));
    const text = await runCli(['cluster', 'status', '--inventory', lab.inventoryFile]);
    assert.match(text.stdout, /^quorum: 2 of 3 managers reachable, 2 needed$/m);
    assert.match(text.stdout, /^warning: losing one more manager loses quorum/m);

    // The swarm would hold a rotation open until h3 renews: refused, nothing changed.
    const before = await lab.docker('h1').swarm.inspect();
    const rotate = await runCli(['cluster', 'certs', '--inventory', lab.inventoryFile, '--rotate', '--state', state]);
    assert.equal(rotate.code, 15, rotate.stderr);
    assert.match(rotate.stderr, /the root CA is not rotated: h3 is down, and the swarm ends a rotation only when every node has renewed/);
    assert.equal((await lab.docker('h1').swarm.inspect()).Version.Index, before.Version.Index);
    assert.deepEqual(events('swarm.certs').at(-1)?.outcome, 'failed');
  });
});
