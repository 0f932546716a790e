/**
 * What `bundle apply --inventory` sends to each host: the bundle file, or
 * for a split bundle every part and then its index. Checked on the jump box
 * before any host is contacted: a missing, short or damaged local part is
 * refused here, naming it, so nothing half-right is uploaded anywhere.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { damagedPart } from '../bundle/parts.js';
import { partsSourceOf } from '../bundle/parts-stream.js';
import { parseManifest } from '../bundle/manifest.js';
import { openBundleFile, readBundleHead } from '../bundle/reader.js';

export interface FileToSend {
  path: string;
  name: string;
  size: number;
  sha256: string;
}

export interface RolloutFiles {
  /** The name and version from the signed manifest; size and sha256 of the whole bundle. */
  bundle: { name: string; version: string; sha256: string; bytes: number; parts?: number };
  stacks: number;
  /** In upload order: parts first, the index last, so a complete index never names a part not yet there. */
  files: FileToSend[];
}

export async function rolloutFiles(bundlePath: string): Promise<RolloutFiles> {
  // A split bundle: openBundleFile refuses a missing or wrong-size part before reading, naming every one.
  const opened = await openBundleFile(bundlePath);
  const parts = partsSourceOf(opened)?.parts;
  const head = await readBundleHead(opened);
  const manifest = parseManifest(head.manifestBytes);
  const index = await hashFile(bundlePath);
  const self: FileToSend = { path: bundlePath, name: basename(bundlePath), ...index };
  if (!parts) {
    return { bundle: { name: manifest.name, version: manifest.version, sha256: index.sha256, bytes: index.size }, stacks: manifest.stacks.length, files: [self] };
  }
  const files: FileToSend[] = [];
  for (const p of parts.index.parts) {
    const path = join(dirname(bundlePath), p.name);
    const got = await hashFile(path);
    if (got.sha256 !== p.sha256) throw damagedPart(p, got.sha256);
    files.push({ path, name: p.name, ...got });
  }
  const whole = parts.index;
  return { bundle: { name: manifest.name, version: manifest.version, sha256: whole.sha256, bytes: whole.size, parts: whole.parts.length }, stacks: manifest.stacks.length, files: [...files, self] };
}

async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), async function* (source) {
    for await (const chunk of source) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  });
  return { sha256: hash.digest('hex'), size };
}
