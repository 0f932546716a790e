/**
 * The least any Node program can do to verify a file: read it once with one
 * reused 1 MiB buffer and SHA-256 it. Run as a child process, it shows how
 * much of airlock's time is Node itself (start-up, crypto binding) and how
 * much is airlock's own streaming. Prints the hex digest.
 *
 *   node dist/bench/lib/sha256-floor.js FILE
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: sha256-floor FILE\n');
  process.exit(2);
}
const hash = createHash('sha256');
const fd = openSync(file, 'r');
const buf = Buffer.allocUnsafe(1 << 20);
for (;;) {
  const n = readSync(fd, buf, 0, buf.length, null);
  if (n === 0) break;
  hash.update(n === buf.length ? buf : buf.subarray(0, n));
}
closeSync(fd);
process.stdout.write(`${hash.digest('hex')}\n`);
