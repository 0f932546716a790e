/**
 * A service's `ports`: the short syntax expanded as nat.ParsePortSpec does,
 * the long syntax checked, and what swarm ignores (a host IP) warned about.
 */
import type { ServicePort } from '../model.js';
import { fail, type LoadContext, optionalString, warn, warnLeftovers } from './context.js';
import type { KeyPath } from '../../config/key-path.js';
import { isMapping } from './errors.js';
import { parseShortPort, PortSpecError } from './ports.js';

export function ports(ctx: LoadContext, path: KeyPath, value: unknown, unsupported: string[]): ServicePort[] {
  if (!Array.isArray(value)) return [];
  const out: ServicePort[] = [];
  value.forEach((entry, i) => {
    const at: KeyPath = [...path, i];
    if (typeof entry === 'number' || typeof entry === 'string') {
      try {
        const parsed = parseShortPort(String(entry));
        if (parsed.hostIp !== undefined) {
          warn(ctx, at, `host IP ${parsed.hostIp} ignored: swarm publishes the port on every address`, unsupported);
        }
        out.push(...parsed.ports);
      } catch (e) {
        if (e instanceof PortSpecError) {
          throw fail(ctx, at, e.message, 'The short syntax is [[ip:]published:]target[/protocol], e.g. "8080:80/udp".');
        }
        throw e;
      }
      return;
    }
    if (!isMapping(entry)) return;
    out.push(longPort(ctx, at, entry, unsupported));
  });
  return out;
}

function longPort(ctx: LoadContext, at: KeyPath, entry: Record<string, unknown>, unsupported: string[]): ServicePort {
  const target = entry['target'];
  if (typeof target !== 'number' || !Number.isInteger(target) || target < 1 || target > 65535) {
    throw fail(ctx, [...at, 'target'], target === undefined ? 'is required' : 'must be a port number (1-65535)');
  }
  const port: ServicePort = { target, protocol: 'tcp', mode: 'ingress' };
  const published = entry['published'];
  if (published !== undefined && published !== null) {
    const n = typeof published === 'number' ? published : /^\d+$/.test(String(published)) ? Number(published) : NaN;
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
      throw fail(ctx, [...at, 'published'], 'must be a port number (0-65535)', 'A range needs the short syntax, e.g. "8000-8010:8000-8010".');
    }
    if (n !== 0) port.published = n;
  }
  const protocol = optionalString(entry['protocol']);
  if (protocol !== undefined && protocol !== '') {
    const p = protocol.toLowerCase();
    if (p !== 'tcp' && p !== 'udp' && p !== 'sctp') throw fail(ctx, [...at, 'protocol'], 'must be tcp, udp or sctp');
    port.protocol = p;
  }
  const mode = optionalString(entry['mode']);
  if (mode !== undefined && mode !== '') {
    if (mode !== 'ingress' && mode !== 'host') throw fail(ctx, [...at, 'mode'], 'must be ingress or host');
    port.mode = mode;
  }
  if (entry['host_ip'] !== undefined) {
    warn(ctx, [...at, 'host_ip'], 'ignored: swarm publishes the port on every address', unsupported);
  }
  warnLeftovers(ctx, entry, ['target', 'published', 'protocol', 'mode', 'host_ip'], at, unsupported);
  return port;
}
