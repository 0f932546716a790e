/** Which nodes a global service belongs on: constraints and platforms as swarm reads them. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Service, SwarmNode, Task } from '../../src/docker/index.js';
import { progressOf } from '../../src/stack/converge.js';
import { eligibleNodes, matchesConstraint } from '../../src/stack/placement.js';

function node(id: string, o: { role?: 'manager' | 'worker'; labels?: Record<string, string>; state?: string; availability?: 'active' | 'pause' | 'drain'; arch?: string } = {}): SwarmNode {
  return {
    ID: id,
    Version: { Index: 1 },
    Spec: { Role: o.role ?? 'worker', Availability: o.availability ?? 'active', Labels: o.labels ?? {} },
    Description: { Hostname: `host-${id}`, Platform: { OS: 'linux', Architecture: o.arch ?? 'x86_64' }, Engine: { Labels: { zone: 'a' } } },
    Status: { State: o.state ?? 'ready' },
  } as unknown as SwarmNode;
}

function globalService(constraints: string[] = [], platforms: { OS?: string; Architecture?: string }[] = []): Service {
  return { ID: 's', Spec: { Name: 'agent', Mode: { Global: {} }, TaskTemplate: { Placement: { Constraints: constraints, Platforms: platforms } } } } as unknown as Service;
}

test('a constraint compares values without case; an absent label fails == and passes !=', () => {
  const n = node('n1', { role: 'manager', labels: { Disk: 'SSD' } });
  assert.equal(matchesConstraint(n, 'node.role == manager'), true);
  assert.equal(matchesConstraint(n, 'node.role==Manager'), true);
  assert.equal(matchesConstraint(n, 'node.role != manager'), false);
  assert.equal(matchesConstraint(n, 'node.labels.Disk == ssd'), true);
  assert.equal(matchesConstraint(n, 'node.labels.disk == ssd'), false, 'label names keep their case');
  assert.equal(matchesConstraint(n, 'node.labels.gpu == yes'), false);
  assert.equal(matchesConstraint(n, 'node.labels.gpu != yes'), true);
  assert.equal(matchesConstraint(n, 'engine.labels.zone == a'), true);
  assert.equal(matchesConstraint(n, 'node.hostname == host-n1'), true);
  assert.equal(matchesConstraint(n, 'node.platform.arch == x86_64'), true);
  assert.equal(matchesConstraint(n, 'nonsense'), false, 'an expression it cannot read places nothing');
});

test('a global service belongs on every ready, active node its constraints and platforms admit', () => {
  const nodes = [
    node('m1', { role: 'manager' }),
    node('w1', { labels: { tier: 'edge' } }),
    node('w2', { availability: 'drain' }),
    node('w3', { state: 'down' }),
    node('w4', { arch: 'aarch64', labels: { tier: 'edge' } }),
  ];
  const ids = (s: Service) => eligibleNodes(s, nodes).map((n) => n.ID);
  assert.deepEqual(ids(globalService()), ['m1', 'w1', 'w4']);
  assert.deepEqual(ids(globalService(['node.role == worker'])), ['w1', 'w4']);
  assert.deepEqual(ids(globalService(['node.labels.tier == edge', 'node.role != manager'])), ['w1', 'w4']);
  assert.deepEqual(ids(globalService([], [{ OS: 'linux', Architecture: 'arm64' }])), ['w4'], 'aarch64 is arm64');
  assert.deepEqual(ids(globalService([], [{ OS: 'linux', Architecture: 'amd64' }, { OS: 'linux', Architecture: 'arm64' }])), ['m1', 'w1', 'w4']);
  assert.deepEqual(ids(globalService([], [{ OS: 'windows' }])), []);
});

test('a task whose spec differs from the service only in placement is current where its node meets the new placement, as swarm keeps it', () => {
  const template = { ContainerSpec: { Image: 'app:2' }, Placement: { Constraints: ['node.labels.tier == edge'] } };
  const service = { ID: 's', Spec: { Name: 'app', Mode: { Replicated: { Replicas: 2 } }, TaskTemplate: template }, ServiceStatus: { RunningTasks: 2, DesiredTasks: 2 } } as unknown as Service;
  const task = (id: string, nodeId: string, spec: object) =>
    ({ ID: id, ServiceID: 's', NodeID: nodeId, DesiredState: 'running', Status: { State: 'running', Timestamp: '2026-12-07T00:00:00Z' }, Spec: spec }) as unknown as Task;
  const nodes = [node('w1', { labels: { tier: 'edge' } }), node('w2')];
  const oldPlacement = { ContainerSpec: { Image: 'app:2' }, Placement: { Constraints: ['node.role == worker'] } };
  // On w1 (edge) the task stays, as swarm keeps it; on w2 swarm replaces it, so it is not current.
  const p = progressOf(service, [task('t1', 'w1', oldPlacement), task('t2', 'w2', oldPlacement)], nodes);
  assert.deepEqual([p.ready, p.desired, p.waiting], [1, 2, ['1 running an earlier spec']]);
  // Another image is another spec, wherever it runs.
  const q = progressOf(service, [task('t1', 'w1', { ...oldPlacement, ContainerSpec: { Image: 'app:1' } })], nodes);
  assert.equal(q.ready, 0);
});
