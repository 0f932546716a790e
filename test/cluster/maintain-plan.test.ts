/** Rolling maintenance's scheduling, without an engine: which hosts go together under capacity and quorum, and the order a re-run resumes in. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAINTAIN_LABEL, markText, nextBatch, parseMark, refusals, runOrder, type MaintainTarget } from '../../src/cluster/maintain-plan.js';
import type { Service, SwarmNode, Task } from '../../src/docker/types.js';

const meta = (ID: string) => ({ ID, Version: { Index: 1 }, CreatedAt: '', UpdatedAt: '' });

function node(id: string, o: { manager?: 'reachable' | 'unreachable'; mark?: string; maxMemory?: number } = {}): SwarmNode {
  return {
    ...meta(id),
    Spec: { Role: o.manager ? 'manager' : 'worker', Availability: 'active', Labels: o.mark ? { [MAINTAIN_LABEL]: o.mark } : {} },
    Description: { Hostname: id, Platform: { OS: 'linux', Architecture: 'x86_64' }, Resources: { NanoCPUs: 4e9, MemoryBytes: o.maxMemory ?? 8 * 2 ** 30 }, Engine: { EngineVersion: '26.1.5' } },
    Status: { State: o.manager === 'unreachable' ? 'down' : 'ready' },
    ...(o.manager ? { ManagerStatus: { Reachability: o.manager, Addr: `${id}:2377` } } : {}),
  } as SwarmNode;
}

/** A replicated service with one task on each node named; `maxReplicas` per node. */
function spread(name: string, nodes: string[], maxReplicas?: number): { service: Service; tasks: Task[] } {
  const service: Service = {
    ...meta(`S-${name}`),
    Spec: {
      Name: name,
      Mode: { Replicated: { Replicas: nodes.length } },
      TaskTemplate: { ContainerSpec: { Image: 'app:1' }, Placement: maxReplicas ? { MaxReplicas: maxReplicas } : {} },
    },
  };
  const tasks = nodes.map((n, i) => ({
    ...meta(`T-${name}-${i}`),
    Spec: service.Spec.TaskTemplate ?? {},
    ServiceID: service.ID,
    Slot: i + 1,
    NodeID: n,
    Status: { State: 'running' },
    DesiredState: 'running',
  })) as Task[];
  return { service, tasks };
}

const targets = (...ids: string[]): MaintainTarget[] => ids.map((id) => ({ host: `host-${id}`, nodeId: id }));
const hosts = (b: { hosts: MaintainTarget[] }) => b.hosts.map((t) => t.nodeId);

test('one at a time by default; --parallel takes more only while the rest holds every task together', () => {
  const nodes = ['a', 'b', 'c', 'd', 'e'].map((id) => node(id));
  // 3 replicas, at most 1 per node: d and e can take two of them, not three.
  const { service, tasks } = spread('web', ['a', 'b', 'c'], 1);
  const state = { nodes, services: [service], tasks };
  assert.deepEqual(hosts(nextBatch(state, targets('a', 'b', 'c', 'd'), 1)), ['a']);
  assert.deepEqual(hosts(nextBatch(state, targets('a', 'b', 'c', 'd'), 4)), ['a', 'b'], 'with c too, web falls short; with d, one place fewer for a and b');
  // Without the per-node limit, the two others take all three tasks of a and b.
  const loose = spread('web', ['a', 'b', 'c']);
  assert.deepEqual(hosts(nextBatch({ nodes, services: [loose.service], tasks: loose.tasks }, targets('a', 'b', 'c', 'd'), 2)), ['a', 'b']);
});

test('a first host the others cannot hold blocks, naming the service short', () => {
  const nodes = ['a', 'b', 'c'].map((id) => node(id));
  const { service, tasks } = spread('db', ['a', 'b', 'c'], 1);
  const b = nextBatch({ nodes, services: [service], tasks }, targets('a', 'b'), 2);
  assert.deepEqual(b.hosts, []);
  assert.match(b.blocked ?? '', /^the other nodes cannot take host-a's tasks: db: 1 of its 1 task\(s\) on the node fit nowhere else: /);
});

test('managers: never two down together when quorum would not survive; one always left to drive the swarm', () => {
  const five = ['m1', 'm2', 'm3', 'm4', 'm5'].map((id) => node(id, { manager: 'reachable' }));
  const empty = { services: [], tasks: [] };
  // 5 managers need 3: two may be down at once.
  assert.deepEqual(hosts(nextBatch({ nodes: five, ...empty }, targets('m1', 'm2', 'm3'), 3)), ['m1', 'm2']);
  const three = [node('m1', { manager: 'reachable' }), node('m2', { manager: 'reachable' }), node('m3', { manager: 'reachable' }), node('w1'), node('w2')];
  assert.deepEqual(hosts(nextBatch({ nodes: three, ...empty }, targets('m1', 'm2', 'w1', 'w2'), 4)), ['m1', 'w1', 'w2']);
});

test('refused before anything starts: a manager whose going down alone loses quorum, and the only manager of a swarm with other nodes', () => {
  const oneDown = [node('m1', { manager: 'reachable' }), node('m2', { manager: 'reachable' }), node('m3', { manager: 'unreachable' }), node('w1')];
  assert.deepEqual(refusals(oneDown, targets('w1', 'm1')), ['host-m1 is a manager, and taking it down would lose the swarm\'s quorum: 1 of 3 managers would be reachable, and the swarm needs 2']);
  const single = [node('m1', { manager: 'reachable' }), node('w1')];
  assert.match(refusals(single, targets('m1'))[0] ?? '', /^host-m1 is the swarm's only manager: while it is down no manager is left/);
  assert.deepEqual(refusals(single, targets('w1')), []);
  // A swarm of one node: it is maintained alone, down time accepted.
  assert.deepEqual(refusals([node('m1', { manager: 'reachable' })], targets('m1')), []);
});

test('marks: run id and step, read back; anything else is no mark', () => {
  assert.equal(markText({ runId: '20261207T210650Z-770ad6', step: 'run' }), '20261207T210650Z-770ad6:run');
  assert.deepEqual(parseMark('20261207T210650Z-770ad6:done'), { runId: '20261207T210650Z-770ad6', step: 'done' });
  assert.equal(parseMark('x:reboot'), undefined);
  assert.equal(parseMark(':run'), undefined);
  assert.equal(parseMark(undefined), undefined);
});

test('a re-run resumes the run the nodes carry: its done hosts skipped, its unfinished one first', () => {
  const nodes = [node('a', { mark: 'r1:done' }), node('b', { mark: 'r1:done' }), node('c'), node('d', { mark: 'r1:run' })];
  assert.deepEqual(runOrder(targets('a', 'b', 'c', 'd'), nodes), { resumed: 'r1', order: targets('d', 'c'), skipped: ['host-a', 'host-b'] });
  // No marks: a new run in the operator's order.
  assert.deepEqual(runOrder(targets('c', 'a'), ['a', 'c'].map((id) => node(id))), { order: targets('c', 'a'), skipped: [] });
  // A host of the resumed run that the operator did not name now stays out.
  assert.deepEqual(runOrder(targets('a', 'c'), nodes), { resumed: 'r1', order: targets('c'), skipped: ['host-a'] });
});
