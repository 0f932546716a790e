/** The drain capacity planner, without an engine: hand-made nodes, services and tasks as the API lists them. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { constraintMatches, parseConstraint, planDrainCapacity, type SwarmState } from '../../src/cluster/drain-capacity.js';
import type { Service, ServiceSpec, SwarmNode, Task, TaskSpec, TaskState } from '../../src/docker/types.js';
import { AirlockError } from '../../src/errors/index.js';

const MiB = 1024 * 1024;
const meta = (ID: string) => ({ ID, Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '' });

interface NodeOpts {
  role?: 'manager' | 'worker';
  availability?: 'active' | 'pause' | 'drain';
  state?: SwarmNode['Status']['State'];
  labels?: Record<string, string>;
  engineLabels?: Record<string, string>;
  memory?: number;
  cpus?: number;
  os?: string;
  arch?: string;
}

function node(id: string, o: NodeOpts = {}): SwarmNode {
  return {
    ...meta(id),
    Spec: { Role: o.role ?? 'worker', Availability: o.availability ?? 'active', Labels: o.labels ?? {} },
    Description: {
      Hostname: id,
      Platform: { OS: o.os ?? 'linux', Architecture: o.arch ?? 'x86_64' },
      Resources: { NanoCPUs: (o.cpus ?? 4) * 1e9, MemoryBytes: o.memory ?? 8192 * MiB },
      Engine: { EngineVersion: '26.1.5', Labels: o.engineLabels ?? {} },
    },
    Status: { State: o.state ?? 'ready' },
  };
}

interface ServiceOpts {
  replicas?: number;
  mode?: ServiceSpec['Mode'];
  constraints?: string[];
  spread?: string[];
  maxReplicas?: number;
  memory?: number;
  cpus?: number;
  hostPort?: number;
  platforms?: { OS?: string; Architecture?: string }[];
}

function template(o: ServiceOpts): TaskSpec {
  return {
    ContainerSpec: { Image: 'app:1' },
    Resources: { Reservations: { ...(o.memory ? { MemoryBytes: o.memory } : {}), ...(o.cpus ? { NanoCPUs: o.cpus * 1e9 } : {}) } },
    Placement: {
      Constraints: o.constraints ?? [],
      Preferences: (o.spread ?? []).map((d) => ({ Spread: { SpreadDescriptor: d } })),
      ...(o.maxReplicas ? { MaxReplicas: o.maxReplicas } : {}),
      ...(o.platforms ? { Platforms: o.platforms } : {}),
    },
  };
}

function service(name: string, o: ServiceOpts = {}): Service {
  return {
    ...meta(`S-${name}`),
    Spec: {
      Name: name,
      Mode: o.mode ?? { Replicated: { Replicas: o.replicas ?? 1 } },
      TaskTemplate: template(o),
      ...(o.hostPort ? { EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: o.hostPort, PublishMode: 'host' }] } } : {}),
    },
  };
}

let taskSeq = 0;
function task(svc: Service, nodeId: string, o: { slot?: number; state?: TaskState; desired?: TaskState } = {}): Task {
  taskSeq++;
  return {
    ...meta(`T${String(taskSeq).padStart(4, '0')}`),
    Spec: svc.Spec.TaskTemplate ?? {},
    ServiceID: svc.ID,
    Slot: o.slot ?? taskSeq,
    NodeID: nodeId,
    Status: { State: o.state ?? 'running' },
    DesiredState: o.desired ?? 'running',
  };
}

/** Tasks of a service, one per node named, in slot order. */
const tasksOn = (svc: Service, ...nodeIds: string[]) => nodeIds.map((n, i) => task(svc, n, { slot: i + 1 }));

const swarm = (nodes: SwarmNode[], services: Service[], tasks: Task[]): SwarmState => ({ nodes, services, tasks });

function only(state: SwarmState, drain: string | string[]) {
  const plan = planDrainCapacity(state, drain);
  assert.equal(plan.services.length, 1, JSON.stringify(plan.services));
  return { plan, s: plan.services[0]! };
}

// --- constraints ------------------------------------------------------------

