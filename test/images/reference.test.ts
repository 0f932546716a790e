import { test } from 'node:test';
import assert from 'node:assert/strict';
import { imageRefProblem } from '../../src/images/reference.js';

const hex = (c: string, n: number) => c.repeat(n);
const D64 = hex('a', 64);

// What `docker stack deploy` (CLI 28.2.2) answered for each image: accepted, or
// "invalid image reference for service app: <problem>".
const valid: string[] = [
  'busybox',
  'busybox:1.36',
  'example/app:1',
  'Example/app:1', // an uppercase first part is a domain
  'Localhost/app',
  'localhost/app',
  'localhost:5000/app:1.0',
  'Registry.Local:5000/app',
  'EXAMPLE.com/app',
  '[::1]:5000/app:1',
  'example/app:_x',
  'example/a__b',
  'example/a--b',
  `example/app@sha256:${D64}`,
  `example/app:1@sha256:${D64}`,
  `example/app@sha384:${hex('a', 96)}`,
  `example/app@sha512:${hex('a', 128)}`,
  `sha256:${D64}`, // a bare digest
  D64, // a bare image id
  'sha256:abc', // the image library/sha256, tag abc
  `example/app:${hex('a', 128)}`,
  `example.com/${hex('a', 250)}`, // the 255 limit is on the path, not the domain
  hex('a', 247), // library/ + 247 = 255
];

const FORMAT = 'invalid reference format';
const invalid: [string, string][] = [
  ['example/app::latest', FORMAT], // `example/app:${TAG-:latest}` with TAG unset
  ['example/app::1', FORMAT],
  ['example/app:', FORMAT], // empty tag
  [':latest', FORMAT],
  ['example/app:-x', FORMAT], // a tag starts with a word character
  [`example/app:${hex('a', 129)}`, FORMAT],
  ['example/App:1', `${FORMAT}: repository name (example/App) must be lowercase`],
  ['UPPER', `${FORMAT}: repository name (library/UPPER) must be lowercase`],
  [`example/app@SHA256:${D64}`, `${FORMAT}: repository name (example/app@SHA256) must be lowercase`],
  ['a//b', FORMAT],
  ['example/a___b', FORMAT],
  ['example/a.-b', FORMAT],
  ['example/-a', FORMAT],
  ['example/a/', FORMAT],
  ['example/app@sha256:abc', FORMAT], // a digest has 32 hex digits or more
  [`example/app@sha256:${hex('g', 64)}`, FORMAT],
  ['app:tag@sha256:bad', FORMAT],
  [`example/app@sha256:${hex('a', 32)}`, 'invalid checksum digest length'],
  [`example/app@sha384:${hex('A', 96)}`, 'invalid checksum digest format'],
  [`example/app@sha256:${hex('A', 64)}`, 'invalid checksum digest format'],
  [`example/app@md5:${hex('a', 32)}`, 'unsupported digest algorithm'],
  [`example.com/${hex('a', 256)}`, 'repository name must not be more than 255 characters'],
  [hex('a', 248), 'repository name must not be more than 255 characters'],
];

for (const image of valid) {
  test(`image reference ${image.length > 60 ? `${image.slice(0, 57)}...` : image} is valid`, () => assert.equal(imageRefProblem(image), undefined));
}
for (const [image, problem] of invalid) {
  test(`image reference ${image.length > 60 ? `${image.slice(0, 57)}...` : image} is refused: ${problem}`, () => assert.equal(imageRefProblem(image), problem));
}
