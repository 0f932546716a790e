import { test } from 'node:test';
import assert from 'node:assert/strict';
import { demoteBreaksQuorum, downBreaksQuorum, quorumOf } from '../../src/cluster/quorum.js';
import type { SwarmNode } from '../../src/docker/types.js';

function node(id: string, manager?: 'reachable' | 'unreachable'): SwarmNode {
  return {
    ID: id,
    Version: { Index: 1 },
    Spec: { Role: manager ? 'manager' : 'worker' },
    Status: { State: manager === 'unreachable' ? 'down' : 'ready' },
    ...(manager ? { ManagerStatus: { Reachability: manager, Addr: `${id}:2377` } } : {}),
  } as SwarmNode;
}

test('three managers with one stopped: quorum held with no spare', () => {
  const nodes = [node('m1', 'reachable'), node('m2', 'reachable'), node('m3', 'unreachable'), node('w1')];
  assert.deepEqual(quorumOf(nodes), { managers: 3, reachable: 2, needed: 2, spare: 0 });
  assert.match(downBreaksQuorum(nodes, 'm1') ?? '', /^1 of 3 managers would be reachable, and the swarm needs 2$/);
  // A worker, or a manager already down, takes nothing more away.
  assert.equal(downBreaksQuorum(nodes, 'w1'), null);
  assert.equal(downBreaksQuorum(nodes, 'm3'), null);
});

test('three reachable managers: one may go down, not two', () => {
  const nodes = [node('m1', 'reachable'), node('m2', 'reachable'), node('m3', 'reachable')];
  assert.equal(downBreaksQuorum(nodes, 'm1'), null);
  assert.match(downBreaksQuorum(nodes, 'm1', ['m2']) ?? '', /1 of 3 managers/);
});

test('demoting: the demoted manager leaves the count', () => {
  // 3 managers, 1 down: demoting a reachable one leaves 1 of 2 reachable, and 2 need 2.
  const oneDown = [node('m1', 'reachable'), node('m2', 'reachable'), node('m3', 'unreachable')];
  assert.match(demoteBreaksQuorum(oneDown, 'm1') ?? '', /^1 of the 2 managers left would be reachable, and they need 2$/);
  // Demoting the one that is down leaves 2 of 2.
  assert.equal(demoteBreaksQuorum(oneDown, 'm3'), null);
  // 3 reachable: demoting one leaves 2 of 2.
  assert.equal(demoteBreaksQuorum([node('m1', 'reachable'), node('m2', 'reachable'), node('m3', 'reachable')], 'm1'), null);
  assert.equal(demoteBreaksQuorum([node('m1', 'reachable')], 'm1'), 'it is the last manager');
  assert.equal(demoteBreaksQuorum(oneDown, 'nope'), null);
});