test('constraints parse as swarm parses them: == before !=, spaces trimmed, bad keys and values refused', () => {
  assert.deepEqual(parseConstraint('node.labels.zone == b'), { text: 'node.labels.zone == b', key: 'node.labels.zone', op: '==', value: 'b' });
  assert.deepEqual(parseConstraint('node.role!=manager'), { text: 'node.role!=manager', key: 'node.role', op: '!=', value: 'manager' });
  assert.equal(parseConstraint('node.role=manager'), undefined, 'a single = is no operator');
  assert.equal(parseConstraint('node.role<manager'), undefined);
  assert.equal(parseConstraint(' == x'), undefined, 'an empty key');
  assert.equal(parseConstraint('node.role==a>b'), undefined, 'a value with an operator character');
});

test('constraints evaluate against id, hostname, role, platform, node and engine labels', () => {
  const n = node('w1', { role: 'worker', labels: { zone: 'b', Disk: 'SSD' }, engineLabels: { tier: 'edge' }, arch: 'x86_64' });
  const m = (c: string) => constraintMatches(parseConstraint(c)!, n);
  assert.ok(m('node.id==w1') && !m('node.id==w2'));
  assert.ok(m('node.hostname!=w2') && !m('node.hostname!=w1'));
  assert.ok(m('node.role==WORKER'), 'values compare case-insensitively');
  assert.ok(!m('node.role==manager'));
  assert.ok(m('node.platform.os==linux') && m('node.platform.arch==x86_64') && !m('node.platform.arch==arm64'));
  assert.ok(m('node.labels.zone==b') && !m('node.labels.zone!=b') && m('node.labels.zone!=a'));
  assert.ok(m('Node.Labels.Disk==ssd'), 'keys case-insensitively, the value too');
  assert.ok(!m('node.labels.disk==ssd'), 'the label name itself is case-sensitive');
  assert.ok(m('node.labels.missing!=x') && !m('node.labels.missing==x'), 'a missing label is the empty string');
  assert.ok(m('engine.labels.tier==edge') && !m('engine.labels.tier==core'));
  assert.ok(!m('node.colour==red') && !m('node.colour!=red'), 'an unknown key matches no node');
});

test('node.ip matches the node address, or a subnet; a malformed one matches nothing', () => {
  const n = { ...node('w1'), Status: { State: 'ready' as const, Addr: '10.0.3.7' } };
  const m = (c: string) => constraintMatches(parseConstraint(c)!, n);
  assert.ok(m('node.ip==10.0.3.7') && !m('node.ip!=10.0.3.7') && !m('node.ip==10.0.3.8'));
  assert.ok(m('node.ip==10.0.3.0/24') && !m('node.ip!=10.0.3.0/24') && m('node.ip!=10.0.4.0/24'));
  assert.ok(!m('node.ip==2001:db8::/32') && m('node.ip!=2001:db8::1'));
  assert.ok(!m('node.ip==10.0.3') && !m('node.ip!=10.0.3') && !m('node.ip!=10.0.3.0/40'), 'malformed: no node, either operator');
});

// --- replicated services: constraints --------------------------------------

test('a constrained service fits when another node carries the label, and falls short naming the constraint per node when none does', () => {
  const svc = service('web', { replicas: 2, constraints: ['node.labels.zone==b'] });
  const fits = swarm([node('w1', { labels: { zone: 'b' } }), node('w2', { labels: { zone: 'b' } }), node('w3', { labels: { zone: 'a' } })], [svc], tasksOn(svc, 'w1', 'w2'));
  const ok = only(fits, 'w1');
  assert.equal(ok.plan.ok, true);
  assert.deepEqual([ok.s.desired, ok.s.onNode, ok.s.placeable, ok.s.shortBy, ok.s.targets], [2, 1, 1, 0, ['w2']]);
  assert.equal(ok.s.why, undefined);

  const short = swarm([node('w1', { labels: { zone: 'b' } }), node('w2', { labels: { zone: 'a' } }), node('w3')], [svc], tasksOn(svc, 'w1', 'w1'));
  const no = only(short, 'w1');
  assert.equal(no.plan.ok, false);
  assert.deepEqual([no.s.onNode, no.s.placeable, no.s.shortBy], [2, 0, 2]);
  assert.deepEqual(no.s.refusals, [
    { node: 'w2', reason: 'constraint node.labels.zone==b' },
    { node: 'w3', reason: 'constraint node.labels.zone==b' },
  ]);
  assert.equal(no.s.why, '2 of its 2 task(s) on the node fit nowhere else: w2: constraint node.labels.zone==b; w3: constraint node.labels.zone==b');
});

