/**
 * What an engine binary needs of a host, read from its ELF file as it
 * streams past: the machine it is for (the ELF header), the C library it is
 * linked against (the program interpreter, PT_INTERP), and the newest glibc
 * symbol version it references (the `GLIBC_x.y` strings of its dynamic
 * string table). Only the first bytes are kept; the rest is scanned and let go.
 */

/** An executable's facts; null fields mean "not said by this file". */
export interface ElfFacts {
  /** Docker's (GOARCH) name of e_machine, or `elf-machine-N` for one Docker does not build for. */
  architecture: string;
  /** The program interpreter, e.g. `/lib64/ld-linux-x86-64.so.2`; null for a static binary. */
  interpreter: string | null;
  /** The highest `GLIBC_x.y[.z]` the file names, e.g. `2.38`; null when it names none. */
  glibc: string | null;
}

/** The ELF header and program headers of every real executable sit in its first pages; .interp right after them. */
const HEAD_BYTES = 64 * 1024;
const PT_INTERP = 3;
/** `GLIBC_2.38\0`: the longest spelling is far shorter than this. */
const OVERLAP = 32;
const GLIBC_VERSION = /GLIBC_(\d+)\.(\d+)(?:\.(\d+))?\0/g;

/** e_machine → Docker's architecture name (GOARCH); ppc64 is little-endian unless the header says otherwise. */
const MACHINES: Record<number, string> = { 3: '386', 8: 'mips', 21: 'ppc64le', 22: 's390x', 40: 'arm', 62: 'amd64', 183: 'arm64', 243: 'riscv64', 258: 'loong64' };

/** Why a file is not an ELF executable this reader can use; thrown by ElfScanner.finish. */
export class NotElf extends Error {}

/** Feed it a file's bytes in order, then ask for its facts. */
export class ElfScanner {
  private head: Buffer[] = [];
  private headBytes = 0;
  private carry: Buffer = Buffer.alloc(0);
  private newest: [number, number, number] | null = null;

  update(chunk: Buffer): void {
    if (this.headBytes < HEAD_BYTES) {
      const part = chunk.subarray(0, HEAD_BYTES - this.headBytes);
      this.head.push(part);
      this.headBytes += part.length;
    }
    // Scan with the end of the last chunk in front, so a string cut between chunks is still seen.
    const text = Buffer.concat([this.carry, chunk]).toString('latin1');
    for (const m of text.matchAll(GLIBC_VERSION)) {
      const v: [number, number, number] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
      if (this.newest === null || compare(v, this.newest) > 0) this.newest = v;
    }
    this.carry = chunk.length >= OVERLAP ? chunk.subarray(chunk.length - OVERLAP) : Buffer.concat([this.carry, chunk]).subarray(-OVERLAP);
  }

  finish(): ElfFacts {
    const h = Buffer.concat(this.head);
    if (h.length < 52 || h.readUInt32BE(0) !== 0x7f454c46) throw new NotElf('is not an ELF executable');
    const is64 = h[4] === 2;
    const little = h[5] === 1;
    if ((h[4] !== 1 && !is64) || (h[5] !== 1 && h[5] !== 2) || (is64 && h.length < 64)) throw new NotElf('has an ELF header this reader does not know');
    const u16 = (o: number) => (little ? h.readUInt16LE(o) : h.readUInt16BE(o));
    const u32 = (o: number) => (little ? h.readUInt32LE(o) : h.readUInt32BE(o));
    const word = (o: number) => (is64 ? Number(little ? h.readBigUInt64LE(o) : h.readBigUInt64BE(o)) : u32(o));
    const machine = u16(18);
    const architecture = machine === 21 && !little ? 'ppc64' : (MACHINES[machine] ?? `elf-machine-${machine}`);
    const phoff = word(is64 ? 32 : 28);
    const phentsize = u16(is64 ? 54 : 42);
    const phnum = u16(is64 ? 56 : 44);
    let interpreter: string | null = null;
    for (let i = 0; i < phnum; i++) {
      const at = phoff + i * phentsize;
      if (at + phentsize > h.length) throw new NotElf(`has program headers beyond its first ${HEAD_BYTES / 1024} KiB`);
      if (u32(at) !== PT_INTERP) continue;
      const offset = word(at + (is64 ? 8 : 4));
      const size = word(at + (is64 ? 32 : 16));
      if (offset + size > h.length) throw new NotElf(`has its program interpreter beyond its first ${HEAD_BYTES / 1024} KiB`);
      interpreter = h.subarray(offset, offset + size).toString('latin1').replace(/\0.*$/s, '');
    }
    const glibc = this.newest === null ? null : this.newest[2] === 0 ? `${this.newest[0]}.${this.newest[1]}` : this.newest.join('.');
    return { architecture, interpreter, glibc };
  }
}

function compare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/** Compares two glibc versions (`2.38` < `2.41`), for the highest of several binaries. */
export const compareGlibc = (a: string, b: string): number => compare(versionParts(a), versionParts(b));
const versionParts = (v: string): number[] => [...v.split('.').map(Number), 0, 0].slice(0, 3);

/** Which C library an interpreter belongs to: null (static), glibc's ld-linux, musl's ld-musl, or one airlock does not know. */
export function libcOf(interpreter: string | null): 'static' | 'glibc' | 'musl' | 'unknown' {
  if (interpreter === null) return 'static';
  const name = interpreter.slice(interpreter.lastIndexOf('/') + 1);
  if (name.startsWith('ld-musl-')) return 'musl';
  if (name.startsWith('ld-linux') || name === 'ld.so.1' || name.startsWith('ld64.so')) return 'glibc';
  return 'unknown';
}
