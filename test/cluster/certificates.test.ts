/**
 * The certificate readings of cluster status, doctor and the agent, on
 * certificates openssl makes here; the options that take their margins and
 * lifetimes; where a CA rotation stands, from the node list a manager returns.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { certificateOf, DEFAULT_CERT_WARN_MS, expiryState, expiryWarning, timeLeft } from '../../src/cluster/certificates.js';
import { rotationState } from '../../src/cluster/swarm-ca.js';
import { certExpiryOption, certWarnOption } from '../../src/cli/duration-option.js';
import type { SwarmInspect, SwarmNode, TLSInfo } from '../../src/docker/types.js';
import { AirlockError } from '../../src/errors/index.js';
import { tempDir } from '../helpers/fixtures.js';

const HOUR = 3600_000;

async function selfSigned(days: number): Promise<{ pem: string; enddate: string; fingerprint: string }> {
  const { dir, cleanup } = await tempDir();
  const crt = join(dir, 'c.crt');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', crt, '-days', String(days), '-subj', '/CN=swarm-ca'], { stdio: 'ignore' });
    const enddate = execFileSync('openssl', ['x509', '-in', crt, '-noout', '-enddate'], { encoding: 'utf8' }).trim().replace(/^notAfter=/, '');
    const fingerprint = execFileSync('openssl', ['x509', '-in', crt, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' }).trim().replace(/^.*=/, '');
    return { pem: readFileSync(crt, 'utf8'), enddate, fingerprint };
  } finally {
    await cleanup();
  }
}

test("a PEM certificate's end, subject and fingerprint are what openssl says", async () => {
  const c = await selfSigned(90);
  const facts = certificateOf(c.pem, 'swarm-node.crt');
  assert.equal(facts.notAfter, new Date(c.enddate).toISOString());
  assert.equal(facts.fingerprint, c.fingerprint);
  assert.match(facts.subject, /CN=swarm-ca/);
  const left = Date.parse(facts.notAfter) - Date.now();
  assert.ok(left > 89 * 24 * HOUR && left <= 90 * 24 * HOUR, `${left} ms left`);
  // Within the default 30-day margin only once 60 days passed.
  assert.equal(expiryState(facts.notAfter, DEFAULT_CERT_WARN_MS), 'ok');
  assert.equal(expiryState(facts.notAfter, DEFAULT_CERT_WARN_MS, new Date(Date.now() + 61 * 24 * HOUR)), 'expiring');
  assert.equal(expiryState(facts.notAfter, DEFAULT_CERT_WARN_MS, new Date(Date.now() + 91 * 24 * HOUR)), 'expired');
});

test('something that is no certificate is refused, named', () => {
  assert.throws(
    () => certificateOf('-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n', 'h2: /var/lib/docker/swarm/certificates/swarm-node.crt'),
    (e: AirlockError) => e.reason === 'bad-certificate' && e.message.startsWith('h2: /var/lib/docker/swarm/certificates/swarm-node.crt: not a certificate'),
  );
});

test('the margin: at its edge, inside it, past the end; the warnings say when and how long', () => {
  const now = new Date('2027-01-01T00:00:00Z');
  const end = '2027-01-31T00:00:00.000Z';
  assert.equal(expiryState(end, 30 * 24 * HOUR, now), 'expiring', 'exactly the margin left warns');
  assert.equal(expiryState(end, 30 * 24 * HOUR - 1, now), 'ok');
  assert.equal(expiryState(end, 0, new Date(end)), 'expired');
  assert.equal(expiryWarning('h1 node certificate', end, 29 * 24 * HOUR, now), null);
  assert.equal(expiryWarning('h1 node certificate', end, 720 * HOUR, now), 'h1 node certificate expires 2027-01-31T00:00:00.000Z (in 30d 0h, within the 720h margin)');
  assert.equal(expiryWarning('h1 node certificate', end, HOUR, new Date('2027-01-31T02:30:00Z')), 'h1 node certificate expired 2027-01-31T00:00:00.000Z (2h 30m ago)');
  assert.equal(timeLeft('2027-01-01T00:52:00Z', now), 'in 52m');
});

test('--cert-warn and --expiry: durations with their bounds, refused with the option named (exit 2)', () => {
  assert.equal(certWarnOption(undefined), 720 * HOUR);
  assert.equal(certWarnOption('2h'), 2 * HOUR);
  const refused = (f: () => unknown, message: RegExp) =>
    assert.throws(f, (e: AirlockError) => e.kind === 'usage' && e.exitCode === 2 && message.test(e.message));
  refused(() => certWarnOption('30 days'), /^--cert-warn 30 days: not a duration$/);
  refused(() => certWarnOption('100000h'), /^--cert-warn 100000h: longer than 87600h/);
  assert.equal(certExpiryOption('2160h'), 2160 * HOUR);
  assert.equal(certExpiryOption('1h'), HOUR);
  refused(() => certExpiryOption('30m'), /^--expiry 30m: shorter than 1h, the shortest node certificate lifetime the engine takes$/);
  assert.throws(() => certExpiryOption('30m'), (e: AirlockError) => /from 1h to 87600h/.test(e.hint ?? ''));
});

const tls = (root: string, issuer: string): TLSInfo => ({ TrustRoot: root, CertIssuerSubject: `subject-${issuer}`, CertIssuerPublicKey: `key-${issuer}` });
const node = (name: string, info: TLSInfo, state: SwarmNode['Status']['State'] = 'ready'): SwarmNode =>
  ({ ID: `id-${name}`, Version: { Index: 1 }, Spec: {}, Description: { Hostname: name, TLSInfo: info }, Status: { State: state } }) as SwarmNode;
const swarm = (info: TLSInfo, inProgress: boolean): SwarmInspect => ({ TLSInfo: info, RootRotationInProgress: inProgress }) as SwarmInspect;

test('a CA rotation: nodes count once the old key no longer issues theirs; done when the swarm trusts the new root, ended it, and every node is under it', () => {
  const old = tls('OLD', 'old');
  const cross = tls('OLD', 'new'); // issued by the new key, cross-signed: the swarm still trusts the old root
  const fresh = tls('NEW', 'new');
  assert.deepEqual(rotationState(swarm(old, true), [node('h1', old), node('h2', old)], old), { done: 0, of: 2, waiting: ['h1', 'h2'], finished: false });
  assert.deepEqual(rotationState(swarm(old, true), [node('h1', cross), node('h2', old)], old), { done: 1, of: 2, waiting: ['h2'], finished: false });
  // The root switched: a node counts once it is under the new root.
  assert.deepEqual(rotationState(swarm(fresh, true), [node('h1', fresh), node('h2', cross)], old), { done: 1, of: 2, waiting: ['h2'], finished: false });
  // Every node under the new root, but the swarm has not said it finished.
  assert.equal(rotationState(swarm(fresh, true), [node('h1', fresh), node('h2', fresh)], old).finished, false);
  assert.deepEqual(rotationState(swarm(fresh, false), [node('h1', fresh), node('h2', fresh)], old), { done: 2, of: 2, waiting: [], finished: true });
  // A node that reported no TLS info yet is not counted as renewed.
  assert.equal(rotationState(swarm(old, true), [node('h1', {})], old).done, 0);
});
