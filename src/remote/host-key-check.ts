/**
 * The check of the key a host offers, against its known_hosts entries:
 * revoked is refused, a known key accepted, a changed key always refused,
 * an unknown key refused unless --accept-new adds it. A refusal is kept as
 * the error the connection fails with.
 */
import type { AirlockError } from '../errors/index.js';
import { hostPort, type InventoryHost } from './inventory.js';
import { appendKnownHost, fingerprint, hostMatches, keyType, readKnownHosts } from './known-hosts.js';
import { remoteError } from './ssh-errors.js';

export interface HostKeyCheck {
  /** For ssh2's hostVerifier. */
  hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => void;
  /** Only the key types known_hosts has for the host, when it has any that ssh2 knows. */
  serverHostKey: string[] | undefined;
  /** Why the last offered key was refused, if it was. */
  refusal(): AirlockError | undefined;
}

/** Reads the host's known_hosts entries and returns the check of the key it will offer. */
export async function hostKeyCheck(host: InventoryHost, acceptNew: boolean | undefined): Promise<HostKeyCheck> {
  const hostString = hostPort(host).toLowerCase();
  const known = await readKnownHosts(host.knownHostsFile);
  const entries = known.filter((k) => hostMatches(k.hosts, hostString));
  const trusted = entries.filter((k) => k.marker === undefined);
  const revoked = entries.filter((k) => k.marker === '@revoked');
  let refusal: AirlockError | undefined;

  const hostVerifier = (key: Buffer, verify: (ok: boolean) => void): void => {
    const type = keyType(key);
    const fp = fingerprint(key);
    const offered = `${type} ${fp}`;
    if (revoked.some((k) => k.key.equals(key))) {
      refusal = remoteError(host, `the host offered ${offered}, which ${host.knownHostsFile} marks @revoked`, 'host-key-revoked', 'the host must get a new host key; airlock never connects with a revoked one');
      verify(false);
      return;
    }
    const match = trusted.find((k) => k.key.equals(key));
    if (match) {
      verify(true);
      return;
    }
    if (trusted.length > 0) {
      const where = trusted.map((k) => `${host.knownHostsFile}:${k.line}`).join(', ');
      refusal = remoteError(
        host,
        `HOST KEY CHANGED: the host offered ${offered}, but ${where} has a different key for ${hostString}; refusing to connect`,
        'host-key-mismatch',
        `someone may be intercepting the connection. If the host was reinstalled, check its new fingerprint on its console (ssh-keygen -lf /etc/ssh/ssh_host_${type.replace(/^ssh-/, '')}_key.pub), then remove the old entry (ssh-keygen -R '${hostString}' -f ${host.knownHostsFile}). --accept-new never replaces a known key`,
      );
      verify(false);
      return;
    }
    if (!acceptNew) {
      refusal = remoteError(
        host,
        `unknown host key: ${host.knownHostsFile} has no key for ${hostString} (the host offered ${offered})`,
        'unknown-host-key',
        `check that fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then run again with --accept-new to add it to ${host.knownHostsFile}, or add the host's key there yourself`,
      );
      verify(false);
      return;
    }
    appendKnownHost(host.knownHostsFile, `${hostString} ${type} ${key.toString('base64')}`).then(
      () => verify(true),
      (e: unknown) => {
        refusal = remoteError(host, `cannot add its key to ${host.knownHostsFile}: ${(e as Error).message}`, 'known-hosts-write', 'make the known_hosts file (and its folder) writable, or add the key yourself');
        verify(false);
      },
    );
  };

  return { hostVerifier, serverHostKey: hostKeyAlgorithms(trusted.map((k) => k.type)), refusal: () => refusal };
}

const ALGORITHMS_BY_KEY_TYPE: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  'ssh-dss': ['ssh-dss'],
};

/**
 * When known_hosts has keys for the host, ask only for those key types, so a
 * host that also has another type of key is checked against the one we know
 * (as OpenSSH orders its algorithms). None known, or a type ssh2 lacks: ssh2's default.
 */
function hostKeyAlgorithms(types: string[]): string[] | undefined {
  if (types.length === 0) return undefined;
  const algos = [...new Set(types.flatMap((t) => ALGORITHMS_BY_KEY_TYPE[t] ?? []))];
  return algos.length > 0 && types.every((t) => t in ALGORITHMS_BY_KEY_TYPE) ? algos : undefined;
}
