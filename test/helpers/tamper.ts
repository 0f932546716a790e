/**
 * Tools to damage bundles on purpose: read a bundle's tar entries into
 * memory, rewrite, insert, remove or reorder them (including entries no
 * honest builder writes: links, devices, FIFOs, directories, raw names),
 * re-sign a changed manifest, and change the file at byte level.
 *
 * Everything works on Buffers, so keep to small bundles (a few MiB).
 */
import { readdir } from 'node:fs/promises';
import { createHash, type KeyObject } from 'node:crypto';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { canonicalBytes } from '../../src/bundle/canonical-json.js';
import { blobEntryName, MANIFEST_ENTRY, SIGNATURE_ENTRY, type BlobRecord, type Manifest, type SignatureRecord } from '../../src/bundle/manifest.js';
import { keyIdOf, signBytes } from '../../src/trust/keys.js';

export type EntryType =
  | 'file'
  | 'link'
  | 'symlink'
  | 'character-device'
  | 'block-device'
  | 'directory'
  | 'fifo'
  | 'contiguous-file'
  | 'pax-header'
  | 'pax-global-header'
  | 'gnu-long-path';

const TYPEFLAG: Record<EntryType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  'character-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
  'contiguous-file': '7',
  'pax-header': 'x',
  'pax-global-header': 'g',
  'gnu-long-path': 'L',
};

/** One tar entry as it will be written: the header may lie about the data. */
export interface RawEntry {
  name: string;
  type: EntryType;
  data: Buffer;
  /** Size written in the header; defaults to `data.length`. */
  size?: number;
  linkname?: string;
  mode?: number;
  devmajor?: number;
  devminor?: number;
  /** Written as a PAX extended header just before this entry. */
  pax?: Record<string, string>;
}

export const BLOCK = 512;
const MTIME = 1_700_000_000;

const padded = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

function writeOctal(buf: Buffer, value: number, offset: number, width: number): void {
  const digits = value.toString(8);
  if (digits.length > width - 1) {
    // base-256, as GNU tar writes sizes of 8 GiB and more
    buf[offset] = 0x80;
    let v = value;
    for (let i = offset + width - 1; i > offset; i--) {
      buf[i] = v % 256;
      v = Math.floor(v / 256);
    }
    return;
  }
  buf.write(digits.padStart(width - 1, '0') + '\0', offset, 'latin1');
}

/** Sums a header block with the checksum field read as spaces. */
export function headerChecksum(block: Buffer): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += block[i]!;
  for (let i = 156; i < BLOCK; i++) sum += block[i]!;
  return sum;
}

