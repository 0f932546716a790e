import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadCompose } from '../../../src/compose/load/index.js';
import { templateVariables } from '../../../src/compose/load/template.js';
import { load, rejectsConfig, service } from './helpers.js';

const app = (image: string) => `services:\n  app:\n    image: "${image}"\n`;
const reason = 'compose-image-reference';

test('an image that interpolation makes invalid is refused, naming the file, key, value and variables', async () => {
  const cases: [string, Record<string, string>, string[]][] = [
    ['example/app:${TAG-:latest}', {}, ['"example/app::latest" is not a valid image reference (invalid reference format)', 'written "example/app:${TAG-:latest}", with TAG unset']],
    ['example/app:${TAG}', { TAG: '' }, ['"example/app:" is not a valid image reference (invalid reference format)', 'with TAG empty']],
    ['${ORG}/${NAME}:${TAG:-1}', { ORG: 'acme', NAME: 'Web' }, ['"acme/Web:1"', 'repository name (acme/Web) must be lowercase', 'with ORG="acme", NAME="Web", TAG unset']],
    ['${IMAGE}', {}, ['"" is not a valid image reference (no image specified)', 'with IMAGE unset']],
    ['example/app@${DIGEST}', { DIGEST: 'sha256:abc' }, ['invalid reference format', 'DIGEST="sha256:abc"']],
  ];
  for (const [image, env, fragments] of cases) {
    const e = await rejectsConfig(load(app(image), { env }), { subject: 'compose.yml', reason, includes: ['compose.yml: services.app.image: ', ...fragments] });
    assert.equal(e.exitCode, 3);
    assert.match(e.hint ?? '', /^Set /, image);
  }
});

test('an image written invalid is refused without a word about variables', async () => {
  const e = await rejectsConfig(load(app('example/App:1')), { reason, includes: ['services.app.image: "example/App:1" is not a valid image reference'] });
  assert.doesNotMatch(e.message, /written|unset/);
  assert.match(e.hint ?? '', /lowercase/);
  // `$$` is a literal dollar, no variable.
  const escaped = await rejectsConfig(load(app('example/app:$${X}')), { reason, includes: ['"example/app:${X}"', 'written "example/app:$${X}"'] });
  assert.doesNotMatch(escaped.message, /with X/);
});

test('valid references load, interpolated or not', async () => {
  for (const [image, env] of [
    ['example/app:${TAG-latest}', {}],
    ['example/app:${TAG:-1}', { TAG: '' }],
    [`example/app@sha256:${'a'.repeat(64)}`, {}],
    ['registry.local:5000/team/app:${TAG}', { TAG: '2.1' }],
  ] as [string, Record<string, string>][]) {
    const s = await service(app(image), { env });
    assert.ok(s.image && !s.image.includes('$'), image);
  }
});

test('with several files, the merged image counts, and the file that set it is named', async () => {
  const files = (base: string, override: string) => [
    { name: 'base.yml', content: app(base) },
    { name: 'override.yml', content: app(override) },
  ];
  // docker checks the merged result: a bad base image that the override replaces loads.
  const ok = await loadCompose({ files: files('example/app:${TAG-:latest}', 'example/app:2'), workingDir: '/srv/app', env: {} });
  assert.equal(ok.config.services[0]?.image, 'example/app:2');
  await rejectsConfig(loadCompose({ files: files('example/app:2', 'example/app:${TAG-:latest}'), workingDir: '/srv/app', env: {} }), {
    subject: 'override.yml',
    reason,
    includes: ['override.yml: services.app.image: "example/app::latest"', 'TAG unset'],
  });
});

test('templateVariables: each variable once, in order; $$ names none', () => {
  const cases: [string, string[]][] = [
    ['plain', []],
    ['$$X', []],
    ['$A/${B}:${C:-x}@${D?err}', ['A', 'B', 'C', 'D']],
    ['${A-${B}}', ['A']], // docker does not substitute inside a default
    ['$A$A${A:?x}', ['A']],
  ];
  for (const [template, want] of cases) assert.deepEqual(templateVariables(template), want, template);
});
