/**
 * Platform spelling and matching, as pure functions: what the builder, the
 * manifest reader and the host's choice of variant share. The engine-facing
 * behaviour is in platforms.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { ImageRecord } from '../../src/bundle/manifest.js';
import { AirlockError } from '../../src/errors/index.js';
import { variantsForHost } from '../../src/images/host-variants.js';
import { enginePlatform, formatPlatform, isCanonicalPlatform, parsePlatform, platformFit, platformOfConfig, type Platform } from '../../src/images/platform.js';

const p = (text: string): Platform => parsePlatform(text)!;

test('platforms parse to one spelling: Go architecture names, the variant only where it tells platforms apart', () => {
  const cases: [string, string | null][] = [
    ['linux/amd64', 'linux/amd64'],
    ['linux/x86_64', 'linux/amd64'],
    ['Linux/AMD64', 'linux/amd64'],
    ['linux/amd64/v1', 'linux/amd64'],
    ['linux/amd64/v3', 'linux/amd64/v3'],
    ['linux/aarch64', 'linux/arm64'],
    ['linux/arm64/v8', 'linux/arm64'],
    ['linux/arm', 'linux/arm/v7'],
    ['linux/arm/7', 'linux/arm/v7'],
    ['linux/arm/v6', 'linux/arm/v6'],
    ['linux/armhf', 'linux/arm/v7'],
    ['linux/i686', 'linux/386'],
    ['windows/amd64', 'windows/amd64'],
    [' linux/s390x ', 'linux/s390x'],
    ['linux', null],
    ['amd64', null],
    ['linux/', null],
    ['linux/amd64/v3/x', null],
    ['unknown/unknown', null],
    ['linux/../amd64', null],
  ];
  for (const [text, want] of cases) {
    const got = parsePlatform(text);
    assert.equal(got && formatPlatform(got), want, text);
  }
  // A manifest holds only the one spelling.
  for (const ok of ['linux/amd64', 'linux/arm64', 'linux/arm/v7', 'windows/amd64']) assert.ok(isCanonicalPlatform(ok), ok);
  for (const bad of ['linux/x86_64', 'linux/arm64/v8', 'linux/arm', 'Linux/amd64', 'linux/amd64/', 'unknown/unknown']) assert.ok(!isCanonicalPlatform(bad), bad);
});

test('the engine platform comes from /version (Go names) and /info (uname -m, the only place an ARM variant shows)', () => {
  // Answers as engines of the matrix give them, cut to the fields used.
  assert.deepEqual(enginePlatform({ Os: 'linux', Arch: 'amd64' }, { OSType: 'linux', Architecture: 'x86_64' }), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(enginePlatform({ Os: 'linux', Arch: 'arm64' }, { OSType: 'linux', Architecture: 'aarch64' }), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(enginePlatform({ Os: 'linux', Arch: 'arm' }, { OSType: 'linux', Architecture: 'armv7l' }), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.deepEqual(enginePlatform({ Os: 'linux', Arch: 'arm' }, { OSType: 'linux', Architecture: 'armv6l' }), { os: 'linux', architecture: 'arm', variant: 'v6' });
  // /version without Arch: uname's name, normalised.
  assert.deepEqual(enginePlatform({ Os: 'linux' }, { OSType: 'linux', Architecture: 'aarch64' }), { os: 'linux', architecture: 'arm64' });
});

test('how an image fits a host: same os and architecture; an older ARM variant runs on a newer CPU, never the reverse', () => {
  assert.equal(platformFit(p('linux/amd64'), p('linux/amd64')), 0);
  assert.equal(platformFit(p('linux/amd64'), p('linux/arm64')), null);
  assert.equal(platformFit(p('linux/amd64'), p('linux/386')), null);
  assert.equal(platformFit(p('linux/amd64'), p('windows/amd64')), null);
  assert.equal(platformFit(p('linux/arm/v7'), p('linux/arm/v7')), 0);
  assert.equal(platformFit(p('linux/arm/v7'), p('linux/arm/v6')), 2);
  assert.equal(platformFit(p('linux/arm/v6'), p('linux/arm/v7')), null);
  assert.equal(platformFit(p('linux/amd64'), p('linux/amd64/v3')), 2);
  const fromConfig = platformOfConfig(Buffer.from('{"architecture":"aarch64","os":"linux","variant":"v8"}'));
  assert.equal(fromConfig && formatPlatform(fromConfig), 'linux/arm64');
  assert.equal(platformOfConfig(Buffer.from('{"architecture":"unknown","os":"unknown"}')), null);
  assert.equal(platformOfConfig(Buffer.from('{"rootfs":{}}')), null);
});

/** An image record whose config (kept in `configs`) names `configPlatform`. */
function image(configs: Map<string, Buffer>, refs: string[], configPlatform: Platform | null, platform?: string): ImageRecord {
  const config = Buffer.from(JSON.stringify({ ...(configPlatform ?? {}), rootfs: { type: 'layers', diff_ids: [] }, n: configs.size }));
  const digest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  configs.set(digest, config);
  return { refs, id: digest, config: { digest, size: config.length }, manifest: { digest, size: 0 }, layers: [], ...(platform ? { platform } : {}) };
}

