/**
 * Blob encodings (docs/bundle-format.md section 5): the one place that makes
 * encoders and decoders, and that knows what this runtime can do. gzip is in
 * every Node; zstd only where node:zlib has it (Node 22.15 / 23.8 and later,
 * so the packaged Node 24 does, a Node 20 does not). Support is detected by
 * feature, never by version number.
 */
import type { Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { policyError, usageError } from '../errors/index.js';
import { carriedBlobs, type BlobEncoding, type Manifest } from './manifest.js';

/** An encoding that changes the bytes. */
export type Codec = Exclude<BlobEncoding, 'identity'>;

/** gzip -6: the zlib default, a fair balance for a format every host reads. */
export const GZIP_LEVEL = 6;
/**
 * zstd -9, measured on real binaries and libraries (bench/compression.ts,
 * docs/benchmarks.md): 85% of gzip -6's size, and faster to build; -3 gives
 * 94%, -19 76% but at 2 MiB/s. A reader never needs the level.
 */
export const ZSTD_LEVEL = 9;
/**
 * A decoder keeps one window of history: 2^27 = 128 MiB at most (zstd's own
 * default bound). -9 writes 8 MiB windows; a frame asking for more is refused.
 */
const ZSTD_WINDOW_LOG_MAX = 27;
const CHUNK = 1 << 20;

/** node:zlib's zstd API, which the Node 20 type definitions do not describe. */
interface ZstdApi {
  createZstdCompress(o: { chunkSize?: number; params: Record<number, number> }): Transform;
  createZstdDecompress(o: { chunkSize?: number; params: Record<number, number> }): Transform;
}
const zstdApi = zlib as unknown as Partial<ZstdApi>;
const zstdConstants = zlib.constants as unknown as { ZSTD_c_compressionLevel?: number; ZSTD_d_windowLogMax?: number };

export function hasZstd(): boolean {
  return typeof zstdApi.createZstdCompress === 'function' && typeof zstdApi.createZstdDecompress === 'function';
}

/** How messages name this runtime, e.g. "Node 20.20.2". */
export const runtimeLabel = (): string => `Node ${process.versions.node}`;

/** A compressor with fixed settings: the same input always gives the same bytes (with the same zlib/zstd). */
export function createEncoder(codec: Codec): Transform {
  if (codec === 'gzip') {
    // No file name or time in the header; fixed level and memory.
    return zlib.createGzip({ level: GZIP_LEVEL, memLevel: 9, strategy: zlib.constants.Z_DEFAULT_STRATEGY });
  }
  if (!hasZstd()) throw zstdUnavailableForBuild();
  return zstdApi.createZstdCompress!({ chunkSize: CHUNK, params: { [zstdConstants.ZSTD_c_compressionLevel!]: ZSTD_LEVEL } });
}

export function createDecoder(codec: Codec): Transform {
  if (codec === 'gzip') return zlib.createGunzip({ chunkSize: CHUNK });
  // checkDecodable refuses such a bundle before any blob is read; this is the last line.
  if (!hasZstd()) throw zstdUnavailableForRead();
  return zstdApi.createZstdDecompress!({ chunkSize: CHUNK, params: { [zstdConstants.ZSTD_d_windowLogMax!]: ZSTD_WINDOW_LOG_MAX } });
}

/** True for an error a decoder raises on data it cannot decode (zlib's Z_*, zstd's ZSTD_error_*). */
export const isDecodeError = (e: unknown): boolean => {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('Z_') || code.startsWith('ZSTD_error_'));
};

function zstdUnavailableForBuild() {
  return usageError(`--compress zstd needs a runtime with zstd, and this airlock runs on ${runtimeLabel()}, which has none`, {
    reason: 'usage',
    hint: 'use --compress gzip (or auto), or build with the packaged airlock, whose Node runtime has zstd',
  });
}

function zstdUnavailableForRead(subject?: string) {
  return policyError(`this airlock runs on ${runtimeLabel()}, which has no zstd, and the bundle${subject ? ` ${subject}` : ''} has zstd-compressed blobs`, {
    reason: 'zstd-unsupported',
    ...(subject === undefined ? {} : { subject }),
    hint: 'rebuild the bundle with --compress gzip, or use the packaged airlock (its Node runtime has zstd)',
  });
}

/** Refuses `--compress zstd` where it cannot be honoured: a usage error, before anything is read. */
export function checkEncodable(compression: string): void {
  if (compression === 'zstd' && !hasZstd()) throw zstdUnavailableForBuild();
}

/** Refuses a bundle whose carried blobs this runtime cannot decode; runs before any blob is read. */
export function checkDecodable(m: Manifest): void {
  if (!hasZstd() && carriedBlobs(m).some((b) => b.encoding === 'zstd')) throw zstdUnavailableForRead(`${m.name} ${m.version}`);
}
