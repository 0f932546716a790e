/**
 * The CLI side of split parts: `bundle split`, `bundle build --split` and
 * what `bundle inspect` shows for a parts index.
 */
import type { KeyObject } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AirlockError, usageError } from '../../errors/index.js';
import { checkIndexSignature, checkParts, readPartsIndex, type PartsIndex } from '../../bundle/parts.js';
import { parseSplitSize, splitBundleFile, type SplitResult } from '../../bundle/split.js';
import type { TrustStore } from '../../trust/trust-store.js';
import { signingKeyFile } from '../trust-inputs.js';
import { jsonOpt, stringOpt, type Command, str } from '../command.js';
import { table } from '../format.js';
import { formatBytes } from '../../units/bytes.js';


export const splitJson = (r: SplitResult) => ({
  index: r.indexPath,
  keyId: r.keyId,
  bytes: r.index.size,
  sha256: r.index.sha256,
  parts: r.index.parts,
});

export function splitLines(r: SplitResult): string[] {
  const largest = Math.max(...r.index.parts.map((p) => p.size));
  return [
    `wrote ${r.index.parts.length} parts of at most ${formatBytes(largest)} and the index ${r.indexPath}, signed by ${r.keyId}`,
    '',
    table([['PART', 'SIZE', 'SHA256'], ...r.index.parts.map((p) => [p.name, String(p.size), p.sha256])]),
  ];
}

/** For `bundle build --split`: the whole file the builder wrote becomes parts, and goes. */
export async function splitBuilt(path: string, partSize: number, key: KeyObject): Promise<SplitResult> {
  const r = await splitBundleFile(path, { partSize, key, outDir: dirname(path) });
  await rm(path);
  return r;
}

export { parseSplitSize };

export interface PartsStatus {
  index: string;
  name: string;
  version: string;
  manifestDigest: string;
  bytes: number;
  signature: { status: string; keyId: string; message?: string };
  complete: boolean;
  parts: { name: string; size: number; status: 'present' | 'missing' | 'wrong-size'; found?: number }[];
}

/** What `bundle inspect INDEX` shows about the parts: which are there, which are missing. */
export async function partsStatus(indexPath: string, trust: () => Promise<TrustStore>): Promise<PartsStatus> {
  const idx: PartsIndex = await readPartsIndex(indexPath);
  let signature: PartsStatus['signature'] = { status: 'valid', keyId: idx.signature.keyId };
  try {
    checkIndexSignature(indexPath, idx, await trust());
  } catch (e) {
    if (!(e instanceof AirlockError)) throw e;
    signature = { status: e.reason, keyId: idx.signature.keyId, message: e.message };
  }
  const check = await checkParts(indexPath, idx);
  const parts = idx.index.parts.map((p) => {
    const wrong = check.wrongSize.find((w) => w.name === p.name);
    if (check.missing.includes(p.name)) return { name: p.name, size: p.size, status: 'missing' as const };
    if (wrong) return { name: p.name, size: p.size, status: 'wrong-size' as const, found: wrong.size };
    return { name: p.name, size: p.size, status: 'present' as const };
  });
  const i = idx.index;
  return { index: indexPath, name: i.name, version: i.version, manifestDigest: i.manifestDigest, bytes: i.size, signature, complete: parts.every((p) => p.status === 'present'), parts };
}

export function partsStatusLines(s: PartsStatus): string[] {
  const missing = s.parts.filter((p) => p.status !== 'present');
  const sig = s.signature.status === 'valid' ? `valid, key ${s.signature.keyId}` : `${s.signature.status}, key ${s.signature.keyId}: ${s.signature.message}`;
  return [
    `index     ${s.index}: ${s.name} ${s.version} in ${s.parts.length} parts (${formatBytes(s.bytes)})`,
    `index sig ${sig}`,
    `parts     ${s.complete ? 'all present' : `${missing.length} of ${s.parts.length} not ready: ${missing.map((p) => p.name).join(', ')}`}`,
    ...(s.complete ? [] : ['', table([['PART', 'SIZE', 'STATUS'], ...s.parts.map((p) => [p.name, String(p.size), p.status === 'wrong-size' ? `wrong size (${p.found} bytes)` : p.status])])]),
  ];
}

export const bundleSplitCommand: Command = {
  path: ['bundle', 'split'],
  summary: 'cut a bundle into parts for a channel with a file-size limit',
  usage: 'airlock bundle split FILE.airlock --size SIZE --key KEY [-o DIR] [--json]',
  details:
    'Writes DIR/<stem>.airlock.part-0001, -0002, … of SIZE bytes each (the last one smaller) and the index\n' +
    'DIR/<stem>.airlock.parts, signed with KEY, which must be the key that signed the bundle. DIR defaults\n' +
    "to the bundle's folder. SIZE: 100M, 1G, 1536K or bytes (binary units), at least 1M.\n" +
    'Deliver the parts and the index in any order; hosts take the index wherever a bundle file goes and\n' +
    'import once every part is there. The bundle file is left as it is.',
  options: { size: stringOpt(), key: stringOpt(), out: stringOpt('o'), ...jsonOpt },
  args: { min: 1, max: 1 },
  async run({ positionals, values, json, out }) {
    const sizeText = str(values.size);
    if (!sizeText) throw usageError('--size SIZE is required, e.g. --size 100M');
    const partSize = parseSplitSize(sizeText, '--size');
    const keyPath = str(values.key);
    if (!keyPath) throw usageError('--key KEY is required: the parts index is signed like the bundle');
    const file = positionals[0]!;
    const r = await splitBundleFile(file, { partSize, key: await signingKeyFile(keyPath), outDir: str(values.out) ?? dirname(file) });
    out(json ? JSON.stringify(splitJson(r)) : splitLines(r).join('\n'));
  },
};
