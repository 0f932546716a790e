/**
 * Blob encodings (docs/bundle-format.md section 5): the one place that makes
 * encoders and decoders. airlock runs on Node 22.15 or newer (the package
 * ships Node 24), whose node:zlib has both gzip and zstd.
 */
import type { Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import type { BlobEncoding } from './manifest.js';

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

/** A compressor with fixed settings: the same input always gives the same bytes (with the same zlib/zstd). */
export function createEncoder(codec: Codec): Transform {
  if (codec === 'gzip') {
    // No file name or time in the header; fixed level and memory.
    return zlib.createGzip({ level: GZIP_LEVEL, memLevel: 9, strategy: zlib.constants.Z_DEFAULT_STRATEGY });
  }
  return zlib.createZstdCompress({ chunkSize: CHUNK, params: { [zlib.constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL } });
}

export function createDecoder(codec: Codec): Transform {
  if (codec === 'gzip') return zlib.createGunzip({ chunkSize: CHUNK });
  return zlib.createZstdDecompress({ chunkSize: CHUNK, params: { [zlib.constants.ZSTD_d_windowLogMax]: ZSTD_WINDOW_LOG_MAX } });
}

/** True for an error a decoder raises on data it cannot decode (zlib's Z_*, zstd's ZSTD_error_*). */
export const isDecodeError = (e: unknown): boolean => {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('Z_') || code.startsWith('ZSTD_error_'));
};
