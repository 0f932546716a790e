/** cluster up's membership plan, without an engine: promote before demote, quorum refusals, unlisted nodes, an empty second plan. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SwarmNode } from '../../src/docker/index.js';
import { planIsEmpty, planNodes } from '../../src/cluster/membership.js';
import { parseInventory, type InventoryHost } from '../../src/remote/inventory.js';

const inventory = (roles: Record<string, string>) =>
  parseInventory(
    'hosts.yml',
    `defaults: { user: root, key: /k }\nhosts:\n${Object.entries(roles)
      .map(([name, role], i) => `  ${name}: { address: 10.0.0.${i + 1}, roles: [${role}] }`)
      .join('\n')}\n`,
  ).hosts;

type Reach = 'reachable' | 'unreachable';
function node(id: string, role: 'manager' | 'worker', opts: { reach?: Reach; state?: SwarmNode['Status']['State']; addr?: string; labels?: Record<string, string> } = {}): SwarmNode {
  const n = Number(id.replace(/\D/g, '')) || 9;
  return {
    ID: id,
    Version: { Index: 10 },
    CreatedAt: '',
    UpdatedAt: '',
    Spec: { Role: role, Availability: 'active', Labels: opts.labels ?? {} },
    Description: { Hostname: id.toLowerCase() },
    Status: { State: opts.state ?? 'ready', Addr: opts.addr ?? `10.0.0.${n}` },
    ...(role === 'manager' ? { ManagerStatus: { Reachability: opts.reach ?? 'reachable', Addr: `${opts.addr ?? `10.0.0.${n}`}:2377` } } : {}),
  } as SwarmNode;
}
const members = (hosts: InventoryHost[]) => hosts.map((h) => ({ host: h, nodeId: h.name.toUpperCase() }));
const names = (cs: { host: InventoryHost }[]) => cs.map((c) => c.host.name);

test('roles both ways: promotions before demotions, the swarm never below quorum', () => {
  // 3 managers today (h1 h2 h3); the inventory wants h1 h4 h5: two promoted, then two demoted.
  const hosts = inventory({ h1: 'manager', h2: 'worker', h3: 'worker', h4: 'manager', h5: 'manager' });
  const nodes = [node('H1', 'manager'), node('H2', 'manager'), node('H3', 'manager'), node('H4', 'worker'), node('H5', 'worker')];
  const p = planNodes({ members: members(hosts), unreached: [], nodes, prune: false });
  assert.equal(p.refusal, undefined);
  assert.deepEqual(names(p.promote), ['h4', 'h5']);
  assert.deepEqual(names(p.demote), ['h2', 'h3']);
  assert.deepEqual(p.demote[0]?.changes, ['role manager -> worker']);
  assert.deepEqual(p.update, []);
  // Without the promotions first, demoting two of three would leave one: the planner counts them in.
  const alone = planNodes({ members: members(inventory({ h1: 'manager', h2: 'worker', h3: 'worker' })), unreached: [], nodes: nodes.slice(0, 3), prune: false });
  assert.equal(alone.refusal, undefined, 'three to one keeps quorum at each step: 3 -> 2 -> 1');
});

test('a demotion that would lose quorum refuses the whole plan, naming the host', () => {
  // 3 managers, h3 unreachable: demoting reachable h2 leaves 1 of 2 reachable, 2 needed.
  const hosts = inventory({ h1: 'manager', h2: 'worker', h3: 'manager', h4: 'manager' });
  const nodes = [node('H1', 'manager'), node('H2', 'manager'), node('H3', 'manager', { reach: 'unreachable', state: 'down' }), node('H4', 'worker')];
  const up = [hosts[0]!, hosts[1]!, hosts[3]!];
  const p = planNodes({ members: members(up), unreached: [hosts[2]!], nodes, prune: false });
  // h4's promotion makes it 4 managers with 3 reachable: the demotion then keeps 2 of 3. Fine.
  assert.equal(p.refusal, undefined);
  const noPromotion = inventory({ h1: 'manager', h2: 'worker', h3: 'manager' });
  const refused = planNodes({ members: members([noPromotion[0]!, noPromotion[1]!]), unreached: [noPromotion[2]!], nodes: nodes.slice(0, 3), prune: false });
  assert.equal(refused.refusal?.reason, 'would-lose-quorum');
  assert.equal(refused.refusal?.subject, 'h2');
  assert.equal(refused.refusal?.exitCode, 17);
  assert.match(refused.refusal?.message ?? '', /^demoting h2 \(10\.0\.0\.2\) would lose the swarm's quorum: 1 of the 2 managers left would be reachable, and they need 2; nothing was changed$/);
  assert.match(refused.refusal?.hint ?? '', /make unreachable ones reachable/);
});

test("an unreachable manager's demotion goes first: it takes no vote away", () => {
  const hosts = inventory({ h1: 'manager', h2: 'worker', h3: 'worker', h4: 'manager', h5: 'manager' });
  const nodes = [node('H1', 'manager'), node('H2', 'manager'), node('H3', 'manager', { reach: 'unreachable' }), node('H4', 'manager'), node('H5', 'manager')];
  const p = planNodes({ members: members(hosts), unreached: [], nodes, prune: false });
  assert.equal(p.refusal, undefined);
  assert.deepEqual(names(p.demote), ['h3', 'h2']);
});

test('the last manager is never demoted; managers about to join count', () => {
  const hosts = inventory({ h1: 'worker', h2: 'manager' });
  const p = planNodes({ members: members([hosts[0]!]), unreached: [], nodes: [node('H1', 'manager')], prune: false });
  assert.equal(p.refusal?.reason, 'would-lose-quorum');
  assert.match(p.refusal?.message ?? '', /^demoting h1 \(10\.0\.0\.1\) would lose the swarm's quorum: it is the last manager/);
  assert.equal(planNodes({ members: members([hosts[0]!]), unreached: [], nodes: [node('H1', 'manager')], prune: false, joiningManagers: 1 }).refusal, undefined, 'h2 joins as a manager first');
});

test('labels: only keys airlock tracks are removed; label-only changes are updates', () => {
  const hosts = inventory({ h1: 'manager', h2: 'worker' });
  const nodes = [node('H1', 'manager', { labels: { zone: 'a', 'io.airlock.labels': 'zone' } }), node('H2', 'worker', { labels: { rack: '7' } })];
  const p = planNodes({ members: members(hosts), unreached: [], nodes, prune: false });
  assert.deepEqual(names(p.update), ['h1']);
  assert.deepEqual(p.update[0]?.spec.Labels, {});
  assert.deepEqual(p.update[0]?.changes, ['label zone removed']);
  assert.ok(planIsEmpty(planNodes({ members: members(hosts), unreached: [], nodes: [node('H1', 'manager'), node('H2', 'worker', { labels: { rack: '7' } })], prune: true }), true), 'the hand-set rack stays, nothing to do');
});

test('nodes no inventory host is: reported, pruned with --prune; an unreachable inventory host is matched by address', () => {
  const hosts = inventory({ h1: 'manager', h2: 'manager', h3: 'manager', h4: 'worker' });
  const nodes = [node('H1', 'manager'), node('H2', 'manager'), node('H3', 'manager'), node('H4', 'worker', { state: 'down' }), node('OLD7', 'worker', { addr: '10.0.0.7' }), node('OLD8', 'manager', { addr: '10.0.0.8' })];
  const p = planNodes({ members: members(hosts.slice(0, 3)), unreached: [hosts[3]!], nodes, prune: false });
  assert.deepEqual(
    p.unlisted.map((u) => [u.nodeId, u.hostname, u.address, u.role, u.state]),
    [
      ['OLD7', 'old7', '10.0.0.7', 'worker', 'ready'],
      ['OLD8', 'old8', '10.0.0.8', 'manager', 'ready'],
    ],
    'h4, unreachable, is known by its address and left alone',
  );
  assert.equal(p.refusal, undefined);
  assert.ok(planIsEmpty(p, false), 'without --prune, unlisted nodes are only reported');
  // A host reached but in error this run (a locked swarm, say) is still an inventory host: its node is not unlisted.
  assert.deepEqual(planNodes({ members: members(hosts.slice(0, 3)), unreached: [hosts[3]!], otherNodeIds: ['OLD7'], nodes, prune: true }).unlisted.map((u) => u.nodeId), ['OLD8']);
  assert.ok(!planIsEmpty(planNodes({ members: members(hosts.slice(0, 3)), unreached: [hosts[3]!], nodes, prune: true }), true));
  // With --prune, a pruned manager's demotion is checked too: 4 managers, 2 unreachable, prune a reachable one.
  const shaky = [node('H1', 'manager'), node('H2', 'manager', { reach: 'unreachable' }), node('H3', 'manager', { reach: 'unreachable' }), node('OLD8', 'manager', { addr: '10.0.0.8' })];
  const refused = planNodes({ members: members(hosts.slice(0, 3)), unreached: [], nodes: shaky, prune: true });
  assert.equal(refused.refusal?.reason, 'would-lose-quorum');
  assert.equal(refused.refusal?.subject, 'OLD8');
  assert.match(refused.refusal?.message ?? '', /^demoting node old8 would lose/);
  assert.match(refused.refusal?.hint ?? '', /no inventory host \(--prune\)/);
  assert.equal(planNodes({ members: members(hosts.slice(0, 3)), unreached: [], nodes: shaky, prune: false }).refusal, undefined, 'reported only: nothing to refuse');
});

test('a second plan, once the first is applied, is empty', () => {
  const hosts = inventory({ h1: 'manager', h2: 'worker', h3: 'manager' });
  const tracked = (labels: Record<string, string>) => labels;
  const before = [node('H1', 'manager', { labels: { zone: 'a', 'io.airlock.labels': 'zone' } }), node('H2', 'manager'), node('H3', 'worker'), node('GONE9', 'worker', { addr: '10.0.0.9' })];
  const first = planNodes({ members: members(hosts), unreached: [], nodes: before, prune: true });
  assert.ok(!planIsEmpty(first, true));
  // Apply it as the engine would.
  const specs = new Map([...first.promote, ...first.update, ...first.demote].map((c) => [c.nodeId, c.spec]));
  const after = before
    .filter((n) => !first.unlisted.some((u) => u.nodeId === n.ID))
    .map((n) => {
      const spec = specs.get(n.ID);
      if (!spec) return n;
      return node(n.ID, spec.Role!, { labels: tracked(spec.Labels ?? {}) });
    });
  const second = planNodes({ members: members(hosts), unreached: [], nodes: after, prune: true });
  assert.ok(planIsEmpty(second, true), JSON.stringify(second));
  assert.deepEqual([second.promote, second.update, second.demote, second.unlisted], [[], [], [], []]);
});

test("a new node's bundles: each stack's newest committed deployment, a rollback followed to the file it restores", async () => {
  const { deployedBundles } = await import('../../src/cluster/new-node-bundles.js');
  const row = (id: number, stack: string, kind: 'apply' | 'rollback', status: string, source: string | null, version: string, restores: number | null = null) => ({
    id,
    stack,
    kind,
    status,
    restores,
    source,
    bundle_name: stack,
    bundle_version: version,
  });
  const history = [
    row(1, 'web', 'apply', 'committed', '/var/lib/airlock/uploads/web-1.bundle', '1.0.0'),
    row(2, 'web', 'apply', 'rolled-back', '/var/lib/airlock/uploads/web-2.bundle', '2.0.0'),
    row(3, 'db', 'apply', 'committed', '/u/db-1.bundle', '1.0.0'),
    row(4, 'db', 'apply', 'committed', '/u/db-2.bundle', '2.0.0'),
    row(5, 'db', 'rollback', 'committed', 'rollback to #3', '1.0.0', 3),
    row(6, 'agent', 'apply', 'committed', 'agent window', '3.0.0'),
  ];
  assert.deepEqual(deployedBundles(history), [
    { stack: 'agent', bundle: 'agent 3.0.0', missing: 'deployed from "agent window", not from a bundle file the journal names' },
    { stack: 'db', bundle: 'db 1.0.0', file: '/u/db-1.bundle' },
    { stack: 'web', bundle: 'web 1.0.0', file: '/var/lib/airlock/uploads/web-1.bundle' },
  ]);
  assert.deepEqual(deployedBundles([]), []);
});
