/**
 * The manifest's sealed files (docs/bundle-format.md, section 12) in one
 * spelling, and which files of a stack are its secrets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { canonicalBytes } from '../../src/bundle/canonical-json.js';
import { parseManifest, sealedFiles, type Manifest } from '../../src/bundle/manifest.js';
import { secretFilePaths, secretFiles } from '../../src/bundle/secret-files.js';
import { AirlockError } from '../../src/errors/index.js';

const digest = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const [compose, env, secret] = [digest('compose'), digest('sealed env'), digest('sealed secret')];

/** A valid v2 manifest with a sealed env file and a sealed extra file. */
function sealedManifest(): Manifest {
  return {
    format: 'airlock.bundle.v2',
    requires: ['sealed'],
    name: 'demo',
    version: '1.0.0',
    description: '',
    created: '2026-01-01T00:00:00Z',
    expires: null,
    blobs: [
      { digest: compose, size: 7, kind: 'stack-file' as const, encoding: 'identity' as const },
      { digest: env, size: 210, kind: 'env-file' as const, encoding: 'identity' as const },
      { digest: secret, size: 220, kind: 'file' as const, encoding: 'identity' as const },
    ].sort((a, b) => (a.digest < b.digest ? -1 : 1)),
    stacks: [{ name: 'web', composeFiles: [{ name: 'docker-compose.yml', digest: compose }], envFiles: [{ name: 'token.env', digest: env, sealed: true }] }],
    images: [],
    files: [{ path: 'secrets/db.password', digest: secret, size: 220, mode: 0o400, sealed: true }],
    sealedTo: ['0123456789abcdef', 'fedcba9876543210'],
  };
}

function refusal(m: Manifest): AirlockError {
  try {
    parseManifest(canonicalBytes(m));
  } catch (e) {
    assert.ok(e instanceof AirlockError, String(e));
    return e;
  }
  assert.fail('the manifest was accepted');
}

test('a sealed manifest parses, and names its sealed files', () => {
  const m = parseManifest(canonicalBytes(sealedManifest()));
  assert.deepEqual(m.sealedTo, ['0123456789abcdef', 'fedcba9876543210']);
  assert.deepEqual(
    sealedFiles(m).map((f) => [f.label, f.digest]),
    [
      ['stack web env file token.env', env],
      ['file secrets/db.password', secret],
    ],
  );
});

test('sealed flags, requires sealed and sealedTo go together, or the manifest is refused (exit 11)', () => {
  const cases: [string, (m: Manifest) => void, RegExp][] = [
    ['sealed files without the requirement', (m) => ((m.requires = []), (m.format = 'airlock.bundle.v2')), /names key ids in sealedTo but does not require sealed/],
    ['the requirement without key ids', (m) => delete m.sealedTo, /requires sealed but names no key ids in sealedTo/],
    ['key ids and the requirement, but no file sealed', (m) => (delete m.files[0]!.sealed, delete m.stacks[0]!.envFiles[0]!.sealed), /requires sealed but marks no file sealed/],
    ['a sealed file without requirement or key ids', (m) => (delete m.sealedTo, (m.requires = [])), /marks stack web env file token\.env sealed but does not require sealed/],
    ['key ids out of order', (m) => m.sealedTo!.reverse(), /sealedTo is not sorted and unique at "0123456789abcdef"/],
    ['a key id twice', (m) => (m.sealedTo = ['0123456789abcdef', '0123456789abcdef']), /sealedTo is not sorted and unique/],
    ['an empty sealedTo', (m) => (m.sealedTo = []), /sealedTo must NOT have fewer than 1 items/],
    ['a key id that is not 16 hex', (m) => (m.sealedTo = ['0123456789ABCDEF']), /sealedTo\/0 must match pattern/],
    ['a sealed compose file', (m) => ((m.stacks[0]!.composeFiles[0] as { sealed?: true }).sealed = true), /composeFiles\/0 must NOT have additional properties/],
    [
      'one blob sealed for one file and plain for another',
      (m) => m.files.push({ path: 'copy/db.password', digest: secret, size: 220, mode: 0o644 }),
      /blob sha256:[0-9a-f]{64} is sealed as file secrets\/db\.password but plain as file copy\/db\.password/,
    ],
  ];
  for (const [name, change, message] of cases) {
    const m = sealedManifest();
    change(m);
    const e = refusal(m);
    assert.equal(e.exitCode, 11, name);
    assert.equal(e.reason, 'manifest-invalid', name);
    assert.match(e.message, message, name);
  }
});

test('a v1 manifest cannot carry sealed files: its schema has no such field', () => {
  const m = sealedManifest();
  m.format = 'airlock.bundle.v1';
  delete m.requires;
  assert.match(refusal(m).message, /does not match format airlock\.bundle\.v1: \/ must NOT have additional properties/);
});

test('secretFilePaths: each file secret, as a bundle path resolved against the bundle root', () => {
  const first = {
    name: 'stack/docker-compose.yml',
    text: [
      'services: {web: {image: demo/web:1}}',
      'secrets:',
      '  db: {file: ./secrets/db.password}', // relative to the bundle root, not to stack/
      '  ca: {external: true}',
      '  old: {external: {name: vendor_old}}',
      '  vault: {driver: vault}',
      '  tidy: {file: conf//./tls/../tls.key/}',
      '  abs: {file: /airlock-bundle/abs.txt}',
      '  outside: {file: ../etc/shadow}',
      '  var: {file: "./secrets/${SITE}.pw"}',
      '',
    ].join('\n'),
  };
  const second = { name: 'override.yml', text: 'secrets:\n  db: {file: ./secrets/db.password}\n  extra: {file: extra.pw}\n' };
  assert.deepEqual(secretFilePaths([first, second]), ['secrets/db.password', 'conf/tls.key', 'abs.txt', '../etc/shadow', './secrets/${SITE}.pw', 'extra.pw']);
  // Unresolvable ones are told apart, with the file and key that declare them.
  assert.deepEqual(
    secretFiles([first]).filter((s) => s.path === null).map((s) => [s.compose, s.secret, s.file]),
    [
      ['stack/docker-compose.yml', 'outside', '../etc/shadow'],
      ['stack/docker-compose.yml', 'var', './secrets/${SITE}.pw'],
    ],
  );
  assert.deepEqual(secretFilePaths([{ name: 'c.yml', text: 'services: {}\n' }]), []);
  // The host's parser, with its refusals: an alias bomb or bad YAML is named as there.
  assert.throws(() => secretFilePaths([{ name: 'bad.yml', text: 'secrets: [\n' }]), /bad\.yml.*invalid YAML/);
});
