/**
 * Against the real dockerd at /var/run/docker.sock (or DOCKER_HOST=unix://),
 * as started by scripts/start-dockerd. Skipped only when there is no socket.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import {
  Docker,
  DockerError,
  MAX_API_VERSION,
  MIN_API_VERSION,
  compareApiVersions,
  isEngineUnreachable,
  isNotFound,
  resolveDockerHost,
  unixSocketTransport,
  type ProgressMessage,
} from '../../src/docker/index.js';
import { buildSaveTar } from './image-tar.js';
import { engineImageStore } from '../helpers/engines.js';

const endpoint = resolveDockerHost().endpoint;
const socketPath = endpoint.slice('unix://'.length);
const skip = existsSync(socketPath) ? false : `no Docker daemon socket at ${socketPath} (run scripts/start-dockerd)`;
const BUSYBOX = '/bin/busybox';

describe('Docker Engine API against a real dockerd', { skip }, () => {
  test('negotiates min(daemon max, 1.51), never below 1.41', async () => {
    const docker = new Docker();
    try {
      const daemon = await docker.client.json<{ ApiVersion: string }>('GET', '/version', { versioned: false });
      const expected = compareApiVersions(daemon.ApiVersion, MAX_API_VERSION) > 0 ? MAX_API_VERSION : daemon.ApiVersion;
      const v = await docker.client.apiVersion();
      assert.equal(v, expected);
      assert.ok(compareApiVersions(v, MIN_API_VERSION) >= 0 && compareApiVersions(v, MAX_API_VERSION) <= 0, v);
      assert.equal((await docker.system.version()).ApiVersion, daemon.ApiVersion);
    } finally {
      await docker.close();
    }
  });

  test('ping and info', async () => {
    const docker = new Docker();
    try {
      const ping = await docker.system.ping();
      assert.match(ping.apiVersion ?? '', /^1\.\d+$/);
      assert.equal(ping.osType, 'linux');
      const info = await docker.system.info();
      assert.ok(info.ServerVersion.length > 0);
      assert.ok(['inactive', 'pending', 'active', 'error', 'locked'].includes(info.Swarm.LocalNodeState));
    } finally {
      await docker.close();
    }
  });

  test('inspecting a missing image is a typed not-found with status 404', async () => {
    const docker = new Docker();
    const ref = `airlock-test/missing:${process.pid}-${Date.now()}`;
    try {
      await assert.rejects(docker.images.inspect(ref), (e: unknown) => {
        assert.ok(e instanceof DockerError);
        assert.ok(isNotFound(e));
        assert.equal(e.kind, 'notFound');
        assert.equal(e.reason, 'not-found');
        assert.equal(e.status, 404);
        assert.match(e.daemonMessage ?? '', /no such image/i);
        assert.equal(e.exitCode, 4);
        return true;
      });
      assert.equal(await docker.images.find(ref), undefined);
    } finally {
      await docker.close();
    }
  });

  test('load a docker-save tar built from code, inspect, export, delete', async (t) => {
    if (!existsSync(BUSYBOX)) {
      t.skip(`${BUSYBOX} missing: apt-get install -y busybox-static`);
      return;
    }
    const docker = new Docker();
    const unique = `${process.pid}-${Date.now()}`;
    const ref = `airlock-test/docker-client:${unique}`;
    t.after(async () => {
      await docker.images.delete(ref, { force: true }).catch(() => undefined);
      await docker.close();
    });

    const built = await buildSaveTar({
      repoTags: [ref],
      files: [{ name: 'bin/' }, { name: 'bin/busybox', data: readFileSync(BUSYBOX), mode: 0o755 }],
      labels: { 'airlock.test': unique }, // a unique config, so the image is ours alone to delete
    });

    // Stream it in small chunks, as a bundle reader would.
    const chunks = function* () {
      for (let i = 0; i < built.tar.length; i += 64 * 1024) yield built.tar.subarray(i, i + 64 * 1024);
    };
    const messages: ProgressMessage[] = [];
    for await (const m of docker.images.load(() => Readable.from(chunks()))) messages.push(m);
    assert.ok(
      messages.some((m) => m.stream?.trim() === `Loaded image: ${ref}`),
      `progress: ${JSON.stringify(messages)}`,
    );

    const image = await docker.images.inspect(ref);
    // The classic store names the image by its config digest; the containerd store by the
    // manifest it made for this legacy archive, which its descriptor names.
    const id = engineImageStore() === 'containerd' ? image.Descriptor?.digest : built.imageId;
    assert.ok(id);
    assert.equal(image.Id, id);
    assert.deepEqual(image.RepoTags, [ref]);
    assert.deepEqual(image.RootFS.Layers, [built.diffId]);
    assert.equal(image.Config?.Labels?.['airlock.test'], unique);

    const listed = await docker.images.list({ filters: { reference: ref } });
    assert.deepEqual(listed.map((i) => i.Id), [id]);

    // Loading the same tar again is harmless and reports the tag again.
    const again = await docker.images.loadAll(built.tar);
    assert.deepEqual(again.tags, [ref]);

    const exported = await docker.images.export([ref]);
    const names: string[] = [];
    let manifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
    const extract = tar.extract();
    const reading = (async () => {
      for await (const entry of extract) {
        names.push(entry.header.name);
        const parts: Buffer[] = [];
        for await (const c of entry) parts.push(c as Buffer);
        if (entry.header.name === 'manifest.json') manifest = JSON.parse(Buffer.concat(parts).toString());
      }
    })();
    await Promise.all([pipeline(exported, extract), reading]);
    assert.ok(names.includes('manifest.json'), names.join(' '));
    assert.deepEqual(manifest[0]?.RepoTags, [ref]);
    assert.equal(manifest[0]?.Config.replace(/^blobs\/sha256\//, '').replace(/\.json$/, ''), built.imageId.slice(7));

    const deleted = await docker.images.delete(ref);
    assert.ok(deleted.some((d) => d.Untagged === ref), JSON.stringify(deleted));
    assert.ok(deleted.some((d) => d.Deleted === id), JSON.stringify(deleted));
    assert.equal(await docker.images.find(ref), undefined);
  });
});

describe('Docker Engine API without a daemon', () => {
  const missing = '/nonexistent/airlock-test/docker.sock';

  test('a missing socket is engine-unreachable at once when retries are off', async () => {
    const docker = new Docker({ transport: unixSocketTransport(missing), endpoint: `unix://${missing}`, retry: false });
    const t0 = Date.now();
    await assert.rejects(docker.system.info(), (e: unknown) => {
      assert.ok(isEngineUnreachable(e));
      assert.equal(e.kind, 'engine');
      assert.equal(e.exitCode, 15);
      assert.equal(e.code, 'ENOENT');
      assert.equal(e.status, undefined);
      return true;
    });
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
    await docker.close();
  });

  test('aborting the signal cancels the retry wait', async () => {
    let retries = 0;
    const docker = new Docker({
      transport: unixSocketTransport(missing),
      retry: { maxElapsedMs: 30_000, initialDelayMs: 5_000 },
      onRetry: () => retries++,
    });
    const signal = AbortSignal.timeout(200);
    const t0 = Date.now();
    await assert.rejects(docker.system.info({ signal }), (e: unknown) => {
      assert.equal((e as Error).name, 'TimeoutError');
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took < 2000, `took ${took} ms`);
    assert.equal(retries, 1);

    const ac = new AbortController();
    ac.abort(new Error('operator pressed ^C'));
    await assert.rejects(docker.system.ping({ signal: ac.signal }), { message: 'operator pressed ^C' });
    await docker.close();
  });
});
