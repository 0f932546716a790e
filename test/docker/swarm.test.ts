/**
 * Swarm endpoints against the real dockerd. They need a swarm manager, and
 * `swarm init` on the shared test daemon would race other suites that manage
 * swarm membership. So: if the daemon already is a manager, run against it
 * (touching only objects named airlock-test-*); if it is in no swarm, init a
 * single-node swarm and leave it afterwards only when AIRLOCK_TEST_SWARM_INIT=1;
 * otherwise skip with a message saying so.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Docker, OutOfSequenceError, isConflict, isNotFound, labelFilter, resolveDockerHost } from '../../src/docker/index.js';
import { buildSaveTar } from './image-tar.js';

const socketPath = resolveDockerHost().endpoint.slice('unix://'.length);
const unique = `${process.pid}-${Date.now()}`;
const name = (kind: string) => `airlock-test-${kind}-${unique}`;

async function swarmMode(): Promise<{ skip: string | false; initOurselves: boolean }> {
  if (!existsSync(socketPath)) return { skip: `no Docker daemon socket at ${socketPath}`, initOurselves: false };
  const docker = new Docker({ retry: false });
  try {
    const s = (await docker.system.info()).Swarm;
    if (s.LocalNodeState === 'active' && s.ControlAvailable) return { skip: false, initOurselves: false };
    if (s.LocalNodeState === 'inactive' && process.env['AIRLOCK_TEST_SWARM_INIT'] === '1') {
      return { skip: false, initOurselves: true };
    }
    return {
      skip: `daemon is not a swarm manager (state ${s.LocalNodeState || 'unknown'}); set AIRLOCK_TEST_SWARM_INIT=1 to init one`,
      initOurselves: false,
    };
  } finally {
    await docker.close();
  }
}

const mode = await swarmMode();

describe('swarm endpoints against a real dockerd', { skip: mode.skip }, () => {
  const docker = new Docker();
  const imageRef = `airlock-test/swarm:${unique}`;

  before(async () => {
    if (mode.initOurselves) {
      const nodeId = await docker.swarm.init({ ListenAddr: '127.0.0.1:2377', AdvertiseAddr: '127.0.0.1' });
      assert.match(nodeId, /^[a-z0-9]{25}$/);
      await assert.rejects(docker.swarm.init({ ListenAddr: '127.0.0.1:2377', AdvertiseAddr: '127.0.0.1' }), (e: unknown) =>
        /already part of a swarm/.test((e as Error).message),
      );
    }
  });

  after(async () => {
    await docker.services.delete(name('svc')).catch(() => undefined);
    await docker.images.delete(imageRef, { force: true }).catch(() => undefined);
    if (mode.initOurselves) await docker.swarm.leave({ force: true });
    await docker.close();
  });

  test('swarm inspect and join tokens', async () => {
    const swarm = await docker.swarm.inspect();
    assert.ok(swarm.ID);
    assert.equal(typeof swarm.Version.Index, 'number');
    const tokens = await docker.swarm.joinTokens();
    assert.match(tokens.Worker, /^SWMTKN-1-/);
    assert.match(tokens.Manager, /^SWMTKN-1-/);
  });

  test('node update needs the current version; a stale one is OutOfSequenceError', async () => {
    const info = await docker.system.info();
    const nodes = await docker.nodes.list({ filters: { id: info.Swarm.NodeID } });
    assert.equal(nodes.length, 1);
    const node = await docker.nodes.inspect(info.Swarm.NodeID);
    const labels = { ...node.Spec.Labels, [`airlock-test-${unique}`]: 'yes' };
    await docker.nodes.update(node.ID, node.Version.Index, { ...node.Spec, Labels: labels });
    await assert.rejects(docker.nodes.update(node.ID, node.Version.Index, node.Spec), (e: unknown) => {
      assert.ok(e instanceof OutOfSequenceError, String(e));
      assert.equal(e.reason, 'out-of-sequence');
      assert.ok(e.status !== undefined && e.status >= 400);
      return true;
    });
    const now = await docker.nodes.inspect(node.ID);
    assert.equal(now.Spec.Labels?.[`airlock-test-${unique}`], 'yes');
    const restored = { ...now.Spec.Labels };
    delete restored[`airlock-test-${unique}`];
    await docker.nodes.update(now.ID, now.Version.Index, { ...now.Spec, Labels: restored });
  });

  test('overlay network create, inspect, list by label, delete', async () => {
    const n = name('net');
    const created = await docker.networks.create({
      Name: n,
      Driver: 'overlay',
      Attachable: true,
      Labels: { 'com.docker.stack.namespace': `airlock-test-${unique}` },
    });
    try {
      const net = await docker.networks.inspect(created.Id);
      assert.equal(net.Name, n);
      assert.equal(net.Scope, 'swarm');
      const listed = await docker.networks.list({ filters: { label: labelFilter({ 'com.docker.stack.namespace': `airlock-test-${unique}` }) } });
      assert.deepEqual(listed.map((x) => x.Id), [created.Id]);
    } finally {
      await docker.networks.delete(created.Id);
    }
    await assert.rejects(docker.networks.inspect(created.Id), (e: unknown) => isNotFound(e));
  });

  test('secrets and configs: create from bytes, inspect, name conflict, delete', async () => {
    const s = await docker.secrets.create({ Name: name('secret'), Data: Buffer.from('hunter2'), Labels: { a: 'b' } });
    try {
      const secret = await docker.secrets.inspect(s.ID);
      assert.equal(secret.Spec.Name, name('secret'));
      assert.deepEqual(secret.Spec.Labels, { a: 'b' });
      assert.equal((secret.Spec as { Data?: string }).Data, undefined, 'secret data is never returned');
      await assert.rejects(docker.secrets.create({ Name: name('secret'), Data: 'eA==' }), (e: unknown) => isConflict(e));
      const listed = await docker.secrets.list({ filters: { name: name('secret') } });
      assert.deepEqual(listed.map((x) => x.ID), [s.ID]);
    } finally {
      await docker.secrets.delete(s.ID);
    }

    const c = await docker.configs.create({ Name: name('config'), Data: Buffer.from('listen 80;\n') });
    try {
      const config = await docker.configs.inspect(name('config'));
      assert.equal(config.ID, c.ID);
      assert.equal(Buffer.from(config.Spec.Data ?? '', 'base64').toString(), 'listen 80;\n');
    } finally {
      await docker.configs.delete(c.ID);
    }
  });

  test('service create, update with version, stale update, tasks, list, delete', async (t) => {
    if (!existsSync('/bin/busybox')) return t.skip('/bin/busybox missing (busybox-static)');
    const built = await buildSaveTar({
      repoTags: [imageRef],
      files: [{ name: 'bin/' }, { name: 'bin/busybox', data: readFileSync('/bin/busybox'), mode: 0o755 }],
    });
    assert.deepEqual((await docker.images.loadAll(built.tar)).tags, [imageRef]);

    const svcName = name('svc');
    const labels = { 'com.docker.stack.namespace': `airlock-test-${unique}` };
    const created = await docker.services.create({
      Name: svcName,
      Labels: labels,
      TaskTemplate: { ContainerSpec: { Image: imageRef, Command: ['/bin/busybox', 'sleep', '3600'] } },
      Mode: { Replicated: { Replicas: 1 } },
    });
    assert.ok(created.ID);

    const svc = await docker.services.inspect(svcName);
    assert.equal(svc.ID, created.ID);
    await docker.services.update(svc.ID, svc.Version.Index, { ...svc.Spec, Labels: { ...labels, rev: '2' } });
    await assert.rejects(docker.services.update(svc.ID, svc.Version.Index, svc.Spec), (e: unknown) => e instanceof OutOfSequenceError);
    const updated = await docker.services.inspect(svc.ID);
    assert.equal(updated.Spec.Labels?.['rev'], '2');
    assert.equal(updated.PreviousSpec?.Labels?.['rev'], undefined);

    const listed = await docker.services.list({ filters: { label: labelFilter(labels) }, status: true });
    assert.deepEqual(listed.map((x) => x.ID), [svc.ID]);

    // The task appears once the orchestrator has scheduled it.
    let tasks: Awaited<ReturnType<typeof docker.tasks.list>> = [];
    for (let i = 0; i < 50 && tasks.length === 0; i++) {
      tasks = await docker.tasks.list({ filters: { service: svc.ID } });
      if (tasks.length === 0) await sleep(100);
    }
    assert.ok(tasks.length >= 1);
    assert.equal(tasks[0]?.ServiceID, svc.ID);
    assert.equal((await docker.tasks.inspect(tasks[0]?.ID ?? '')).ServiceID, svc.ID);

    await docker.services.delete(svc.ID);
    await assert.rejects(docker.services.inspect(svc.ID), (e: unknown) => isNotFound(e));
  });
});
