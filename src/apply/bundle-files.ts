import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { Writable } from 'node:stream';
import type { BlobSink } from '../bundle/reader.js';
import { configError } from '../errors/index.js';
import { BUNDLE_ROOT } from '../bundle/bundle-root.js';
import type { Manifest, StackRecord } from '../bundle/manifest.js';
import { interpolationEnv, parseEnvFile } from '../compose/load/index.js';
import type { ComposeFileInput } from '../compose/load/index.js';
import type { NameSuffix } from '../compose/convert/index.js';
import type { ContentStore } from '../store/content-store.js';
import type { HostKeys, Opened } from '../seal/host-keys.js';
import { keyedNameSuffix } from '../seal/names.js';

/** Blobs from somewhere other than the content store (a bundle being planned, not imported). */
export interface BlobSource {
  readBlob: (digest: string) => Buffer;
}

export { BUNDLE_ROOT } from '../bundle/bundle-root.js';

export interface BundleStackFiles {
  files: ComposeFileInput[];
  workingDir: string;
  env: Record<string, string>;
  readFile: (absPath: string) => Buffer;
  nameSuffix: (objectFiles: string[]) => Promise<NameSuffix>;
  sealedBlobOf: (absPath: string) => string | undefined;
}

/**
 * A stack's compose files, env files and the bundle's extra files, read from
 * the content store by the paths the bundle gives them. Variables: the
 * process environment over the stack's env files. Sealed files are opened
 * here, in memory, with the host's identities: their values never reach a
 * file, and the journal keeps their sealed blobs.
 */
export async function bundleStackFiles(
  store: ContentStore | BlobSource,
  manifest: Manifest,
  stack: StackRecord,
  keys: HostKeys,
  processEnv: NodeJS.ProcessEnv = process.env,
): Promise<BundleStackFiles> {
  const readBlob = 'readBlob' in store ? store.readBlob : (digest: string) => readFileSync(store.pathOf(digest));
  const byPath = new Map<string, { digest: string; sealed?: true }>();
  for (const f of [...stack.composeFiles, ...stack.envFiles, ...manifest.files.map((x) => ({ ...x, name: x.path }))]) {
    byPath.set(posix.join(BUNDLE_ROOT, f.name), f.sealed ? { digest: f.digest, sealed: true } : { digest: f.digest });
  }
  const opened = new Map<string, Opened>();
  for (const [path, f] of byPath) {
    if (f.sealed) opened.set(path, await keys.open(readBlob(f.digest), `${posix.relative(BUNDLE_ROOT, path)} of bundle ${manifest.name} ${manifest.version}`));
  }
  const entry = (absPath: string) => {
    const path = posix.normalize(absPath);
    const f = byPath.get(path);
    if (!f) {
      throw configError(`stack ${stack.name} needs ${posix.relative(BUNDLE_ROOT, absPath)}, which bundle ${manifest.name} ${manifest.version} does not carry`, {
        reason: 'file-not-in-bundle',
        hint: 'list the file under files: in bundle.yaml, at the path the compose file uses',
      });
    }
    return { path, ...f };
  };
  const readFile = (absPath: string): Buffer => {
    const f = entry(absPath);
    const o = opened.get(f.path);
    return o ? Buffer.from(o.plaintext) : readBlob(f.digest);
  };
  // A sealed value is named with the key of the identity that opened it; one in clear with the host's.
  const nameSuffix = async (objectFiles: string[]): Promise<NameSuffix> => {
    const plainKey = objectFiles.some((p) => !opened.has(posix.normalize(p))) ? await keys.plainNamesKey() : undefined;
    return (name, data, absPath) => keyedNameSuffix(name, data, opened.get(posix.normalize(absPath))?.namesKey ?? plainKey!);
  };
  const sealedBlobOf = (absPath: string) => {
    const f = byPath.get(posix.normalize(absPath));
    return f?.sealed ? f.digest : undefined;
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
    nameSuffix,
    sealedBlobOf,
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
