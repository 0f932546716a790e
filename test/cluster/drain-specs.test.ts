import { test } from 'node:test';
import assert from 'node:assert/strict';
import { awayFrom, heldOf, movingSpec, needsRestore, restoredSpec, START_FIRST } from '../../src/cluster/drain-specs.js';
import { resolveNode } from '../../src/cluster/node-drain.js';
import type { ServiceSpec, SwarmNode } from '../../src/docker/types.js';
import type { AirlockError } from '../../src/errors/index.js';
import type { InventoryHost } from '../../src/remote/inventory.js';

const web = (): ServiceSpec => ({
  Name: 'web',
  Labels: { 'com.docker.stack.namespace': 'shop' },
  TaskTemplate: {
    ContainerSpec: { Image: 'shop/web:1' },
    Placement: { Constraints: ['node.labels.zone==a'], Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.rack' } }], MaxReplicas: 2 },
    ForceUpdate: 0,
  },
  Mode: { Replicated: { Replicas: 3 } },
  UpdateConfig: { Parallelism: 2, Delay: 10_000_000_000, FailureAction: 'rollback', Order: 'stop-first', Monitor: 5_000_000_000 },
});

test('moving a service off a node adds one constraint and a start-first update, and changes nothing else', () => {
  const before = web();
  const moving = movingSpec(before, 'n0de2');
  assert.deepEqual(moving.TaskTemplate?.Placement, {
    Constraints: ['node.labels.zone==a', 'node.id!=n0de2'],
    Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.rack' } }],
    MaxReplicas: 2,
  });
  assert.deepEqual(moving.UpdateConfig, { Parallelism: 1, Delay: 0, Order: 'start-first', FailureAction: 'pause' });
  assert.deepEqual({ ...moving, TaskTemplate: { ...moving.TaskTemplate, Placement: undefined }, UpdateConfig: undefined }, { ...before, TaskTemplate: { ...before.TaskTemplate, Placement: undefined }, UpdateConfig: undefined });
  assert.deepEqual(before, web(), 'the spec given is not changed');
  // Twice (a retry after a read-again) adds the constraint once.
  assert.deepEqual(movingSpec(moving, 'n0de2').TaskTemplate?.Placement?.Constraints, ['node.labels.zone==a', 'node.id!=n0de2']);
  assert.equal(awayFrom('x'), 'node.id!=x');
  assert.notEqual(moving.UpdateConfig, START_FIRST, 'a copy, so a caller cannot change the constant');
});

test('put back: the held placement and update settings exactly, other changes made meanwhile kept', () => {
  const held = heldOf('svc1', web());
  const moving = movingSpec(web(), 'n0de2');
  assert.equal(needsRestore(moving, held), true);
  const back = restoredSpec(moving, held);
  assert.deepEqual(back, web());
  assert.equal(needsRestore(back, held), false);
  // Someone scaled the service during the drain: that stays.
  const scaled = { ...moving, Mode: { Replicated: { Replicas: 5 } } };
  assert.deepEqual(restoredSpec(scaled, held), { ...web(), Mode: { Replicated: { Replicas: 5 } } });
});

test('a spec with no placement gets an empty one back (a nil one panics the manager), and no update settings', () => {
  const bare: ServiceSpec = { Name: 'api', TaskTemplate: { ContainerSpec: { Image: 'api:1' } }, Mode: { Replicated: { Replicas: 2 } } };
  const held = heldOf('svc2', bare);
  assert.deepEqual(held, { id: 'svc2', name: 'api' });
  const moving = movingSpec(bare, 'n1');
  assert.deepEqual(moving.TaskTemplate?.Placement, { Constraints: ['node.id!=n1'] });
  const back = restoredSpec(moving, held);
  assert.deepEqual(back, { ...bare, TaskTemplate: { ...bare.TaskTemplate, Placement: {} } });
  assert.ok(!('UpdateConfig' in back));
  // Put back already: an empty placement is what was held.
  assert.equal(needsRestore(back, held), false);
  // Held settings survive the journal's JSON unchanged.
  assert.deepEqual(JSON.parse(JSON.stringify(heldOf('svc1', web()))), heldOf('svc1', web()));
});

function node(id: string, hostname: string, addr: string, state = 'ready'): SwarmNode {
  return { ID: id, Version: { Index: 1 }, Spec: { Role: 'worker', Availability: 'active' }, Status: { State: state, Addr: addr }, Description: { Hostname: hostname } } as SwarmNode;
}

test('a node is named by ID, hostname or inventory name; an unknown one is not found, naming those there are', () => {
  const nodes = [node('id1', 'alpha', '10.0.0.1'), node('id2', 'beta', '10.0.0.2'), node('old2', 'beta', '10.0.0.2', 'down')];
  const hosts = [{ name: 'h2', address: '10.0.0.2' }] as InventoryHost[];
  assert.equal(resolveNode(nodes, 'id1').ID, 'id1');
  assert.equal(resolveNode(nodes, 'alpha').ID, 'id1');
  assert.equal(resolveNode(nodes, 'h2', hosts).ID, 'id2', 'the ready node at the address, not the one left behind');
  assert.throws(
    () => resolveNode(nodes, 'gamma', hosts),
    (e: AirlockError) => e.exitCode === 4 && e.reason === 'node-not-found' && /no node gamma in the swarm \(nodes: alpha, beta/.test(e.message),
  );
});
