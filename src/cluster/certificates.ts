/**
 * The swarm's certificates, read: a node's own (its engine keeps it under
 * <DockerRootDir>/swarm/certificates; the Engine API does not show it) and
 * the root CA's, and whether each is within the warning margin of its end.
 * A swarm whose node certificates ran out while the hosts were off does not
 * come back by itself (docs/operations.md), so airlock says so ahead of time.
 */
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { AirlockError } from '../errors/index.js';
import { durationText } from '../units/duration.js';

/** Below DockerRootDir: the node's certificate and the root it trusts (every node has both). */
export const NODE_CERT_FILE = 'swarm/certificates/swarm-node.crt';
export const ROOT_CA_FILE = 'swarm/certificates/swarm-root-ca.crt';

export const nodeCertPath = (dockerRootDir: string): string => join(dockerRootDir, NODE_CERT_FILE);
export const rootCaPath = (dockerRootDir: string): string => join(dockerRootDir, ROOT_CA_FILE);

/** 30 days: node certificates last 90 by default and renew by themselves when their node is up. */
export const DEFAULT_CERT_WARN_MS = 720 * 3600_000;

export interface CertificateFacts {
  subject: string;
  issuer: string;
  /** ISO 8601. */
  notBefore: string;
  notAfter: string;
  /** SHA-256 of the DER, hex, colon-separated as openssl says it. */
  fingerprint: string;
}

/** The first certificate of a PEM (a root during a rotation may come with its cross-signed successor). */
export function certificateOf(pem: string | Buffer, what: string): CertificateFacts {
  let c: X509Certificate;
  try {
    c = new X509Certificate(pem);
  } catch (e) {
    throw new AirlockError('engine', `${what}: not a certificate (${(e as Error).message})`, { reason: 'bad-certificate', subject: what });
  }
  return {
    subject: c.subject,
    issuer: c.issuer,
    notBefore: new Date(c.validFrom).toISOString(),
    notAfter: new Date(c.validTo).toISOString(),
    fingerprint: c.fingerprint256,
  };
}

export type ExpiryState = 'ok' | 'expiring' | 'expired';

/** expired once past notAfter; expiring when less than the margin is left. */
export function expiryState(notAfter: string, marginMs: number, now: Date = new Date()): ExpiryState {
  const left = Date.parse(notAfter) - now.getTime();
  if (left <= 0) return 'expired';
  return left <= marginMs ? 'expiring' : 'ok';
}

/** `3d 4h`, `52m`: how long is left, to the hour past a day, to the minute below. */
export function timeLeft(notAfter: string, now: Date = new Date()): string {
  const ms = Date.parse(notAfter) - now.getTime();
  const abs = Math.abs(ms);
  const days = Math.floor(abs / 86_400_000);
  const hours = Math.floor((abs % 86_400_000) / 3600_000);
  const minutes = Math.floor((abs % 3600_000) / 60_000);
  const text = days > 0 ? `${days}d ${hours}h` : hours > 0 ? `${hours}h ${minutes}m` : `${minutes}m`;
  return ms < 0 ? `${text} ago` : `in ${text}`;
}

/** A warning about one certificate within the margin or past its end, or null: `h2's node certificate expires 2027-01-05T10:00:00.000Z (in 3d 4h)`. */
export function expiryWarning(whose: string, notAfter: string, marginMs: number, now: Date = new Date()): string | null {
  const state = expiryState(notAfter, marginMs, now);
  if (state === 'ok') return null;
  if (state === 'expired') return `${whose} expired ${notAfter} (${timeLeft(notAfter, now)})`;
  return `${whose} expires ${notAfter} (${timeLeft(notAfter, now)}, within the ${durationText(marginMs)} margin)`;
}
