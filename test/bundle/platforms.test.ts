/**
 * Multi-platform bundles, build side (issue 15): `bundle build --platform`
 * and `platforms:` take every image for every platform named, from OCI
 * archives (nested indexes, attestations), flat indexes whose configs say
 * the platform, and multi-platform `docker save` archives that name
 * platforms they do not hold. The manifest records each variant's platform
 * and requires "platforms"; verify and inspect show them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import type { Manifest } from '../../src/bundle/manifest.js';
import { makeMultiPlatformProject, makeSigner, runCli, tempDir, type Signer } from '../helpers/fixtures.js';
import { Bundle } from '../helpers/tamper.js';
import type { WrittenVariant } from '../helpers/images.js';

async function build(def: string, signer: Signer, out: string, extra: string[] = []) {
  return runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', out, '--json', ...extra], { SOURCE_DATE_EPOCH: '1767225600' });
}

async function manifestOf(path: string): Promise<Manifest> {
  return (await Bundle.from(await readFile(path))).manifest;
}

/** The image records a manifest should hold for `variants`: one per platform, with the archive's config and manifest digests. */
const expected = (variants: WrittenVariant[]) =>
  variants
    .map((v) => ({ refs: [v.ref], platform: `linux/${v.platform.architecture}`, id: v.config, manifest: v.manifest }))
    .sort((a, b) => (a.platform < b.platform ? -1 : 1));
const recorded = (m: Manifest) => m.images.map((i) => ({ refs: i.refs, platform: i.platform, id: i.id, manifest: i.manifest.digest }));

test('--platform takes both variants from a buildx OCI archive (nested index, attestations skipped); verify and inspect show them', async (t) => {
  const { dir, cleanup } = await tempDir('airlock-platforms-');
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const { definition, ref, variants } = await makeMultiPlatformProject(join(dir, 'p'), { layout: 'buildx' });
  const r = await build(definition, signer, join(dir, 'out'), ['--platform', 'linux/amd64,linux/arm64/v8']);
  assert.equal(r.code, 0, r.stderr);
  const built = JSON.parse(r.stdout) as { path: string; platforms: Record<string, string[]> };
  assert.deepEqual(built.platforms, { [ref]: ['linux/amd64', 'linux/arm64'] });

  const m = await manifestOf(built.path);
  assert.equal(m.format, 'airlock.bundle.v2');
  assert.deepEqual(m.requires, ['platforms', 'zstd']);
  // One record per variant, with the archive's own config and manifest digests: the engine ids on either store.
  assert.deepEqual(recorded(m), expected(variants));
  // The attestation manifests (unknown/unknown) and their in-toto layers are not in the bundle.
  assert.ok(m.blobs.every((b) => b.kind !== 'layer' || m.images.some((i) => i.layers.some((l) => l.digest === b.digest))));
  assert.equal(m.blobs.filter((b) => b.kind === 'image-config').length, 2);

  const verify = await runCli(['bundle', 'verify', built.path, '--trust', signer.trustDir, '--json']);
  assert.equal(verify.code, 0, verify.stderr);
  const human = await runCli(['bundle', 'inspect', built.path, '--trust', signer.trustDir]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /IMAGE\s+PLATFORM\s+ID\s+LAYERS\s+SIZE/);
  assert.match(human.stdout, new RegExp(`${ref.replace(/[./]/g, '\\$&')}\\s+linux/amd64\\s+${variants[0]!.config.slice(7, 19)}\\s+2\\s`));
  assert.match(human.stdout, new RegExp(`${ref.replace(/[./]/g, '\\$&')}\\s+linux/arm64\\s+${variants[1]!.config.slice(7, 19)}\\s+1\\s`));
  const json = JSON.parse((await runCli(['bundle', 'inspect', built.path, '--trust', signer.trustDir, '--json'])).stdout) as { platforms: Record<string, string[]>; manifest: Manifest };
  assert.deepEqual(json.platforms, { [ref]: ['linux/amd64', 'linux/arm64'] });
  assert.deepEqual(json.manifest.images.map((i) => i.platform), ['linux/amd64', 'linux/arm64']);

  // Reproducible, like any build.
  const again = await build(definition, signer, join(dir, 'out-again'), ['--platform', 'linux/arm64,linux/amd64']);
  assert.equal(again.code, 0, again.stderr);
  assert.ok((await readFile(built.path)).equals(await readFile((JSON.parse(again.stdout) as { path: string }).path)), 'two builds with the same platforms differ');
});

