/**
 * The ELF facts of an engine binary (src/bundle/elf.ts), read from real
 * executables of this machine in chunks of any size: the same facts whether a
 * version string or the header is cut between chunks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { compareGlibc, ElfScanner, libcOf, NotElf, type ElfFacts } from '../../src/bundle/elf.js';

function scan(bytes: Buffer, chunk: number): ElfFacts {
  const s = new ElfScanner();
  for (let i = 0; i < bytes.length; i += chunk) s.update(bytes.subarray(i, i + chunk));
  return s.finish();
}

test('a dynamically linked glibc binary: amd64, ld-linux, the newest GLIBC_ version it names, whatever the chunking', async () => {
  const bytes = await readFile('/usr/bin/true');
  const whole = scan(bytes, bytes.length);
  assert.equal(whole.architecture, 'amd64');
  assert.equal(whole.interpreter, '/lib64/ld-linux-x86-64.so.2');
  assert.equal(libcOf(whole.interpreter), 'glibc');
  // What `grep -ao 'GLIBC_2\.[0-9]*' /usr/bin/true | sort -V | tail -1` says on Debian 12.
  assert.equal(whole.glibc, '2.34');
  for (const chunk of [1, 3, 7, 31, 32, 33, 4096]) assert.deepEqual(scan(bytes, chunk), whole, `chunks of ${chunk}`);
});

test('a static binary has no interpreter; a script is not ELF', async () => {
  const busybox = scan(await readFile('/bin/busybox'), 65536);
  assert.equal(busybox.interpreter, null);
  assert.equal(libcOf(busybox.interpreter), 'static');
  assert.equal(busybox.architecture, 'amd64');
  assert.throws(() => scan(Buffer.from('#!/bin/sh\nexit 0\n'), 4), (e) => e instanceof NotElf && /is not an ELF executable/.test(e.message));
});

test('glibc versions compare as numbers, and interpreters name their C library', () => {
  assert.ok(compareGlibc('2.38', '2.4') > 0);
  assert.ok(compareGlibc('2.38', '2.38.1') < 0);
  assert.equal(compareGlibc('2.41', '2.41.0'), 0);
  assert.equal(libcOf('/lib/ld-musl-x86_64.so.1'), 'musl');
  assert.equal(libcOf('/lib/ld-linux-aarch64.so.1'), 'glibc');
  assert.equal(libcOf('/system/bin/linker64'), 'unknown');
});
