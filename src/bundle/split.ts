/**
 * Cuts a finished bundle file into parts of a fixed size and writes the
 * signed index that names them (format in parts.ts and
 * docs/bundle-format.md, "Split parts"). The same bundle, size and key
 * always give the same parts and index bytes.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { open, readdir, rename, rm } from 'node:fs/promises';
import { makeDirs } from '../store/make-dirs.js';
import { basename, join } from 'node:path';
import { usageError } from '../errors/index.js';
import { writeWhole } from '../store/durable.js';
import { keyIdOf, verifyBytes } from '../trust/keys.js';
import { parseManifest, parseSignatures } from './manifest.js';
import { indexFileName, isPartsIndex, partFileName, partNameOf, PARTS_FORMAT, signedIndexBytes, stemOf, type PartRecord, type PartsIndexBody } from './parts.js';
import { openBundleFile, readBundleHead, sha256Hex } from './reader.js';

/** Below this, a bundle would become thousands of files; no FTP limit is that small. */
export const MIN_PART_BYTES = 1024 * 1024;
const CHUNK = 1024 * 1024;
const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** `100M`, `1G`, `1536K`, `2GiB` or plain bytes; binary units (K = 1024). */
export function parseSplitSize(text: string, flag = '--split'): number {
  const m = /^(\d+)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  const size = m ? Number(m[1]) * UNITS[m[2]!.toUpperCase()]! : NaN;
  if (!Number.isSafeInteger(size)) {
    throw usageError(`${flag} takes a size such as 100M, 1G, 1536K or a number of bytes, not "${text}"`, { hint: 'units are binary: K = 1024 bytes, M = 1024 K, G = 1024 M' });
  }
  if (size < MIN_PART_BYTES) {
    throw usageError(`${flag} ${text} is below the smallest part size, 1M (${MIN_PART_BYTES} bytes)`, { hint: 'parts that small would make thousands of files; pick the largest size the channel takes' });
  }
  return size;
}

export interface SplitOptions {
  partSize: number;
  /** The vendor key that signed the bundle; it signs the index too. */
  key: KeyObject;
  /** Where the parts and index go; defaults to the bundle's folder. */
  outDir: string;
}

export interface SplitResult {
  indexPath: string;
  index: PartsIndexBody;
  keyId: string;
}

/**
 * Splits `bundlePath` into `<stem>.airlock.part-NNNN` files and writes
 * `<stem>.airlock.parts`, the index, last. The bundle's head must parse and
 * be signed by `key`: the index vouches for the same bundle.
 */
export async function splitBundleFile(bundlePath: string, opts: SplitOptions): Promise<SplitResult> {
  if (isPartsIndex(bundlePath)) throw usageError(`${bundlePath} is a parts index already; split the bundle file itself`);
  const head = await readBundleHead(await openBundleFile(bundlePath));
  const manifest = parseManifest(head.manifestBytes);
  const keyId = keyIdOf(opts.key);
  const sigs = head.signatureBytes ? parseSignatures(head.signatureBytes) : [];
  const sig = sigs.find((s) => s.keyId === keyId && s.algorithm === 'ed25519');
  if (!sig || !verifyBytes(head.manifestBytes, Buffer.from(sig.signature, 'base64'), createPublicKey(opts.key))) {
    throw usageError(`${bundlePath} is ${sigs.length > 0 ? `signed by key ${sigs.map((s) => s.keyId).join(', ')}` : 'unsigned'}, not by --key ${keyId}`, {
      subject: bundlePath,
      hint: 'sign the parts index with the key that signed the bundle',
    });
  }
  makeDirs(opts.outDir, { what: 'output folder' });
  const stem = stemOf(bundlePath);
  const { parts, size, sha256 } = await writeParts(bundlePath, stem, opts);
  const index: PartsIndexBody = {
    format: PARTS_FORMAT,
    file: basename(bundlePath),
    name: manifest.name,
    version: manifest.version,
    manifestDigest: `sha256:${sha256Hex(head.manifestBytes)}`,
    size,
    sha256,
    parts,
  };
  await removeStaleParts(opts.outDir, stem, parts.length);
  const indexPath = join(opts.outDir, indexFileName(stem));
  // Its folder fsync makes the parts' renames durable too: they are in the same folder.
  await writeWhole(indexPath, signedIndexBytes(index, opts.key));
  return { indexPath, index, keyId };
}

/** One pass over the bundle: each part written to a temporary name, then renamed whole. */
async function writeParts(bundlePath: string, stem: string, opts: SplitOptions): Promise<{ parts: PartRecord[]; size: number; sha256: string }> {
  const whole = createHash('sha256');
  const parts: PartRecord[] = [];
  const src = await open(bundlePath, 'r');
  const buf = Buffer.allocUnsafe(CHUNK);
  let pos = 0;
  try {
    for (let n = 1; ; n++) {
      const name = partFileName(stem, n);
      const path = join(opts.outDir, name);
      const out = await open(`${path}.partial`, 'w');
      const hash = createHash('sha256');
      let size = 0;
      try {
        while (size < opts.partSize) {
          const { bytesRead } = await src.read(buf, 0, Math.min(CHUNK, opts.partSize - size), pos);
          if (bytesRead === 0) break;
          const chunk = buf.subarray(0, bytesRead);
          await out.write(chunk);
          hash.update(chunk);
          whole.update(chunk);
          size += bytesRead;
          pos += bytesRead;
        }
        await out.sync();
      } finally {
        await out.close();
      }
      if (size === 0) {
        await rm(`${path}.partial`, { force: true });
        break;
      }
      await rename(`${path}.partial`, path);
      parts.push({ name, size, sha256: hash.digest('hex') });
      if (size < opts.partSize) break;
    }
  } finally {
    await src.close();
  }
  return { parts, size: pos, sha256: whole.digest('hex') };
}

/** Parts of an earlier, longer split of the same stem would look like they belong to the new index. */
async function removeStaleParts(dir: string, stem: string, count: number): Promise<void> {
  for (const name of await readdir(dir)) {
    const p = partNameOf(name);
    if (p && p.stem === stem && p.number > count && name === partFileName(stem, p.number)) await rm(join(dir, name), { force: true });
  }
}
