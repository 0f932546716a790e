/**
 * Reading a split bundle: the parts an index names, in order, as one
 * stream, each part checked against the index as it passes (index format
 * and refusals: parts.ts). The bundle reader finds the stream behind its
 * input (partsSourceOf) to check the index signature, to check that the
 * index is about the bundle it reads, and to say which part is damaged
 * when its own checks fail first.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { AirlockError, integrityError, isRefusal } from '../errors/index.js';
import type { TrustStore } from '../trust/trust-store.js';
import { badIndex, checkIndexSignature, checkParts, damagedPart, partsCheckError, readPartsIndex, type PartRecord, type PartsIndex } from './parts.js';

const CHUNK = 1024 * 1024;

/**
 * The parts of one bundle, read in order as one stream. Each part is hashed
 * as it passes and checked when it ends; a part that does not match stops
 * the stream with an error naming it. The bundle reader may fail first on
 * bytes of that same part (a blob's own hash): explainFailure then finishes
 * hashing the part, so the refusal still names the damaged part.
 */
export class PartsStream extends Readable {
  private part = 0;
  private fh: FileHandle | undefined;
  private pos = 0;
  private hash: Hash = createHash('sha256');
  private inflight: Promise<void> = Promise.resolve();
  /** The first damaged part found, kept for explainFailure. */
  private damage: AirlockError | undefined;
  /** Set once the reader failed or let go: no more reads, explainFailure owns the hash. */
  private halted = false;

  constructor(
    readonly indexPath: string,
    readonly parts: PartsIndex,
  ) {
    super({ highWaterMark: CHUNK });
  }

  private get dir(): string {
    return dirname(this.indexPath);
  }

  override _read(): void {
    if (this.halted) return;
    const step = this.inflight.then(() => this.readChunk());
    this.inflight = step.catch(() => undefined);
    step.catch((e: unknown) => this.destroy(e as Error));
  }

  private async readChunk(): Promise<void> {
    // A read queued before the halt: explainFailure now owns the part's hash.
    if (this.halted) return;
    for (;;) {
      const p = this.parts.index.parts[this.part];
      if (!p) {
        this.push(null);
        return;
      }
      this.fh ??= await this.openPart(p);
      if (this.pos === p.size) {
        await this.endPart(p);
        continue;
      }
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, p.size - this.pos));
      const { bytesRead } = await this.fh.read(buf, 0, buf.length, this.pos);
      if (bytesRead === 0) {
        throw integrityError(`part ${p.name} ended at ${this.pos} of ${p.size} bytes while it was read`, { reason: 'truncated', subject: p.name });
      }
      const chunk = buf.subarray(0, bytesRead);
      this.hash.update(chunk);
      this.pos += bytesRead;
      this.push(chunk);
      return;
    }
  }

  private async openPart(p: PartRecord): Promise<FileHandle> {
    let fh: FileHandle;
    try {
      fh = await open(join(this.dir, p.name), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      // It was there when the stream opened.
      throw partsCheckError(this.indexPath, this.parts, { missing: [p.name], wrongSize: [] })!;
    }
    const size = (await fh.stat()).size;
    if (size !== p.size) {
      await fh.close();
      throw partsCheckError(this.indexPath, this.parts, { missing: [], wrongSize: [{ name: p.name, size, expected: p.size }] })!;
    }
    return fh;
  }

  private async endPart(p: PartRecord): Promise<void> {
    const hex = this.hash.digest('hex');
    await this.fh?.close();
    this.fh = undefined;
    if (hex !== p.sha256) {
      this.damage = damagedPart(p, hex);
      throw this.damage;
    }
    this.part += 1;
    this.pos = 0;
    this.hash = createHash('sha256');
  }

  /**
   * Why reading failed, in terms of parts: the damaged part when one is
   * found (already, or by hashing the rest of the part being read), else
   * the reader's own error. Every part before the current one was checked.
   */
  async explainFailure(e: unknown): Promise<unknown> {
    if (this.damage) return this.damage;
    this.halted = true;
    await this.inflight;
    if (this.damage) return this.damage;
    const p = this.parts.index.parts[this.part];
    if (!p || this.pos === 0) return e;
    try {
      // The stream may be closed already: read the rest of the part on our own handle.
      const fh = await open(join(this.dir, p.name), 'r');
      try {
        const buf = Buffer.allocUnsafe(CHUNK);
        let pos = this.pos;
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
          if (bytesRead === 0) break;
          this.hash.update(buf.subarray(0, bytesRead));
          pos += bytesRead;
        }
        const hex = this.hash.digest('hex');
        if (pos !== p.size || hex !== p.sha256) this.damage = damagedPart(p, hex);
      } finally {
        await fh.close();
      }
    } catch {
      return e;
    }
    return this.damage ?? e;
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    // Wait for a read in flight, so the handle is not closed under it.
    this.halted = true;
    void this.inflight.then(async () => {
      await this.fh?.close().catch(() => undefined);
      this.fh = undefined;
      cb(err);
    });
  }

  /** Remembers where piped data goes, so a reader that gets it through a wrapper still finds the parts. */
  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    fedBy.set(destination, this);
    return super.pipe(destination, options);
  }
}

const fedBy = new WeakMap<object, PartsStream>();

/** The parts stream a bundle reader's input comes from, directly or through pipe(); undefined for a plain file. */
export function partsSourceOf(input: object): PartsStream | undefined {
  return input instanceof PartsStream ? input : fedBy.get(input);
}

/** The size of the bundle behind an opened file: the file's own, or for a split bundle the whole bundle's (for progress). */
export async function bundleBytes(path: string, opened: object): Promise<number> {
  return partsSourceOf(opened)?.parts.index.size ?? (await stat(path)).size;
}

/** For the bundle reader: restates a refusal in terms of parts when its input is a parts stream. */
export async function explainPartsFailure(input: object, e: unknown): Promise<unknown> {
  const parts = partsSourceOf(input);
  if (!parts) return e;
  if (e instanceof AirlockError) {
    // A policy refusal is about the signed manifest, which no damaged part could have passed.
    if (!isRefusal(e) || e.kind === 'policy') return e;
    // Already about the index or a part.
    if (e.subject === parts.indexPath || parts.parts.index.parts.some((p) => p.name === e.subject)) return e;
  }
  return parts.explainFailure(e);
}

/** For the bundle reader, which has the trust store: an index is trusted only if it checks out. */
export function checkPartsSignature(input: object, trust: TrustStore): void {
  const parts = partsSourceOf(input);
  if (parts && !parts.parts.signatureChecked) checkIndexSignature(parts.indexPath, parts.parts, trust);
}

/** After the head is read: the index must be about this very bundle. */
export function checkPartsHead(input: object, head: { name: string; version: string; manifestDigest: string }): void {
  const parts = partsSourceOf(input);
  if (!parts) return;
  const i = parts.parts.index;
  if (i.manifestDigest !== head.manifestDigest || i.name !== head.name || i.version !== head.version) {
    throw badIndex(parts.indexPath, `is for ${i.name} ${i.version} (manifest ${i.manifestDigest}), but its parts hold ${head.name} ${head.version} (manifest ${head.manifestDigest})`);
  }
}

/**
 * Opens the parts an index names as one stream, after checking, by name and
 * size only, that every part is there: a missing part is refused before
 * anything is read, naming every missing part.
 */
export async function openParts(indexPath: string, trust?: TrustStore): Promise<PartsStream> {
  const index = await readPartsIndex(indexPath, trust);
  const err = partsCheckError(indexPath, index, await checkParts(indexPath, index));
  if (err) throw err;
  return new PartsStream(indexPath, index);
}
