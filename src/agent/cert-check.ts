/**
 * The agent's certificate check: once at start and on its schedule (daily by
 * default), a warning in the log when this node's swarm certificate or the
 * root CA it trusts ends within the margin. A node that is off past its
 * certificate's end cannot rejoin by itself (docs/operations.md).
 */
import { expiryWarning } from '../cluster/certificates.js';
import { localCertificates } from '../cluster/host-certs.js';
import type { Docker } from '../docker/index.js';
import type { Logger } from './log.js';

/** Returns the warnings it logged (none when fine, or when the host is in no swarm). */
export async function checkCertificates(docker: Docker, warnMs: number, log: Logger, now: Date = new Date()): Promise<string[]> {
  // No engine yet (a first boot) or no swarm: nothing to check; the other work says why.
  const info = await docker.system.info({ retry: false }).catch(() => undefined);
  if (info?.Swarm.LocalNodeState !== 'active') return [];
  const { node, ca } = await localCertificates(docker);
  const warnings = [expiryWarning("this node's swarm certificate", node.notAfter, warnMs, now), expiryWarning('the swarm root CA', ca.notAfter, warnMs, now)].filter((w) => w !== null);
  for (const w of warnings) {
    log.warn(`certificate: ${w}`, { node: node.notAfter, ca: ca.notAfter, hint: 'a running node renews its certificate by itself; airlock cluster certs --rotate renews the root CA; see docs/operations.md' });
  }
  if (warnings.length === 0) log.debug('certificates checked', { node: node.notAfter, ca: ca.notAfter });
  return warnings;
}