test('a != constraint on a label: the node with the excluded value is refused, the others take the task', () => {
  const svc = service('api', { replicas: 1, constraints: ['node.labels.tier != gpu', 'node.role==worker'] });
  const nodes = [node('w1'), node('w2', { labels: { tier: 'gpu' } }), node('m1', { role: 'manager' }), node('w3', { labels: { tier: 'cpu' } })];
  const { s } = only(swarm(nodes, [svc], tasksOn(svc, 'w1')), 'w1');
  assert.deepEqual(s.targets, ['w3']);
  const { s: short } = only(swarm(nodes.slice(0, 3), [svc], tasksOn(svc, 'w1')), 'w1');
  assert.deepEqual(short.refusals, [
    { node: 'm1', reason: 'constraint node.role==worker' },
    { node: 'w2', reason: 'constraint node.labels.tier != gpu' },
  ]);
});

test('an invalid constraint places the task nowhere, and says so', () => {
  const svc = service('bad', { constraints: ['node.labels.zone=b'] });
  const { s } = only(swarm([node('w1'), node('w2')], [svc], tasksOn(svc, 'w1')), 'w1');
  assert.equal(s.shortBy, 1);
  assert.deepEqual(s.refusals, [{ node: 'w2', reason: 'constraint "node.labels.zone=b" is not valid' }]);
});

test('a platform the service does not run on is refused; x86_64 is amd64', () => {
  const svc = service('x', { platforms: [{ OS: 'linux', Architecture: 'amd64' }] });
  const ok = only(swarm([node('w1'), node('w2', { arch: 'x86_64' })], [svc], tasksOn(svc, 'w1')), 'w1');
  assert.deepEqual(ok.s.targets, ['w2']);
  const no = only(swarm([node('w1'), node('w2', { arch: 'aarch64' })], [svc], tasksOn(svc, 'w1')), 'w1');
  assert.deepEqual(no.s.refusals, [{ node: 'w2', reason: 'platform linux/aarch64 is not one the service runs on' }]);
});

// --- resources ---------------------------------------------------------------

test('memory reservations: two tasks that fit on two nodes but not on one', () => {
  const svc = service('db', { replicas: 3, memory: 512 * MiB });
  const nodes = [node('w1'), node('w2', { memory: 768 * MiB }), node('w3', { memory: 768 * MiB }), node('w4', { memory: 768 * MiB })];
  // w4 already runs one task: 256 MiB left there.
  const tasks = [task(svc, 'w1', { slot: 1 }), task(svc, 'w1', { slot: 2 }), task(svc, 'w4', { slot: 3 })];
  const ok = only(swarm(nodes, [svc], tasks), 'w1');
  assert.equal(ok.plan.ok, true);
  assert.deepEqual(ok.s.targets, ['w2', 'w3'], 'each of w2 and w3 takes one: neither has room for two');

  const one = only(swarm(nodes.filter((n) => n.ID !== 'w3'), [svc], tasks), 'w1');
  assert.deepEqual([one.s.placeable, one.s.shortBy, one.s.targets], [1, 1, ['w2']]);
  assert.deepEqual(one.s.refusals, [
    { node: 'w2', reason: 'not enough memory (needs 512.0 MiB, 256.0 MiB free)' },
    { node: 'w4', reason: 'not enough memory (needs 512.0 MiB, 256.0 MiB free)' },
  ]);
  assert.match(one.s.why ?? '', /^1 of its 2 task\(s\) on the node fit nowhere else: w2: not enough memory/);
});

