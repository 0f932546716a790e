/**
 * Split test releases: a release of the test app with a bulk layer, cut
 * into parts by the real `airlock bundle split`, in a folder of its own.
 */
import assert from 'node:assert/strict';
import { basename, join } from 'node:path';
import { buildRelease, type Bench, type ReleaseOptions } from './apply.js';
import { runCli } from './fixtures.js';

export interface Split {
  /** The folder holding the parts and the index. */
  dir: string;
  /** File name of the index, `<stem>.airlock.parts`. */
  index: string;
  /** File names of the parts, in order. */
  parts: string[];
}

/** About 3 MiB (bulkBytes), split into 1 MiB parts: four of them. */
export async function splitRelease(bench: Pick<Bench, 'dir' | 'signer'>, opts: ReleaseOptions): Promise<Split> {
  const bundle = await buildRelease(bench as Bench, { bulkBytes: 3 << 20, ...opts });
  const dir = join(bench.dir, 'split', `${opts.stack ?? 'web'}-${opts.version}`);
  const r = await runCli(['bundle', 'split', bundle, '--size', '1M', '--key', bench.signer.keyPath, '-o', dir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { index: string; parts: { name: string }[] };
  assert.ok(out.parts.length >= 4, `expected 4 or more parts, got ${out.parts.length}`);
  return { dir, index: basename(out.index), parts: out.parts.map((p) => p.name) };
}

/** A file name as a regular expression source, dots escaped. */
export const literal = (name: string): string => name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
