/** Which nodes a global service belongs on: constraints and platforms as swarm reads them. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Service, SwarmNode } from '../../src/docker/index.js';
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
