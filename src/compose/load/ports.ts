/**
 * The short port syntax, `[[ip:]published:]target[/protocol]` with optional
 * ranges, read as docker/cli reads it (go-connections nat.ParsePortSpec,
 * then opts.ConvertPortToPortConfig):
 *
 * - `80` publishes nothing (published 0 = let swarm choose);
 * - `8080:80/udp`; `3000-3005:3000-3005` gives six ports, pairwise;
 * - `3000-3005:80` gives six ports, all to target 80;
 * - a host IP is accepted and ignored: swarm services listen on every
 *   address (docker logs a warning; the loader returns it for a notice);
 * - every short-syntax port is in `ingress` mode.
 *
 * The ports of one entry come out ordered by docker's string sort of
 * "target/protocol".
 */
import { isIP } from 'node:net';
import type { ServicePort } from '../model.js';

export class PortSpecError extends Error {}

type Protocol = ServicePort['protocol'];

function parsePortNumber(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

/** nat.ParsePortRange: `80` or `3000-3005`. */
function parseRange(s: string): [number, number] | undefined {
  if (s === '') return undefined;
  if (!s.includes('-')) {
    const n = parsePortNumber(s);
    return n === undefined ? undefined : [n, n];
  }
  const parts = s.split('-');
  const start = parsePortNumber(parts[0] ?? '');
  const end = parsePortNumber(parts[1] ?? '');
  if (start === undefined || end === undefined || end < start) return undefined;
  return [start, end];
}

function splitParts(raw: string): [string, string, string] {
  const parts = raw.split(':');
  switch (parts.length) {
    case 1:
      return ['', '', parts[0] ?? ''];
    case 2:
      return ['', parts[0] ?? '', parts[1] ?? ''];
    case 3:
      return [parts[0] ?? '', parts[1] ?? '', parts[2] ?? ''];
    default: {
      const n = parts.length;
      return [parts.slice(0, n - 2).join(':'), parts[n - 2] ?? '', parts[n - 1] ?? ''];
    }
  }
}

export interface ShortPorts {
  ports: ServicePort[];
  /** The host IP written in the spec, which swarm does not honour. */
  hostIp?: string;
}

export function parseShortPort(raw: string): ShortPorts {
  const [ipPart, hostPort, containerSpec] = splitParts(raw);
  const slash = containerSpec.indexOf('/');
  const containerPort = slash < 0 ? containerSpec : containerSpec.slice(0, slash);
  let proto = slash < 0 ? '' : containerSpec.slice(slash + 1);
  if (containerPort === '') throw new PortSpecError(`no port specified: ${raw}<empty>`);
  if (proto === '') proto = 'tcp';
  proto = proto.toLowerCase();
  if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') throw new PortSpecError(`invalid proto: ${proto}`);

  let ip = ipPart;
  if (ip.startsWith('[')) {
    if (!ip.endsWith(']')) throw new PortSpecError(`invalid IP address ${ip}`);
    ip = ip.slice(1, -1);
  }
  if (ip !== '' && isIP(ip) === 0) throw new PortSpecError(`invalid IP address: ${ip}`);

  const container = parseRange(containerPort);
  if (container === undefined) throw new PortSpecError(`invalid containerPort: ${containerPort}`);
  const [start, end] = container;
  let host: [number, number] | undefined;
  if (hostPort !== '') {
    host = parseRange(hostPort);
    if (host === undefined) throw new PortSpecError(`invalid hostPort: ${hostPort}`);
    if (end - start !== host[1] - host[0] && end !== start) {
      throw new PortSpecError(`invalid ranges specified for container and host Ports: ${containerPort} and ${hostPort}`);
    }
  }

  // One binding per container port; a single container port with a host range
  // publishes every port of that range (ConvertPortToPortConfig).
  const count = end - start + 1;
  const bindings: { target: number; published: [number, number] | undefined }[] = [];
  for (let i = 0; i < count; i++) {
    let published: [number, number] | undefined;
    if (host !== undefined) {
      published = count === 1 ? host : [host[0] + i, host[0] + i];
    }
    bindings.push({ target: start + i, published });
  }
  bindings.sort((a, b) => {
    const ka = `${a.target}/${proto}`;
    const kb = `${b.target}/${proto}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });

  const ports: ServicePort[] = [];
  for (const b of bindings) {
    const [from, to] = b.published ?? [0, 0];
    for (let p = from; p <= to; p++) {
      ports.push({
        target: b.target,
        ...(p === 0 ? {} : { published: p }),
        protocol: proto as Protocol,
        mode: 'ingress',
      });
    }
  }
  const unspecified = ip === '' || ip === '0.0.0.0' || ip === '::';
  return unspecified ? { ports } : { ports, hostIp: ip };
}
