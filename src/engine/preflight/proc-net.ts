/**
 * Sockets on given ports, read from /proc/net (this network namespace's),
 * and the processes that hold them, found by the socket's inode among the
 * links in /proc/PID/fd.
 */
import { readFile, readdir, readlink } from 'node:fs/promises';
import { basename } from 'node:path';
import type { PortUse, Proto, SocketHolder } from './facts.js';

/** The TCP state of a listening socket in /proc/net/tcp. */
const TCP_LISTEN = '0A';

/** One line of /proc/net/{tcp,udp}[6], the fields a port check needs. */
export interface ProcNetSocket {
  port: number;
  address: string;
  state: string;
  inode: number;
}

/** Parses a /proc/net/tcp, tcp6, udp or udp6 table (header line first). */
export function parseProcNet(text: string): ProcNetSocket[] {
  const out: ProcNetSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [addrHex, portHex] = f[1]!.split(':') as [string, string | undefined];
    if (portHex === undefined) continue;
    out.push({ port: parseInt(portHex, 16), address: decodeAddress(addrHex), state: f[3]!, inode: Number(f[9]) });
  }
  return out;
}

/**
 * /proc/net writes an address as the kernel holds it: 32-bit words in the
 * host's byte order (little-endian on every platform airlock ships for).
 */
export function decodeAddress(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8);
    for (let b = 6; b >= 0; b -= 2) bytes.push(parseInt(word.slice(b, b + 2), 16));
  }
  if (bytes.length === 4) return bytes.join('.');
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // The URL parser writes an IPv6 address in its short, canonical form.
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}

/** TCP listeners and bound UDP sockets on `ports`, from this namespace's /proc/net tables. */
export async function socketsOn(ports: readonly { port: number; proto: Proto }[], procRoot = '/proc'): Promise<PortUse[]> {
  const uses: Omit<PortUse, 'holders' | 'kernel'>[] = [];
  for (const proto of ['tcp', 'udp'] as const) {
    const wanted = new Set(ports.filter((p) => p.proto === proto).map((p) => p.port));
    if (wanted.size === 0) continue;
    for (const table of [proto, `${proto}6`]) {
      const text = await readFile(`${procRoot}/net/${table}`, 'utf8').catch(() => '');
      for (const s of parseProcNet(text)) {
        if (!wanted.has(s.port) || (proto === 'tcp' && s.state !== TCP_LISTEN)) continue;
        uses.push({ port: s.port, proto, address: s.address, inode: s.inode });
      }
    }
  }
  const owners = await socketHolders(new Set(uses.map((u) => u.inode)), procRoot);
  // Only root sees every process's descriptors; to anyone else an unheld socket may be another user's.
  const seesAll = process.getuid?.() === 0;
  return uses.map((u) => {
    const holders = owners.get(u.inode) ?? [];
    return { ...u, holders, kernel: holders.length === 0 && seesAll };
  });
}

/** The processes that have these socket inodes open; a scan of /proc/PID/fd, skipped when none is asked. */
export async function socketHolders(inodes: ReadonlySet<number>, procRoot = '/proc'): Promise<Map<number, SocketHolder[]>> {
  const found = new Map<number, SocketHolder[]>();
  if (inodes.size === 0) return found;
  const pids = (await readdir(procRoot)).filter((n) => /^\d+$/.test(n));
  await Promise.all(
    pids.map(async (pid) => {
      // A process that ends meanwhile, or one this user may not look into, is passed over.
      const fds = await readdir(`${procRoot}/${pid}/fd`).catch(() => [] as string[]);
      const mine = new Set<number>();
      for (const fd of fds) {
        const target = await readlink(`${procRoot}/${pid}/fd/${fd}`).catch(() => '');
        const m = /^socket:\[(\d+)\]$/.exec(target);
        if (m && inodes.has(Number(m[1]))) mine.add(Number(m[1]));
      }
      if (mine.size === 0) return;
      const comm = (await readFile(`${procRoot}/${pid}/comm`, 'utf8').catch(() => '?')).trim();
      const exe = await readlink(`${procRoot}/${pid}/exe`).catch(() => undefined);
      const holder: SocketHolder = { pid: Number(pid), comm, ...(exe && !basename(exe).startsWith(comm) ? { exe } : {}) };
      for (const inode of mine) found.set(inode, [...(found.get(inode) ?? []), holder]);
    }),
  );
  for (const list of found.values()) list.sort((a, b) => a.pid - b.pid);
  return found;
}
