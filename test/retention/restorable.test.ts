import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ImageRecord } from '../../src/bundle/manifest.js';
import { missingImageBlobs, prunedImageError } from '../../src/retention/index.js';
import { ContentStore } from '../../src/store/content-store.js';
import { tempDir } from '../helpers/fixtures.js';

test('missingImageBlobs names the blobs of an image the store lost; prunedImageError says what to do', async () => {
  const t = await tempDir('airlock-restorable-');
  try {
    const store = new ContentStore(t.dir);
    const config = await store.putBytes(Buffer.from('{"rootfs":{"diff_ids":[]}}'));
    const manifest = await store.putBytes(Buffer.from('{"layers":[]}'));
    const layer = `sha256:${'a'.repeat(64)}`;
    const img: ImageRecord = {
      refs: ['demo/web:1.0.0'],
      id: config,
      config: { digest: config, size: 1 },
      manifest: { digest: manifest, size: 1 },
      layers: [{ digest: layer, size: 1, mediaType: 'application/vnd.oci.image.layer.v1.tar', diffId: layer }],
    };
    assert.deepEqual(await missingImageBlobs(store, img), [layer]);
    const err = prunedImageError('demo/web:1.0.0', img, [layer], ['demo 1.0.0']);
    assert.equal(err.reason, 'pruned');
    assert.equal(err.exitCode, 4);
    assert.match(err.message, /^image demo\/web:1\.0\.0 \(sha256:[0-9a-f]{64}\) was pruned: it is gone from the engine, and 1 of its 3 blobs from the content store$/);
    assert.match(err.hint!, /import bundle demo 1\.0\.0 again/);
  } finally {
    await t.cleanup();
  }
});
