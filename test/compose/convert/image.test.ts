import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serviceImage } from '../../../src/compose/convert/index.js';

// docker's client normalises the image (reference.TagNameOnly + FamiliarString) before ServiceCreate.
const D64 = 'a'.repeat(64);
const cases: [string, string][] = [
  ['busybox', 'busybox:latest'],
  ['busybox:1.36', 'busybox:1.36'],
  ['docker.io/library/busybox', 'busybox:latest'],
  ['index.docker.io/library/busybox:1', 'busybox:1'],
  ['library/busybox', 'busybox:latest'],
  ['docker.io/acme/web', 'acme/web:latest'],
  ['acme/web:2.0', 'acme/web:2.0'],
  ['registry.local:5000/app', 'registry.local:5000/app:latest'],
  ['localhost/app', 'localhost/app:latest'],
  ['localhost:5000/team/app:1', 'localhost:5000/team/app:1'],
  [`busybox@sha256:${D64}`, `busybox@sha256:${D64}`],
  [`docker.io/library/busybox:1@sha256:${D64}`, `busybox:1@sha256:${D64}`],
  // Not a valid reference: sent as written, as docker's client leaves it.
  ['Busybox', 'Busybox'],
  [D64, D64],
  ['busybox@sha256:abc', 'busybox@sha256:abc'],
  ['a//b', 'a//b'],
];

for (const [image, expected] of cases) {
  test(`image ${image} is sent as ${expected}`, () => assert.equal(serviceImage(image), expected));
}
