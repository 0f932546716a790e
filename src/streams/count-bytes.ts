import { Transform, type Readable } from 'node:stream';

/** Passes `stream` through, reporting the running byte count (for progress). */
export function countBytes(stream: Readable, onBytes: ((total: number) => void) | undefined): Readable {
  if (!onBytes) return stream;
  let total = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      total += chunk.length;
      onBytes(total);
      cb(null, chunk);
    },
  });
  stream.on('error', (e) => counter.destroy(e));
  counter.on('close', () => stream.destroy());
  return stream.pipe(counter);
}
