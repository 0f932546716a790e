/**
 * One blob entry of a bundle, streamed through its checks into a sink:
 * stored size and hash, and for an encoded blob its decoding, bounded by the
 * declared size, and the content hash.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { AirlockError, integrityError, unsafeEntry } from '../errors/index.js';
import { createDecoder, isDecodeError } from './encodings.js';
import { blobEntryName, type CarriedBlob } from './manifest.js';
import { pipe, type Entry } from './tar-entries.js';

/** Where verified blob content goes; `null` means the store has it already, so only hash it. */
export interface BlobSink {
  open(blob: CarriedBlob): Promise<Writable | null>;
}

/** Counts and hashes what passes through; refuses more than `max` bytes. */
function hashStep(hash: Hash, max: number, onOver: () => AirlockError) {
  const state = { bytes: 0 };
  const step = async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      state.bytes += chunk.length;
      if (state.bytes > max) throw onOver();
      hash.update(chunk);
      yield chunk;
    }
  };
  return { step, state };
}

async function drain(source: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of source);
}

/** Streams one blob through its checks into the sink; returns the stored bytes read. */
export async function copyBlob(entry: Entry, blob: CarriedBlob, sink: BlobSink | undefined): Promise<number> {
  const name = blobEntryName(blob.digest);
  const storedSize = blob.stored?.size ?? blob.size;
  if (entry.header.size !== storedSize) {
    throw integrityError(`${name} is ${entry.header.size} bytes, the manifest says ${storedSize}`, { reason: 'size-mismatch', subject: name });
  }
  const storedHash = createHash('sha256');
  const stored = hashStep(storedHash, storedSize, () => integrityError(`${name} is longer than declared`, { reason: 'size-mismatch', subject: name }));
  const decoder = blob.encoding === 'identity' ? undefined : createDecoder(blob.encoding);
  const target = (await sink?.open(blob)) ?? drain;
  try {
    if (!decoder) {
      await pipe(entry, stored.step, target);
    } else {
      const contentHash = createHash('sha256');
      const content = hashStep(contentHash, blob.size, () =>
        unsafeEntry(`${name} inflates beyond its declared ${blob.size} bytes`, { reason: 'decompression-bomb', subject: name }),
      );
      await pipe(entry, stored.step, decoder, content.step, target);
      checkDigest(name, 'decoded content', contentHash.digest('hex'), blob.digest, content.state.bytes, blob.size);
    }
  } catch (e) {
    if (e instanceof AirlockError) throw e;
    const code = (e as { code?: string }).code;
    // A compressed stream that ends before its stored bytes do: the decoder stops reading and the pipeline sees a premature close.
    const endedEarly = code === 'ERR_STREAM_PREMATURE_CLOSE' && decoder?.readableEnded === true;
    if (isDecodeError(e) || endedEarly) {
      const why = endedEarly ? `the ${blob.encoding} stream ends before the entry does` : (e as Error).message;
      throw integrityError(`${name} is corrupt: its ${blob.encoding} data does not decode (${why})`, {
        reason: 'hash-mismatch',
        subject: name,
      });
    }
    throw e;
  }
  checkDigest(name, 'content', storedHash.digest('hex'), blob.stored?.digest ?? blob.digest, stored.state.bytes, storedSize);
  return stored.state.bytes;
}

function checkDigest(name: string, what: string, actualHex: string, expected: string, actualBytes: number, expectedBytes: number): void {
  if (actualBytes !== expectedBytes) {
    throw integrityError(`${name}: ${what} is ${actualBytes} bytes, the manifest says ${expectedBytes}`, { reason: 'size-mismatch', subject: name });
  }
  if (`sha256:${actualHex}` !== expected) {
    throw integrityError(`${name}: ${what} hash is sha256:${actualHex}, the manifest says ${expected}`, {
      reason: 'hash-mismatch',
      subject: name,
      hint: 'the bundle was damaged or altered after signing; get a fresh copy',
    });
  }
}
