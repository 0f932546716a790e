/**
 * The known_hosts file, as OpenSSH writes and matches it: parsing (markers,
 * patterns, hashed names), matching a host, naming a key (type,
 * fingerprint), and appending a newly trusted key.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { configError } from '../errors/index.js';
import { makeDirs } from '../store/make-dirs.js';

export interface KnownHostEntry {
  marker?: '@revoked' | '@cert-authority';
  /** The host patterns field: `addr`, `[addr]:port`, comma lists, wildcards, or a `|1|salt|hash` hash. */
  hosts: string;
  type: string;
  key: Buffer;
  /** 1-based line in the file. */
  line: number;
}

/** Parses a known_hosts file; a missing file is an empty list. */
export async function readKnownHosts(file: string): Promise<KnownHostEntry[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw configError(`cannot read known_hosts file ${file}: ${(e as Error).message}`, { reason: 'known-hosts', subject: file });
  }
  return parseKnownHosts(text);
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/);
    if (fields[0] === undefined || fields[0] === '' || fields[0].startsWith('#')) return;
    let marker: KnownHostEntry['marker'];
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') marker = fields.shift() as KnownHostEntry['marker'];
    else if (fields[0].startsWith('@')) return;
    const [hosts, type, b64] = fields;
    if (!hosts || !type || !b64) return;
    const key = Buffer.from(b64, 'base64');
    if (key.length === 0) return;
    out.push({ ...(marker ? { marker } : {}), hosts, type, key, line: i + 1 });
  });
  return out;
}

/** Whether a known_hosts host field names `hostString` (`addr` or `[addr]:port`), as OpenSSH matches it. */
export function hostMatches(field: string, hostString: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const want = Buffer.from(hash, 'base64');
    const got = createHmac('sha1', Buffer.from(salt, 'base64')).update(hostString).digest();
    return want.length === got.length && timingSafeEqual(want, got);
  }
  let matched = false;
  for (const pattern of field.toLowerCase().split(',')) {
    const negated = pattern.startsWith('!');
    const p = negated ? pattern.slice(1) : pattern;
    const re = new RegExp(`^${p.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\[/g, '\\[').replace(/\]/g, '\\]').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    if (re.test(hostString)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** The key type named inside an SSH wire-format public key. */
export function keyType(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const n = key.readUInt32BE(0);
  return key.subarray(4, 4 + n).toString('latin1');
}

/** `SHA256:…`, as ssh-keygen -l prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

const appending = new Map<string, Promise<void>>();

/** Appends one line, serialised per file within this process; creates the file 0600 (and its folder 0700). */
export function appendKnownHost(file: string, line: string): Promise<void> {
  const next = (appending.get(file) ?? Promise.resolve()).then(async () => {
    makeDirs(dirname(file), { mode: 0o700, what: 'folder of known hosts file' });
    const fh = await open(file, 'a+', 0o600);
    try {
      const { size } = await fh.stat();
      let sep = '';
      if (size > 0) {
        const last = Buffer.alloc(1);
        await fh.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) sep = '\n';
      }
      await fh.appendFile(`${sep}${line}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
  appending.set(
    file,
    next.catch(() => undefined),
  );
  return next;
}