test('the variant for the host: per ref the best fit, in manifest order; a ref without one is refused naming it and what the bundle has', async () => {
  const configs = new Map<string, Buffer>();
  const read = async (d: string) => configs.get(d)!;
  const amd = image(configs, ['a:1'], p('linux/amd64'), 'linux/amd64');
  const arm = image(configs, ['a:1'], p('linux/arm64'), 'linux/arm64');
  const v6 = image(configs, ['b:1'], p('linux/arm/v6'), 'linux/arm/v6');
  const v7 = image(configs, ['b:1'], p('linux/arm/v7'), 'linux/arm/v7');
  const all = [amd, arm, v6, v7];
  assert.deepEqual(await variantsForHost([amd, arm], p('linux/amd64'), read, 'x 1.0.0'), [amd]);
  assert.deepEqual(await variantsForHost([amd, arm], p('linux/arm64'), read, 'x 1.0.0'), [arm]);
  assert.deepEqual(await variantsForHost([v6, v7], p('linux/arm/v7'), read, 'x 1.0.0'), [v7]);
  assert.deepEqual(await variantsForHost([v6, v7], p('linux/arm/v6'), read, 'x 1.0.0'), [v6]);

  await assert.rejects(variantsForHost(all, p('linux/amd64'), read, 'x 1.0.0'), (e: AirlockError) => {
    assert.equal(e.exitCode, 13);
    assert.equal(e.reason, 'platform-unavailable');
    assert.equal(e.message, "x 1.0.0 has no linux/amd64 variant of image b:1 (the bundle has linux/arm/v6, linux/arm/v7); this host's engine runs linux/amd64");
    return true;
  });
  await assert.rejects(variantsForHost(all, p('linux/s390x'), read, 'x 1.0.0'), /no linux\/s390x variant of 2 images: a:1 \(the bundle has linux\/amd64, linux\/arm64\); b:1 \(the bundle has linux\/arm\/v6, linux\/arm\/v7\)/);

  // A bundle that records no platforms: each image's config decides; one that names none runs anywhere.
  const legacy = image(configs, ['c:1'], p('linux/arm64'));
  const unnamed = image(configs, ['d:1'], null);
  await assert.rejects(variantsForHost([legacy], p('linux/amd64'), read, 'y 1.0.0'), /y 1\.0\.0 has no linux\/amd64 variant of image c:1 \(the bundle has linux\/arm64\)/);
  assert.deepEqual(await variantsForHost([unnamed], p('linux/amd64'), read, 'y 1.0.0'), [unnamed]);

  // The manifest and the variant's own config must agree.
  const lying = image(configs, ['e:1'], p('linux/arm64'), 'linux/amd64');
  await assert.rejects(variantsForHost([lying], p('linux/amd64'), read, 'z 1.0.0'), (e: AirlockError) => {
    assert.equal(e.reason, 'platform-mismatch');
    assert.equal(e.exitCode, 11);
    assert.match(e.message, /image e:1: the manifest says it is for linux\/amd64, its config says linux\/arm64/);
    return true;
  });
});