test('what other services already reserve on a node counts; a finished task reserves nothing', () => {
  const db = service('db', { memory: 1024 * MiB });
  const cache = service('cache', { memory: 1024 * MiB });
  const nodes = [node('w1'), node('w2', { memory: 1536 * MiB })];
  const running = only(swarm(nodes, [db, cache], [...tasksOn(db, 'w1'), ...tasksOn(cache, 'w2')]), 'w1');
  assert.equal(running.s.shortBy, 1, 'cache holds 1 GiB of w2');
  const stopped = planDrainCapacity(swarm(nodes, [db, cache], [...tasksOn(db, 'w1'), task(cache, 'w2', { state: 'shutdown', desired: 'shutdown' })]), 'w1');
  assert.deepEqual(stopped.services.map((s) => [s.service, s.targets]), [['db', ['w2']]]);
});

test('CPU reservations are checked like memory', () => {
  const svc = service('cpu', { replicas: 2, cpus: 1.5 });
  const nodes = [node('w1'), node('w2', { cpus: 2 })];
  const { s } = only(swarm(nodes, [svc], tasksOn(svc, 'w1', 'w1')), 'w1');
  assert.deepEqual([s.placeable, s.shortBy], [1, 1]);
  assert.deepEqual(s.refusals, [{ node: 'w2', reason: 'not enough CPU (needs 1.5 CPUs, 0.5 CPUs free)' }]);
});

test('services are packed in name order: what the first takes is gone for the next', () => {
  const a = service('a', { memory: 600 * MiB });
  const b = service('b', { memory: 600 * MiB });
  const nodes = [node('w1'), node('w2', { memory: 1024 * MiB })];
  const plan = planDrainCapacity(swarm(nodes, [b, a], [...tasksOn(b, 'w1'), ...tasksOn(a, 'w1')]), 'w1');
  assert.deepEqual(plan.services.map((s) => [s.service, s.shortBy]), [['a', 0], ['b', 1]]);
  assert.equal(plan.ok, false);
});

// --- max replicas, host ports ------------------------------------------------

test('max replicas per node: refused where the service already runs its maximum, placed where it does not', () => {
  const svc = service('web', { replicas: 3, maxReplicas: 1 });
  const tasks = tasksOn(svc, 'w1', 'w2', 'w3');
  const no = only(swarm([node('w1'), node('w2'), node('w3')], [svc], tasks), 'w1');
  assert.equal(no.s.shortBy, 1);
  assert.deepEqual(no.s.refusals, [
    { node: 'w2', reason: 'max replicas per node (1) reached' },
    { node: 'w3', reason: 'max replicas per node (1) reached' },
  ]);
  const ok = only(swarm([node('w1'), node('w2'), node('w3'), node('w4')], [svc], tasks), 'w1');
  assert.deepEqual(ok.s.targets, ['w4']);
});

test('a host-mode published port is one task per node', () => {
  const svc = service('edge', { replicas: 2, hostPort: 8443 });
  const no = only(swarm([node('w1'), node('w2')], [svc], tasksOn(svc, 'w1', 'w2')), 'w1');
  assert.deepEqual(no.s.refusals, [{ node: 'w2', reason: 'host port tcp/8443 already in use' }]);
  const ok = only(swarm([node('w1'), node('w2'), node('w3')], [svc], tasksOn(svc, 'w1', 'w2')), 'w1');
  assert.deepEqual(ok.s.targets, ['w3']);
});

// --- node availability and state ---------------------------------------------

test('paused, drained and down nodes are never targets, and the refusal says which is which', () => {
  const svc = service('web');
  const nodes = [node('w1'), node('w2', { availability: 'pause' }), node('w3', { availability: 'drain' }), node('w4', { state: 'down' })];
  const { plan, s } = only(swarm(nodes, [svc], tasksOn(svc, 'w1')), 'w1');
  assert.equal(plan.ok, false);
  assert.deepEqual(s.refusals, [
    { node: 'w2', reason: 'node is paused' },
    { node: 'w3', reason: 'node is drained' },
    { node: 'w4', reason: 'node is down' },
  ]);
  const withActive = only(swarm([...nodes, node('w5')], [svc], tasksOn(svc, 'w1')), 'w1');
  assert.deepEqual(withActive.s.targets, ['w5']);
});

