/**
 * Parser for the JSON message streams of image endpoints (/images/load,
 * /images/create, /images/push). The daemon writes one object per line, but
 * chunks split objects anywhere (even inside a UTF-8 sequence), and older
 * daemons may write objects back to back, so this scans for balanced braces
 * instead of trusting newlines. Memory stays bounded by the largest object.
 */
import { StringDecoder } from 'node:string_decoder';
import { DockerError } from './errors.js';

export interface ProgressMessage {
  status?: string;
  id?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number; units?: string };
  /** Free text, e.g. `Loaded image: name:tag\n`. */
  stream?: string;
  aux?: Record<string, unknown>;
  error?: string;
  errorDetail?: { code?: number; message?: string };
}

export interface ParseOptions {
  /** Refuse a single object larger than this (default 16 MiB): a runaway stream is not a message. */
  maxObjectBytes?: number;
  /** What the stream is, for error messages (e.g. `POST /images/load`). */
  context?: string;
}

/**
 * Yields each JSON object of the stream. An object with `error` or
 * `errorDetail` is thrown as a DockerError (reason `stream-error`): the daemon
 * reports failures that happen after the 200 header this way.
 */
export async function* parseJsonMessages<T extends object = ProgressMessage>(
  body: AsyncIterable<Uint8Array | string>,
  opts: ParseOptions = {},
): AsyncGenerator<T, void, undefined> {
  const max = opts.maxObjectBytes ?? 16 * 1024 * 1024;
  const where = opts.context ? ` in ${opts.context}` : '';
  const decoder = new StringDecoder('utf8');
  let pending = ''; // text of the object being read (empty between objects)
  let depth = 0;
  let inString = false;
  let escaped = false;

  const protocolError = (why: string) =>
    new DockerError('engine', `Docker Engine sent a malformed progress stream${where}: ${why}`, { reason: 'protocol' });

  function* scan(text: string): Generator<T> {
    let start = depth > 0 ? 0 : -1; // where the current object starts in `text`
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (depth === 0) {
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
        if (c !== 0x7b /* { */) throw protocolError(`unexpected ${JSON.stringify(text.slice(i, i + 20))}`);
        start = i;
        depth = 1;
        continue;
      }
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c /* \ */) escaped = true;
        else if (c === 0x22 /* " */) inString = false;
        continue;
      }
      if (c === 0x22) inString = true;
      else if (c === 0x7b) depth++;
      else if (c === 0x7d /* } */ && --depth === 0) {
        const objText = pending + text.slice(start, i + 1);
        pending = '';
        start = -1;
        yield parseOne(objText);
      }
    }
    if (depth > 0) {
      pending += text.slice(start);
      if (pending.length > max) throw protocolError(`an object exceeds ${max} bytes`);
    }
  }

  function parseOne(text: string): T {
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw protocolError(e instanceof Error ? e.message : String(e));
    }
    const m = obj as ProgressMessage;
    if (m.error !== undefined || m.errorDetail !== undefined) {
      const message = m.errorDetail?.message ?? m.error ?? 'unknown error';
      throw new DockerError('engine', `Docker Engine reported an error${where}: ${message}`, {
        reason: 'stream-error',
        daemonMessage: message,
      });
    }
    return obj as T;
  }

  for await (const chunk of body) {
    yield* scan(typeof chunk === 'string' ? chunk : decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
  }
  yield* scan(decoder.end());
  if (depth > 0) throw protocolError('the stream ended inside an object');
}
