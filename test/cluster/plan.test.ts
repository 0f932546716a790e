/** cluster up's rules, without an engine: who leads, who joins, who is left alone, what a node update changes. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseLead, nodeUpdate, planMembership, type EngineFacts, type Observed } from '../../src/cluster/plan.js';
import { AirlockError } from '../../src/errors/index.js';
import { parseInventory, type InventoryHost } from '../../src/remote/inventory.js';

const inv = parseInventory(
  'hosts.yml',
  `
defaults: { user: root, key: /k }
hosts:
  m1: { address: 10.0.0.1, roles: [manager] }
  m2: { address: 10.0.0.2, roles: [manager] }
  w1: { address: 10.0.0.3, roles: [worker], labels: { zone: b } }
`,
);
const [m1, m2, w1] = inv.hosts as [InventoryHost, InventoryHost, InventoryHost];

function facts(state: EngineFacts['swarm']['state'], nodeId = '', manager = false, clusterId?: string): Observed {
  return {
    ok: true,
    facts: {
      engineVersion: '26.1.5',
      apiVersion: '1.45',
      engineId: 'ID',
      swarm: { state, nodeId, controlAvailable: manager, ...(clusterId ? { clusterId } : {}), error: '' },
    },
  };
}
const down: Observed = { ok: false, error: new AirlockError('remote', 'm1 (10.0.0.1): connection refused', { reason: 'connection-refused', subject: 'm1' }) };
const obs = (entries: [InventoryHost, Observed][]) => new Map(entries.map(([h, o]) => [h.name, o]));

test('no swarm anywhere: init on the first manager, the others join with their roles', () => {
  const o = obs([[m1, facts('inactive')], [m2, facts('inactive')], [w1, facts('inactive')]]);
  const lead = chooseLead(inv.hosts, o);
  assert.deepEqual(lead.ok && [lead.lead.name, lead.init], ['m1', true]);
  const plan = planMembership(inv.hosts, o, { host: m1, init: true, memberIds: new Set() });
  assert.deepEqual(Object.fromEntries(plan), { m1: { kind: 'init' }, m2: { kind: 'join', role: 'manager' }, w1: { kind: 'join', role: 'worker' } });
});

test('an existing swarm is led by its first inventory manager; its members are left alone', () => {
  const o = obs([[m1, facts('inactive')], [m2, facts('active', 'N2', true, 'C')], [w1, facts('active', 'N3')]]);
  const lead = chooseLead(inv.hosts, o);
  assert.deepEqual(lead.ok && [lead.lead.name, lead.init], ['m2', false], 'm1 lost its state: it joins, no second swarm');
  const plan = planMembership(inv.hosts, o, { host: m2, init: false, clusterId: 'C', memberIds: new Set(['N2', 'N3']) });
  assert.deepEqual(Object.fromEntries(plan), { m1: { kind: 'join', role: 'manager' }, m2: { kind: 'member', nodeId: 'N2' }, w1: { kind: 'member', nodeId: 'N3' } });
});

test('a host in another swarm is an error naming it, never a leave', () => {
  const o = obs([[m1, facts('active', 'N1', true, 'C')], [m2, facts('active', 'X2', true, 'OTHER')], [w1, facts('active', 'X3')]]);
  const plan = planMembership(inv.hosts, o, { host: m1, init: false, clusterId: 'C', memberIds: new Set(['N1']) });
  for (const name of ['m2', 'w1']) {
    const p = plan.get(name)!;
    assert.equal(p.kind, 'error');
    assert.equal(p.kind === 'error' && p.error.reason, 'other-swarm');
    assert.match(p.kind === 'error' ? p.error.message : '', new RegExp(`^${name} \\(10\\.0\\.0\\.\\d\\) is already in another swarm`));
    assert.match(p.kind === 'error' ? (p.error.hint ?? '') : '', /never makes a node leave/);
  }
  // Same node ID, another cluster: still another swarm.
  const same = planMembership(inv.hosts, obs([[m1, facts('active', 'N1', true, 'C')], [m2, facts('active', 'N2', true, 'OTHER')], [w1, facts('inactive')]]), {
    host: m1,
    init: false,
    clusterId: 'C',
    memberIds: new Set(['N1', 'N2']),
  });
  assert.equal(same.get('m2')?.kind, 'error');
});

test('when a new swarm is made, a host already in one is in another swarm', () => {
  const o = obs([[m1, facts('inactive')], [m2, facts('inactive')], [w1, facts('active', 'X3')]]);
  const plan = planMembership(inv.hosts, o, { host: m1, init: true, memberIds: new Set() });
  assert.equal(plan.get('w1')?.kind, 'error');
});

test('an unreachable manager blocks the init: it may already run a swarm', () => {
  const lead = chooseLead(inv.hosts, obs([[m1, down], [m2, facts('inactive')], [w1, facts('inactive')]]));
  assert.equal(lead.ok, false);
  assert.equal(!lead.ok && lead.error.reason, 'no-manager');
  assert.match(!lead.ok ? lead.error.message : '', /m1 \(10\.0\.0\.1\) could not be reached/);
  // ... but a reachable manager that runs one leads.
  const ok = chooseLead(inv.hosts, obs([[m1, down], [m2, facts('active', 'N2', true, 'C')], [w1, facts('inactive')]]));
  assert.deepEqual(ok.ok && [ok.lead.name, ok.init], ['m2', false]);
});

test('locked and pending engines are errors with the fix', () => {
  const o = obs([[m1, facts('active', 'N1', true, 'C')], [m2, facts('locked', 'N2')], [w1, facts('pending', 'N3')]]);
  const plan = planMembership(inv.hosts, o, { host: m1, init: false, clusterId: 'C', memberIds: new Set(['N1']) });
  const m2p = plan.get('m2')!;
  const w1p = plan.get('w1')!;
  assert.equal(m2p.kind === 'error' && m2p.error.reason, 'swarm-locked');
  assert.equal(w1p.kind === 'error' && w1p.error.reason, 'swarm-state');
  assert.equal(plan.get('m1')?.kind, 'member');
});

test('node updates: inventory labels set, others kept, role brought to the inventory; nothing when equal', () => {
  const tracked = { 'io.airlock.labels': 'zone' };
  assert.equal(nodeUpdate(w1, { Spec: { Role: 'worker', Availability: 'active', Labels: { zone: 'b', extra: '1', ...tracked } } }), undefined);
  const u = nodeUpdate(w1, { Spec: { Role: 'manager', Availability: 'drain', Labels: { zone: 'a', extra: '1' } } });
  assert.deepEqual(u?.spec, { Role: 'worker', Availability: 'drain', Labels: { zone: 'b', extra: '1', ...tracked } });
  assert.deepEqual(u?.changes, ['role manager -> worker', 'label zone: a -> b']);
  assert.equal(u?.role, 'demote');
  assert.deepEqual(nodeUpdate(w1, { Spec: { Role: 'worker' } })?.changes, ['label zone=b']);
  assert.equal(nodeUpdate(m1, { Spec: { Role: 'worker' } })?.role, 'promote');
});

test('node updates: a label airlock set and the inventory dropped is removed; one set by hand is kept', () => {
  const u = nodeUpdate(w1, { Spec: { Role: 'worker', Labels: { zone: 'b', disk: 'ssd', rack: '7', 'io.airlock.labels': 'disk,zone' } } });
  assert.deepEqual(u?.spec.Labels, { zone: 'b', rack: '7', 'io.airlock.labels': 'zone' });
  assert.deepEqual(u?.changes, ['label disk removed']);
  assert.equal(u?.role, undefined);
  // The inventory drops every label: the tracking label goes too, the hand-set one stays.
  const bare = nodeUpdate(m1, { Spec: { Role: 'manager', Labels: { zone: 'a', rack: '7', 'io.airlock.labels': 'zone' } } });
  assert.deepEqual(bare?.spec.Labels, { rack: '7' });
  assert.deepEqual(bare?.changes, ['label zone removed']);
  // A node labelled before airlock tracked its keys: only the tracking label is new, the hand-set one is not claimed.
  const legacy = nodeUpdate(w1, { Spec: { Role: 'worker', Labels: { zone: 'b', rack: '7' } } });
  assert.deepEqual(legacy?.spec.Labels, { zone: 'b', rack: '7', 'io.airlock.labels': 'zone' });
  assert.deepEqual(legacy?.changes, ['labels tracked: zone']);
});
