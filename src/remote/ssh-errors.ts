/**
 * SSH failures: a 'remote' error that names the host (hostLabel), with a
 * stable reason and a hint, and what ssh2 and the socket report when a
 * connection fails, mapped to a reason an operator can act on.
 */
import { AirlockError } from '../errors/index.js';
import { hostLabel, type InventoryHost } from './inventory.js';

export const remoteError = (host: InventoryHost, message: string, reason: string, hint?: string, cause?: unknown) =>
  new AirlockError('remote', `${hostLabel(host)}: ${message}`, {
    reason,
    subject: host.name,
    ...(hint === undefined ? {} : { hint }),
    ...(cause === undefined ? {} : { cause }),
  });

/** Maps what ssh2 and the socket report to a reason an operator can act on. */
export function connectError(host: InventoryHost, e: Error, timeoutMs: number): AirlockError {
  const err = e as Error & { code?: string; level?: string };
  const at = `port ${host.port}`;
  switch (err.code) {
    case 'ECONNREFUSED':
      return remoteError(host, `connection refused on ${at}`, 'connection-refused', `is sshd running on ${host.name} and listening on ${host.address} ${at}? Check address and port in the inventory`, e);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
      return remoteError(host, `unreachable (${err.code})`, 'unreachable', `is ${host.name} up, and is ${host.address} the right address? The jump box has no route to it`, e);
    case 'ETIMEDOUT':
      return remoteError(host, `no SSH answer within ${Math.round(timeoutMs / 1000)} s (${err.code})`, 'timeout', 'is the host up and reachable from the jump box? For a slow link, raise timeout: in the inventory', e);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return remoteError(host, `cannot resolve ${host.address} (${err.code})`, 'unknown-address', 'fix address: in the inventory (an IP address needs no DNS)', e);
    case 'ECONNRESET':
    case 'EPIPE':
      return remoteError(host, `the connection was closed during the SSH handshake (${err.code})`, 'connection-lost', `is it sshd that listens on ${at}? Check its log (MaxStartups, AllowUsers, a firewall)`, e);
  }
  if (err.level === 'client-timeout') {
    return remoteError(host, `no SSH answer within ${Math.round(timeoutMs / 1000)} s (${err.message})`, 'timeout', 'is the host up and reachable from the jump box? For a slow link, raise timeout: in the inventory', e);
  }
  if (err.level === 'client-authentication') {
    return remoteError(
      host,
      `authentication as ${host.user} failed with key ${host.keyFile}`,
      'auth-failed',
      `add the public key (${host.keyFile}.pub) to ~${host.user}/.ssh/authorized_keys on ${host.name}, or fix user: and key: in the inventory`,
      e,
    );
  }
  if (/before handshake/i.test(err.message)) {
    return remoteError(host, `the connection was closed before the SSH handshake (${err.message})`, 'connection-lost', `is it sshd that listens on ${at}? Check its log (MaxStartups, AllowUsers, a firewall)`, e);
  }
  if (err.level === 'handshake') {
    return remoteError(host, `SSH handshake failed: ${err.message}`, 'handshake-failed', 'the host and the jump box share no key exchange, cipher or host key algorithm', e);
  }
  return remoteError(host, `SSH connection failed: ${err.message}`, 'ssh-error', undefined, e);
}