/** Recomputes the checksum of the header block at `offset`, in place. */
export function fixChecksum(buf: Buffer, offset = 0): void {
  const block = buf.subarray(offset, offset + BLOCK);
  block.write(headerChecksum(block).toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
}

/** One ustar header block. Names up to 100 bytes go in `name`, longer ones use `prefix`. */
export function encodeHeader(e: { name: string; type: EntryType; size: number; linkname?: string; mode?: number; devmajor?: number; devminor?: number }): Buffer {
  const block = Buffer.alloc(BLOCK);
  let name = Buffer.from(e.name, 'utf8');
  let prefix = Buffer.alloc(0);
  if (name.length > 100) {
    const cut = e.name.lastIndexOf('/', e.name.length - 1);
    prefix = Buffer.from(e.name.slice(0, cut), 'utf8');
    name = Buffer.from(e.name.slice(cut + 1), 'utf8');
    if (name.length > 100 || prefix.length > 155) throw new Error(`name too long for ustar: ${e.name}`);
  }
  name.copy(block, 0);
  writeOctal(block, e.mode ?? (e.type === 'directory' ? 0o755 : 0o644), 100, 8);
  writeOctal(block, 0, 108, 8);
  writeOctal(block, 0, 116, 8);
  writeOctal(block, e.size, 124, 12);
  writeOctal(block, MTIME, 136, 12);
  block.write(TYPEFLAG[e.type], 156, 'latin1');
  if (e.linkname) Buffer.from(e.linkname, 'utf8').copy(block, 157, 0, 100);
  block.write('ustar\0', 257, 'latin1');
  block.write('00', 263, 'latin1');
  writeOctal(block, e.devmajor ?? 0, 329, 8);
  writeOctal(block, e.devminor ?? 0, 337, 8);
  prefix.copy(block, 345);
  fixChecksum(block);
  return block;
}

/** PAX records: "<len> key=value\n", where len counts the whole record. */
export function encodePax(fields: Record<string, string>): Buffer {
  let out = '';
  for (const [k, v] of Object.entries(fields)) {
    const body = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(body) + 1;
    while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
    out += `${len}${body}`;
  }
  return Buffer.from(out, 'utf8');
}

/** Writes `entries` as a tar, with the two-zero-block trailer unless `trailer: false`. */
export function packEntries(entries: RawEntry[], opts: { trailer?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  const put = (data: Buffer) => {
    parts.push(data);
    const pad = padded(data.length) - data.length;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  };
  for (const e of entries) {
    if (e.pax) {
      const pax = encodePax(e.pax);
      parts.push(encodeHeader({ name: 'PaxHeader', type: 'pax-header', size: pax.length }));
      put(pax);
    }
    parts.push(encodeHeader({ ...e, size: e.size ?? e.data.length }));
    put(e.data);
  }
  if (opts.trailer !== false) parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

/** The entries of a tar as tar-stream sees them (PAX and GNU long names already applied). */
export async function readEntries(bundle: Buffer): Promise<RawEntry[]> {
  const extract = tar.extract();
  Readable.from([bundle]).pipe(extract);
  const out: RawEntry[] = [];
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    const h = entry.header;
    out.push({
      name: h.name,
      type: (h.type ?? 'file') as EntryType,
      data: Buffer.concat(chunks),
      ...(h.linkname ? { linkname: h.linkname } : {}),
      ...(h.mode !== undefined ? { mode: h.mode } : {}),
    });
  }
  return out;
}

/** Where each entry of a plain ustar archive sits in the file. */
export interface EntrySpan {
  name: string;
  typeflag: string;
  headerOffset: number;
  dataOffset: number;
  size: number;
  /** Offset just past the entry's padded data: the next header. */
  end: number;
}

/** Walks the headers of a tar without tar-stream, up to the first zero block. */
export function layout(buf: Buffer): EntrySpan[] {
  const spans: EntrySpan[] = [];
  let off = 0;
  while (off + BLOCK <= buf.length) {
    const block = buf.subarray(off, off + BLOCK);
    if (block.every((b) => b === 0)) break;
    const nul = block.indexOf(0);
    const name = block.subarray(0, nul >= 0 && nul < 100 ? nul : 100).toString('utf8');
    const size = parseInt(block.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    const dataOffset = off + BLOCK;
    const end = dataOffset + padded(size);
    spans.push({ name, typeflag: String.fromCharCode(block[156]!), headerOffset: off, dataOffset, size, end });
    off = end;
  }
  return spans;
}

export function spanOf(buf: Buffer, name: string): EntrySpan {
  const s = layout(buf).find((x) => x.name === name);
  if (!s) throw new Error(`no entry ${name} in the bundle`);
  return s;
}

/* ---- byte-level damage ---- */

export const truncateAt = (buf: Buffer, length: number): Buffer => Buffer.from(buf.subarray(0, length));
export const appendBytes = (buf: Buffer, extra: Buffer): Buffer => Buffer.concat([buf, extra]);

/** A copy of `buf` with the byte at `offset` XORed with `mask`. */
export function flipByte(buf: Buffer, offset: number, mask = 0x01): Buffer {
  if (offset < 0 || offset >= buf.length) throw new Error(`offset ${offset} outside 0..${buf.length}`);
  const out = Buffer.from(buf);
  out[offset]! ^= mask;
  return out;
}

/* ---- signing ---- */

export const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** A manifest.sig entry's bytes for `manifestBytes`, with fields overridable to make bad ones. */
export function signatureFor(manifestBytes: Buffer, key: KeyObject, override: Partial<Record<keyof SignatureRecord, unknown>> = {}): Buffer {
  const record: Record<string, unknown> = {
    algorithm: 'ed25519',
    keyId: keyIdOf(key),
    signature: signBytes(manifestBytes, key).toString('base64'),
    ...override,
  };
  return canonicalBytes(record);
}

/* ---- entry-level editing ---- */

/**
 * A bundle held in memory as entries. Every edit returns a new Bundle, so
 * one good bundle can be the parent of any number of bad ones.
 */
export class Bundle {
  constructor(readonly entries: readonly RawEntry[]) {}

  static async from(buf: Buffer): Promise<Bundle> {
    return new Bundle(await readEntries(buf));
  }

  get names(): string[] {
    return this.entries.map((e) => e.name);
  }

  indexOf(name: string): number {
    const i = this.entries.findIndex((e) => e.name === name);
    if (i < 0) throw new Error(`no entry ${name} in the bundle`);
    return i;
  }

  entry(name: string): RawEntry {
    return this.entries[this.indexOf(name)]!;
  }

  get manifestBytes(): Buffer {
    return this.entry(MANIFEST_ENTRY).data;
  }

  /** A fresh, mutable copy of the parsed manifest. */
  get manifest(): Manifest {
    return JSON.parse(this.manifestBytes.toString('utf8')) as Manifest;
  }

  /** Entry names of the blobs, in bundle order. */
  get blobNames(): string[] {
    return this.names.filter((n) => n.startsWith('blobs/'));
  }

  with(entries: RawEntry[]): Bundle {
    return new Bundle(entries);
  }

  replace(name: string, change: (e: RawEntry) => RawEntry): Bundle {
    const i = this.indexOf(name);
    const copy = [...this.entries];
    copy[i] = change({ ...copy[i]! });
    return this.with(copy);
  }

  insert(index: number, ...entries: RawEntry[]): Bundle {
    const copy = [...this.entries];
    copy.splice(index, 0, ...entries);
    return this.with(copy);
  }

  append(...entries: RawEntry[]): Bundle {
    return this.insert(this.entries.length, ...entries);
  }

  remove(name: string): Bundle {
    const i = this.indexOf(name);
    return this.with(this.entries.filter((_, j) => j !== i));
  }

  /** Moves the entry called `name` to position `to` (counted after its removal). */
  move(name: string, to: number): Bundle {
    const e = this.entry(name);
    const rest = this.entries.filter((x) => x !== e);
    rest.splice(to, 0, e);
    return this.with(rest);
  }

  swap(a: string, b: string): Bundle {
    const i = this.indexOf(a);
    const j = this.indexOf(b);
    const copy = [...this.entries];
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    return this.with(copy);
  }

  /** Replaces the manifest bytes and leaves the old signature: it no longer matches. */
  withManifestBytes(bytes: Buffer): Bundle {
    return this.replace(MANIFEST_ENTRY, (e) => ({ ...e, data: bytes }));
  }

  withSignatureBytes(bytes: Buffer): Bundle {
    return this.replace(SIGNATURE_ENTRY, (e) => ({ ...e, data: bytes }));
  }

  /**
   * Writes `manifest` (an object, written canonically, or exact bytes) and
   * a fresh signature by `key` over those bytes.
   */
  resign(manifest: Manifest | Buffer, key: KeyObject, sigOverride: Partial<Record<keyof SignatureRecord, unknown>> = {}): Bundle {
    const bytes = Buffer.isBuffer(manifest) ? manifest : canonicalBytes(manifest);
    return this.withManifestBytes(bytes).withSignatureBytes(signatureFor(bytes, key, sigOverride));
  }

  /**
   * Adds a blob record and its entry at the position the sorted blob list
   * gives it, and re-signs. `entry` defaults to a file entry holding `stored`.
   */
  addBlob(record: BlobRecord, stored: Buffer, key: KeyObject, entry?: Partial<RawEntry>): Bundle {
    const m = this.manifest;
    m.blobs = [...m.blobs, record].sort((a, b) => (a.digest < b.digest ? -1 : 1));
    const at = m.blobs.findIndex((b) => b.digest === record.digest);
    const base = this.indexOf(SIGNATURE_ENTRY) + 1;
    return this.insert(base + at, { name: blobEntryName(record.digest), type: 'file', data: stored, ...entry }).resign(m, key);
  }

  pack(opts: { trailer?: boolean } = {}): Buffer {
    return packEntries([...this.entries], opts);
  }
}

export const fileEntry = (name: string, data: Buffer | string = ''): RawEntry => ({ name, type: 'file', data: Buffer.isBuffer(data) ? data : Buffer.from(data) });
export const specialEntry = (name: string, type: EntryType, extra: Partial<RawEntry> = {}): RawEntry => ({ name, type, data: Buffer.alloc(0), ...extra });

/** A folder's entries, sorted (with `recursive`, every path below it); none when it is not there. */
export async function listOrEmpty(dir: string, opts: { recursive?: boolean } = {}): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: opts.recursive ?? false })).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}