test('the drained node itself is never a target; a one-node swarm has nowhere to go', () => {
  const svc = service('web', { replicas: 2 });
  const { s } = only(swarm([node('w1')], [svc], tasksOn(svc, 'w1', 'w1')), 'w1');
  assert.deepEqual([s.shortBy, s.refusals], [2, []]);
  assert.equal(s.why, '2 of its 2 task(s) on the node fit nowhere else: no other node in the swarm');
});

test('the node is named by ID or hostname; an unknown one is a not-found error naming the nodes', () => {
  const svc = service('web');
  const n1 = { ...node('ID1'), Description: { ...node('ID1').Description, Hostname: 'host-1' } };
  const state = swarm([n1, node('w2')], [svc], tasksOn(svc, 'ID1'));
  assert.deepEqual(planDrainCapacity(state, 'host-1'), planDrainCapacity(state, 'ID1'));
  assert.throws(
    () => planDrainCapacity(state, 'nope'),
    (e: unknown) => e instanceof AirlockError && e.kind === 'notFound' && e.reason === 'node-not-found' && /no node nope in the swarm \(nodes: host-1, w2\)/.test(e.message),
  );
});

// --- global services and jobs -----------------------------------------------

test('a global service on the node stops there: reported, never a shortfall', () => {
  const agent = service('agent', { mode: { Global: {} } });
  const web = service('web');
  const nodes = [node('w1'), node('w2')];
  const plan = planDrainCapacity(swarm(nodes, [agent, web], [...tasksOn(agent, 'w1', 'w2'), ...tasksOn(web, 'w1')]), 'w1');
  assert.equal(plan.ok, true);
  assert.deepEqual(
    plan.services.map((s) => [s.service, s.mode, s.stops, s.desired, s.onNode, s.shortBy]),
    [
      ['agent', 'global', true, 2, 1, 0],
      ['web', 'replicated', false, 1, 1, 0],
    ],
  );
});

test('a global job stops too; a replicated job counts only its unfinished tasks', () => {
  const gjob = service('migrate-all', { mode: { GlobalJob: {} } });
  const rjob = service('batch', { mode: { ReplicatedJob: { MaxConcurrent: 2, TotalCompletions: 4 } }, memory: 512 * MiB });
  const nodes = [node('w1'), node('w2', { memory: 512 * MiB })];
  const tasks = [
    task(gjob, 'w1', { desired: 'complete' }),
    task(rjob, 'w1', { state: 'complete', desired: 'complete' }),
    task(rjob, 'w1', { state: 'complete', desired: 'complete' }),
    task(rjob, 'w1', { state: 'running', desired: 'complete' }),
  ];
  const plan = planDrainCapacity(swarm(nodes, [gjob, rjob], tasks), 'w1');
  assert.deepEqual(
    plan.services.map((s) => [s.service, s.mode, s.stops, s.desired, s.onNode, s.targets]),
    [
      ['batch', 'replicated', false, 1, 1, ['w2']],
      ['migrate-all', 'global', true, 1, 1, []],
    ],
    'the completed tasks neither move nor hold w2 memory',
  );
  assert.equal(plan.ok, true);
});

test('a service with nothing on the node is not in the plan; tasks being shut down do not move', () => {
  const web = service('web');
  const old = service('old');
  const plan = planDrainCapacity(swarm([node('w1'), node('w2')], [web, old], [...tasksOn(web, 'w2'), task(old, 'w1', { desired: 'shutdown' })]), 'w1');
  assert.deepEqual(plan, { ok: true, services: [] });
});

// --- packing -----------------------------------------------------------------

test('three nodes: two tasks of the drained node go to two different nodes (spread by least loaded)', () => {
  const svc = service('web', { replicas: 2 });
  const { s } = only(swarm([node('w1'), node('w2'), node('w3')], [svc], tasksOn(svc, 'w1', 'w1')), 'w1');
  assert.deepEqual(s.targets, ['w2', 'w3']);
});

