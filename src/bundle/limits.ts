import { unsafeEntry } from '../errors/index.js';
import type { Codec } from './encodings.js';
import { carriedBlobs, type Manifest } from './manifest.js';

/** Bounds a reader enforces on every bundle, before it reads the bytes they cover. */
export interface Limits {
  maxManifestBytes: number;
  maxSignatureBytes: number;
  /** Largest single blob, as stored and as decoded. */
  maxBlobBytes: number;
  /** Largest sum of decoded blob sizes in one bundle. */
  maxBundleBytes: number;
  /**
   * The most each encoding can inflate; a manifest that claims more is lying.
   * Deflate cannot exceed about 1032:1. zstd's densest block is an RLE block,
   * 4 bytes for 128 KiB: 32768:1 (32732:1 measured on 512 MiB of zeros).
   */
  maxInflateRatio: Record<Codec, number>;
}

export const DEFAULT_LIMITS: Limits = {
  maxManifestBytes: 16 * 1024 * 1024,
  maxSignatureBytes: 256 * 1024,
  maxBlobBytes: 64 * 1024 ** 3,
  maxBundleBytes: 512 * 1024 ** 3,
  maxInflateRatio: { gzip: 1100, zstd: 32768 },
};

export function withLimits(overrides: Partial<Limits> = {}): Limits {
  return { ...DEFAULT_LIMITS, ...overrides };
}

const GiB = (n: number) => `${(n / 1024 ** 3).toFixed(1)} GiB`;

/**
 * Checks the sizes the signed manifest declares, before any blob is read.
 * Blobs a delta does not carry are never read from the bundle: they do not count.
 */
export function checkDeclaredSizes(m: Manifest, limits: Limits): void {
  let total = 0;
  for (const b of carriedBlobs(m)) {
    const stored = b.stored?.size ?? b.size;
    if (b.size > limits.maxBlobBytes || stored > limits.maxBlobBytes) {
      throw unsafeEntry(`blob ${b.digest} declares ${GiB(Math.max(b.size, stored))}, over the ${GiB(limits.maxBlobBytes)} limit`, {
        reason: 'oversized-entry',
        subject: b.digest,
        hint: 'raise limits.maxBlobBytes only if the vendor really ships such a layer',
      });
    }
    if (b.stored && b.encoding !== 'identity' && b.size > Math.max(1, b.stored.size) * limits.maxInflateRatio[b.encoding]) {
      throw unsafeEntry(`blob ${b.digest} claims to inflate ${b.stored.size} bytes to ${b.size}, beyond what ${b.encoding} can do`, {
        reason: 'decompression-bomb',
        subject: b.digest,
      });
    }
    total += b.size;
  }
  if (total > limits.maxBundleBytes) {
    throw unsafeEntry(`bundle declares ${GiB(total)} of content, over the ${GiB(limits.maxBundleBytes)} limit`, { reason: 'oversized-entry' });
  }
}
