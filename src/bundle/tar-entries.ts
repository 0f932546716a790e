/**
 * The tar layer of a bundle: walking its entries in order, mapping
 * tar-stream's failures to integrity errors, refusing unsafe entries before
 * anything reads their data, and reading a small entry whole.
 */
import tar from 'tar-stream';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AirlockError, integrityError, unsafeEntry } from '../errors/index.js';
import { unsafePathReason } from './manifest-checks.js';
import { explainPartsFailure } from './parts-stream.js';

/** pipeline() with stages of mixed kinds (streamx entries, generators, node streams). */
export const pipe = pipeline as unknown as (...stages: unknown[]) => Promise<void>;

/** One tar entry, as tar-stream yields it. */
export type Entry = tar.Extract extends AsyncIterable<infer E> ? E : never;

/**
 * Walks the tar entries of a bundle in order. Owns the extract stream, maps
 * tar-stream's failures to integrity errors and checks each header for
 * unsafe entries before anything reads its data.
 */
export class EntryWalker {
  private readonly extract = tar.extract();
  private readonly iterator: AsyncIterator<Entry>;
  private readonly feeding: Promise<void>;
  private index = -1;
  /** Bytes fed to the tar parser, and the last few of them: to tell trailing garbage from a cut. */
  private fed = 0;
  private tail: Buffer = Buffer.alloc(0);

  constructor(private readonly input: Readable) {
    this.iterator = this.extract[Symbol.asyncIterator]() as AsyncIterator<Entry>;
    const watch = async function* (this: EntryWalker, source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        this.fed += chunk.length;
        this.tail = chunk.length >= TAIL_BYTES ? chunk.subarray(chunk.length - TAIL_BYTES) : Buffer.concat([this.tail, chunk]).subarray(-TAIL_BYTES);
        yield chunk;
      }
    }.bind(this);
    this.feeding = pipe(input, watch, this.extract);
    // Failures surface through the iterator; keep this promise from going unhandled.
    this.feeding.catch(() => undefined);
  }

  /** The next entry with a safe header, or null at a clean end of the archive. */
  async next(): Promise<Entry | null> {
    let r: IteratorResult<Entry>;
    try {
      r = await this.iterator.next();
    } catch (e) {
      throw tarError(e);
    }
    if (r.done) return null;
    this.index += 1;
    checkHeader(r.value.header, this.index);
    return r.value;
  }

  async end(): Promise<void> {
    try {
      await this.feeding;
    } catch (e) {
      throw tarError(e);
    }
  }

  /**
   * What really went wrong when reading an entry's data failed. A tar-level
   * failure (the file ends inside the entry, say) reaches the entry stream
   * only as streamx's "Stream was destroyed"; the parser has the cause.
   */
  async explain(e: unknown): Promise<unknown> {
    // Wait for the parser's outcome only when it is going down, so this always settles.
    if (e instanceof AirlockError || !(this.extract as unknown as { destroying: boolean }).destroying) return explainPartsFailure(this.input, e);
    const cause = await this.feeding.then(
      () => undefined,
      (f: unknown) => f,
    );
    return explainPartsFailure(this.input, isTarStreamFailure(cause) ? tarError(cause) : cause instanceof AirlockError ? cause : e);
  }

  /**
   * After every listed entry was read: a parse failure here is about bytes
   * behind the archive's last entry, not about a damaged entry.
   */
  trailing(e: AirlockError): AirlockError {
    const partial = this.fed % BLOCK;
    const t = this.tail;
    const strayAfterEnd =
      e.reason === 'truncated' &&
      partial > 0 &&
      t.length >= partial + BLOCK &&
      t.subarray(t.length - partial - BLOCK, t.length - partial).every((b) => b === 0) &&
      t.subarray(t.length - partial).some((b) => b !== 0);
    if (e.reason === 'corrupt-tar' || strayAfterEnd) {
      return integrityError(
        strayAfterEnd ? `bundle has ${partial} stray bytes after its last entry` : 'bundle has bytes after its last entry that are not a tar entry',
        { reason: 'extra-entry', hint: 'something was appended to the bundle after signing; get a fresh copy' },
      );
    }
    return e;
  }

  close(): void {
    this.input.destroy();
    this.extract.destroy();
  }
}

const BLOCK = 512;
const TAIL_BYTES = 2 * BLOCK;

function isTarStreamFailure(e: unknown): e is Error {
  if (!(e instanceof Error)) return false;
  const msg = e.message;
  return msg === 'Unexpected end of data' || msg === 'Header exceeds max size' || msg === 'Invalid header' || msg.startsWith('Invalid tar header');
}

function tarError(e: unknown): AirlockError {
  if (e instanceof AirlockError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (msg === 'Unexpected end of data') {
    return integrityError('bundle is truncated: the file ends inside an entry', {
      reason: 'truncated',
      hint: 'the transfer was cut short; copy the bundle again',
    });
  }
  if (msg === 'Header exceeds max size') {
    return unsafeEntry('bundle has an oversized extended tar header', { reason: 'oversized-entry' });
  }
  if (msg.startsWith('Invalid tar header') || msg === 'Invalid header') {
    return integrityError('bundle is not a valid tar stream (corrupt header)', {
      reason: 'corrupt-tar',
      hint: 'the file is damaged, or it is not an airlock bundle',
    });
  }
  return integrityError(`cannot read bundle: ${msg}`, { reason: 'corrupt-tar', cause: e });
}

const ENTRY_TYPE_NAMES: Record<string, string> = {
  symlink: 'a symbolic link',
  link: 'a hard link',
  'character-device': 'a character device',
  'block-device': 'a block device',
  fifo: 'a FIFO',
  directory: 'a directory',
  'contiguous-file': 'a contiguous file',
};

function checkHeader(h: tar.Header, index: number): void {
  if (h.type !== 'file') {
    const what = (h.type && ENTRY_TYPE_NAMES[h.type]) ?? 'an entry of an unknown tar type';
    throw unsafeEntry(`entry ${index + 1} "${h.name}" is ${what}; bundles hold regular files only`, {
      reason: h.type === 'symlink' || h.type === 'link' ? 'link-entry' : h.type === 'directory' ? 'directory-entry' : 'device-entry',
      subject: h.name,
    });
  }
  const why = unsafePathReason(h.name);
  if (why) {
    throw unsafeEntry(`entry ${index + 1} "${h.name}" ${why}`, { reason: 'path-traversal', subject: h.name });
  }
}

export async function readSmall(entry: Entry, max: number, name: string): Promise<Buffer> {
  if (entry.header.size > max) {
    throw unsafeEntry(`${name} is ${entry.header.size} bytes, over the ${max} byte limit`, { reason: 'oversized-entry', subject: name });
  }
  const chunks: Buffer[] = [];
  for await (const c of entry) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