test('three nodes: two tasks must go to two different nodes because each node has room for one', () => {
  const svc = service('web', { replicas: 3, memory: 1024 * MiB });
  // w3 already runs one (1 GiB of its 2.5 GiB): after w2 takes the first, both run one and w2
  // would win on its name; only memory sends the second to w3.
  const tasks = [task(svc, 'w1', { slot: 1 }), task(svc, 'w1', { slot: 2 }), task(svc, 'w3', { slot: 3 })];
  const tight = [node('w1'), node('w2', { memory: 1536 * MiB }), node('w3', { memory: 2560 * MiB })];
  const { plan, s } = only(swarm(tight, [svc], tasks), 'w1');
  assert.equal(plan.ok, true);
  assert.deepEqual(s.targets, ['w2', 'w3']);
  const roomy = [node('w1'), node('w2', { memory: 4096 * MiB }), node('w3', { memory: 2560 * MiB })];
  assert.deepEqual(only(swarm(roomy, [svc], tasks), 'w1').s.targets, ['w2', 'w2'], 'with room for both, the tiebreak keeps w2');
});

test('placement preferences only choose among nodes that fit: the emptier zone first, never a refusal', () => {
  const svc = service('web', { replicas: 3, spread: ['node.labels.zone'] });
  const nodes = [node('w1', { labels: { zone: 'a' } }), node('z2', { labels: { zone: 'a' } }), node('b1', { labels: { zone: 'b' } }), node('b2', { labels: { zone: 'b' } })];
  // zone b already runs two, z2 (zone a) none: the spread sends the task to zone a, though b2
  // is as empty as z2 and comes first by name.
  const tasks = [task(svc, 'w1', { slot: 1 }), task(svc, 'b1', { slot: 2 }), task(svc, 'b1', { slot: 3 })];
  assert.deepEqual(only(swarm(nodes, [svc], tasks), 'w1').s.targets, ['z2']);
  const unspread = service('web', { replicas: 3 });
  assert.deepEqual(only(swarm(nodes, [unspread], tasks), 'w1').s.targets, ['b2'], 'without the preference, the name decides');
  // Only zone b has room (z2 is paused): the preference gives way.
  const paused = nodes.map((n) => (n.ID === 'z2' ? node('z2', { labels: { zone: 'a' }, availability: 'pause' }) : n));
  assert.deepEqual(only(swarm(paused, [svc], tasks), 'w1').s.targets, ['b2']);
  // Nodes without the label are a group of their own.
  const unlabelled = [...nodes.filter((n) => n.ID !== 'z2'), node('c9')];
  assert.deepEqual(only(swarm(unlabelled, [svc], tasks), 'w1').s.targets, ['c9']);
});

test('draining several nodes at once (parallel): their tasks together, none onto each other', () => {
  const svc = service('web', { replicas: 3, maxReplicas: 2 });
  const nodes = [node('w1'), node('w2'), node('w3')];
  const tasks = tasksOn(svc, 'w1', 'w2', 'w3');
  const { s } = only(swarm(nodes, [svc], tasks), ['w1', 'w2']);
  assert.deepEqual([s.onNode, s.placeable, s.shortBy, s.targets], [2, 1, 1, ['w3']]);
  assert.deepEqual(s.refusals, [{ node: 'w3', reason: 'max replicas per node (2) reached' }]);
});

test('the plan is the same whatever order the API lists things in', () => {
  const a = service('a', { replicas: 2, memory: 512 * MiB });
  const b = service('b', { replicas: 2, memory: 512 * MiB });
  const nodes = [node('w1'), node('w2', { memory: 1024 * MiB }), node('w3', { memory: 1024 * MiB })];
  const tasks = [...tasksOn(a, 'w1', 'w1'), ...tasksOn(b, 'w1', 'w1')];
  const forward = planDrainCapacity(swarm(nodes, [a, b], tasks), 'w1');
  const backward = planDrainCapacity(swarm([...nodes].reverse(), [b, a], [...tasks].reverse()), 'w1');
  assert.deepEqual(backward, forward);
  assert.deepEqual(forward.services.map((s) => [s.service, s.targets]), [['a', ['w2', 'w3']], ['b', ['w2', 'w3']]]);
});