test('a flat index without descriptor platforms: each variant is the platform its config names; the definition lists the platforms, --platform wins', async (t) => {
  const { dir, cleanup } = await tempDir('airlock-platforms-');
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const { definition, variants } = await makeMultiPlatformProject(join(dir, 'p'), { layout: 'flat', descriptorPlatforms: false, platforms: ['linux/arm64', 'linux/x86_64'] });
  const both = await build(definition, signer, join(dir, 'both'));
  assert.equal(both.code, 0, both.stderr);
  assert.deepEqual(recorded(await manifestOf((JSON.parse(both.stdout) as { path: string }).path)), expected(variants));

  const one = await build(definition, signer, join(dir, 'one'), ['--platform', 'linux/arm64']);
  assert.equal(one.code, 0, one.stderr);
  const m = await manifestOf((JSON.parse(one.stdout) as { path: string }).path);
  assert.deepEqual(recorded(m), expected(variants).filter((v) => v.platform === 'linux/arm64'));
  // Only the arm64 variant's blobs travel.
  assert.equal(m.blobs.filter((b) => b.kind === 'layer').length, 1);
});

test('a multi-platform docker save that names a platform it does not hold: the held one builds, the missing one is refused naming image, platform and archive', async (t) => {
  const { dir, cleanup } = await tempDir('airlock-platforms-');
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const { definition, ref, variants } = await makeMultiPlatformProject(join(dir, 'p'), { layout: 'docker-save', absent: ['arm64'] });
  const archive = join(dir, 'p', 'images', 'app.tar');

  const held = await build(definition, signer, join(dir, 'held'), ['--platform', 'linux/amd64']);
  assert.equal(held.code, 0, held.stderr);
  assert.deepEqual(recorded(await manifestOf((JSON.parse(held.stdout) as { path: string }).path)), expected(variants).filter((v) => v.platform === 'linux/amd64'));

  const missing = await build(definition, signer, join(dir, 'missing'), ['--platform', 'linux/amd64,linux/arm64']);
  assert.equal(missing.code, 4, missing.stdout + missing.stderr);
  const err = JSON.parse(missing.stdout) as { reason: string; message: string; subject: string; hint: string };
  assert.equal(err.reason, 'platform-not-found');
  assert.equal(err.message, `image ${ref}: ${archive} names platform linux/arm64 but does not hold it (its blobs are not in the archive)`);
  assert.equal(err.subject, archive);
  assert.match(err.hint, /docker pull --platform linux\/arm64 mp\/app:1\.0\.0/);

  // A platform the archive does not name at all.
  const other = await build(definition, signer, join(dir, 'other'), ['--platform', 'linux/s390x']);
  assert.equal(other.code, 4, other.stdout + other.stderr);
  assert.equal((JSON.parse(other.stdout) as { message: string }).message, `image ${ref} has no linux/s390x variant: ${archive} has linux/amd64, linux/arm64 (named, not held)`);

  // Without --platform the build is as before: one image per ref (the one the archive holds), a v1 bundle.
  const plain = await build(definition, signer, join(dir, 'plain'));
  assert.equal(plain.code, 0, plain.stderr);
  const pm = await manifestOf((JSON.parse(plain.stdout) as { path: string }).path);
  assert.equal(pm.images.length, 1);
  assert.equal(pm.images[0]!.platform, undefined);
  assert.ok(!(pm.requires ?? []).includes('platforms'));
  // A refused build leaves nothing behind.
  for (const out of ['missing', 'other']) assert.deepEqual(await readdir(join(dir, out)).catch(() => []), []);
});

test('platforms that are not platforms: --platform is a usage error (2), platforms: in the definition a bad definition (3)', async (t) => {
  const { dir, cleanup } = await tempDir('airlock-platforms-');
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const { definition } = await makeMultiPlatformProject(join(dir, 'p'));
  const flag = await build(definition, signer, join(dir, 'out'), ['--platform', 'linux/amd64,amd64']);
  assert.equal(flag.code, 2, flag.stdout + flag.stderr);
  assert.match((JSON.parse(flag.stdout) as { message: string }).message, /--platform: "amd64" is not a platform: write os\/architecture\[\/variant\]/);

  const def = YAML.parse(await readFile(definition, 'utf8')) as Record<string, unknown>;
  await writeFile(definition, YAML.stringify({ ...def, platforms: ['linux/amd64', 'unknown/unknown'] }));
  const bad = await build(definition, signer, join(dir, 'out'));
  assert.equal(bad.code, 3, bad.stdout + bad.stderr);
  const err = JSON.parse(bad.stdout) as { reason: string; message: string };
  assert.equal(err.reason, 'bad-definition');
  assert.match(err.message, /platforms\[1\].*"unknown\/unknown" is not a platform/);
});
