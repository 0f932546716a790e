import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { Writable } from 'node:stream';
import type { BlobSink } from '../bundle/reader.js';
import { configError } from '../errors/index.js';
import type { Manifest, StackRecord } from '../bundle/manifest.js';
import { interpolationEnv, parseEnvFile } from '../compose/load/index.js';
import type { ComposeFileInput } from '../compose/load/index.js';
import type { ContentStore } from '../store/content-store.js';

/** Blobs from somewhere other than the content store (a bundle being planned, not imported). */
export interface BlobSource {
  readBlob: (digest: string) => Buffer;
}

/** Where a bundle's files appear to the compose loader: a view of the content store, never extracted. */
export const BUNDLE_ROOT = '/airlock-bundle';

export interface BundleStackFiles {
  files: ComposeFileInput[];
  workingDir: string;
  env: Record<string, string>;
  readFile: (absPath: string) => Buffer;
}

/**
 * A stack's compose files, env files and the bundle's extra files, read from
 * the content store by the paths the bundle gives them. Variables: the
 * process environment over the stack's env files.
 */
export function bundleStackFiles(store: ContentStore | BlobSource, manifest: Manifest, stack: StackRecord, processEnv: NodeJS.ProcessEnv = process.env): BundleStackFiles {
  const readBlob = 'readBlob' in store ? store.readBlob : (digest: string) => readFileSync(store.pathOf(digest));
  const byPath = new Map<string, string>();
  for (const f of [...stack.composeFiles, ...stack.envFiles]) byPath.set(posix.join(BUNDLE_ROOT, f.name), f.digest);
  for (const f of manifest.files) byPath.set(posix.join(BUNDLE_ROOT, f.path), f.digest);
  const readFile = (absPath: string): Buffer => {
    const digest = byPath.get(posix.normalize(absPath));
    if (!digest) {
      throw configError(`stack ${stack.name} needs ${posix.relative(BUNDLE_ROOT, absPath)}, which bundle ${manifest.name} ${manifest.version} does not carry`, {
        reason: 'file-not-in-bundle',
        hint: 'list the file under files: in bundle.yaml, at the path the compose file uses',
      });
    }
    return readBlob(digest);
  };
  const text = (name: string) => readFile(posix.join(BUNDLE_ROOT, name)).toString('utf8');
  const env = Object.fromEntries(Object.entries(processEnv).filter((e): e is [string, string] => e[1] !== undefined));
  const bundleVars = Object.fromEntries(stack.envFiles.flatMap((f) => parseEnvFile(f.name, text(f.name), (k) => env[k])));
  return {
    files: stack.composeFiles.map((f) => ({ name: f.name, content: text(f.name) })),
    workingDir: BUNDLE_ROOT,
    env: interpolationEnv([
      { source: 'environment', vars: env },
      { source: `bundle env files of stack ${stack.name}`, vars: bundleVars },
    ]),
    readFile,
  };
}

/** Blob kinds a plan needs to read: the stack files and extra files, all small. */
const PLAN_KINDS = new Set(['stack-file', 'env-file', 'file']);
const MAX_PLAN_BLOB = 16 * 1024 * 1024;

/** A sink for readBundle that keeps stack and extra files in memory and only hashes the rest. */
export function memoryBlobs(): { sink: BlobSink; source: BlobSource } {
  const blobs = new Map<string, Buffer>();
  const sink: BlobSink = {
    open: async (blob) => {
      if (!PLAN_KINDS.has(blob.kind) || blob.size > MAX_PLAN_BLOB) return null;
      const chunks: Buffer[] = [];
      return new Writable({
        write(chunk: Buffer, _e, cb) {
          chunks.push(chunk);
          cb();
        },
        final(cb) {
          blobs.set(blob.digest, Buffer.concat(chunks));
          cb();
        },
      });
    },
  };
  return {
    sink,
    source: {
      readBlob: (digest) => {
        const b = blobs.get(digest);
        if (!b) throw configError(`blob ${digest} is not a stack or extra file of this bundle`, { reason: 'file-not-in-bundle' });
        return b;
      },
    },
  };
}
