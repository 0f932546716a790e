/**
 * First boot on two lab hosts, each with its own dockerd, /etc/airlock and
 * /var/lib/airlock: the agent on h1 makes the swarm, the agent on h2 joins
 * it with a token from a root-only file. Both run inside their host's
 * namespaces, as systemd would start them there.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import YAML from 'yaml';
import { AgentProcess } from '../helpers/agent.js';
import { makeSigner } from '../helpers/fixtures.js';
import { readJournal } from '../helpers/journal-read.js';
import { startLab, type Lab, type LabHost } from '../helpers/lab.js';

let lab: Lab;
let work: string;
before(async () => {
  work = await mkdtemp('/tmp/airlock-fb-');
  lab = await startLab(await mkdtemp('/tmp/airlock-lab-fb-'), 3);
});
after(async () => {
  await lab?.stop();
});

/** agent.yaml for a lab host: its own state and trust folders, as seen from inside it. */
async function configFor(host: LabHost, swarm: Record<string, unknown>): Promise<string> {
  const signer = await makeSigner(join(work, host.name));
  await mkdir(join(host.etcDir, 'trusted.d'), { recursive: true });
  await writeFile(join(host.etcDir, 'trusted.d', 'vendor.pub'), await readFile(signer.pubPath));
  const file = join(work, `${host.name}.yaml`);
  await writeFile(
    file,
    YAML.stringify({
      stateDir: '/var/lib/airlock',
      trustDir: '/etc/airlock/trusted.d',
      inbox: { poll: '*/1 * * * * *' },
      retention: { schedule: null },
      drift: { schedule: null },
      swarm,
    }),
  );
  return file;
}

const swarmEvents = (host: LabHost) =>
  readJournal(host.stateDir, (j) => j.events().filter((e) => e.kind.startsWith('swarm.')).map(({ kind, outcome, subject }) => ({ kind, outcome, subject })));

test('first boot: h1 makes the swarm, h2 joins it with a root-only token; restarts change nothing', async () => {
  const [h1, h2] = lab.hosts as [LabHost, LabHost];
  const init = await configFor(h1, { mode: 'init', advertiseAddr: h1.address });
  const a1 = new AgentProcess(init, {}, h1.enter);
  try {
    await a1.waitFor(/msg="initialised a new swarm as its first manager"/, 60_000);
  } finally {
    assert.equal((await a1.stop()).code, 0, a1.log);
  }
  const d1 = lab.docker(h1);
  const info1 = await d1.system.info();
  assert.equal(info1.Swarm.ControlAvailable, true);
  assert.equal(info1.Swarm.NodeAddr, h1.address);

  // The token travels to h2 out of band (here: written by root), readable by root only.
  const token = (await d1.swarm.joinTokens()).Worker;
  await writeFile(join(h2.etcDir, 'swarm-join-token'), `${token}\n`, { mode: 0o600 });
  const join2 = await configFor(h2, { mode: 'join', role: 'worker', managers: [`${h1.address}:2377`], advertiseAddr: h2.address });
  const a2 = new AgentProcess(join2, {}, h2.enter);
  try {
    await a2.waitFor(/msg="joined the swarm"/, 90_000);
  } finally {
    await a2.stop();
  }
  assert.doesNotMatch(a2.log, /SWMTKN/, 'the token must never be logged');
  const nodes = await d1.nodes.list();
  assert.deepEqual(nodes.map((n) => n.Description?.Hostname).sort(), ['h1', 'h2']);
  const worker = nodes.find((n) => n.Description?.Hostname === 'h2')!;
  assert.equal(worker.Spec.Role, 'worker');
  assert.equal(worker.Status.Addr, h2.address);

  // Idempotent: started again, both leave the swarm as it is.
  for (const [host, file] of [[h1, init], [h2, join2]] as const) {
    const again = new AgentProcess(file, {}, host.enter);
    try {
      await again.waitFor(/msg="engine is already in a swarm; leaving it as it is"/, 60_000);
    } finally {
      await again.stop();
    }
  }
  assert.deepEqual(swarmEvents(h1).map((e) => e.kind), ['swarm.init']);
  assert.deepEqual(swarmEvents(h2).map((e) => e.kind), ['swarm.join']);
  assert.equal((await d1.nodes.list()).length, 2);
});

test('a join token file others can read is refused by name, the token is not logged, and nothing joins', async () => {
  const h3 = lab.hosts[2]!;
  const token = 'SWMTKN-1-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd-0123456789abcdefghijklmno';
  await writeFile(join(h3.etcDir, 'swarm-join-token'), `${token}\n`, { mode: 0o644 });
  const file = await configFor(h3, { mode: 'join', managers: [`${lab.hosts[0]!.address}:2377`] });
  const a = new AgentProcess(file, {}, h3.enter);
  try {
    const line = await a.waitFor(/msg="swarm membership not settled; tried again at the next poll"/, 60_000);
    assert.match(line, /swarm join token file \/etc\/airlock\/swarm-join-token is readable by others \(mode 644\)/);
    // It keeps running (imports still work) and tries again at the next poll.
    await a.waitFor(/msg="swarm membership not settled/, 10_000, a.mark);
  } finally {
    assert.equal((await a.stop()).code, 0);
  }
  assert.doesNotMatch(a.log, /SWMTKN/);
  assert.equal((await lab.docker(h3).system.info()).Swarm.LocalNodeState, 'inactive');
});
