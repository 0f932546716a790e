/**
 * `airlock cluster maintain` on a real 4-host lab (scripts/lab; 3 managers, 1
 * worker) with a replicated service at 3 replicas: every host's dockerd
 * restarted in turn while a poller watches the service's running count and
 * how many nodes are out at once; then a command failing on the second host
 * stops the run there with that node drained, and a re-run resumes from it.
 */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { Docker, SwarmNode } from '../../src/docker/index.js';
import { runCli } from '../helpers/fixtures.js';
import { writeBusyboxLayer, writeImageArchive } from '../helpers/images.js';
import { type Lab, startLab } from '../helpers/lab.js';

const base = await mkdtemp('/tmp/airlock-lab-mt-');
const SERVICE = 'mt-web';
const LABEL = 'io.airlock.maintain';

/**
 * A lab host's `systemctl restart docker` (`stop`: `systemctl stop docker`):
 * the host's dockerd gets SIGTERM as systemd would send it and is started
 * again with the command line and environment it had (kept beside the host's
 * pids for a later start); the script returns once the engine answers. The
 * host finds its folder by its hostname; the lab's pids file follows the new
 * daemon, so that scripts/lab down stops it.
 */
const RESTART_DOCKERD = `#!/bin/bash
set -euo pipefail
h="$(dirname "$0")/$(hostname)"
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
pid="$(awk '$1=="dockerd"{print $2}' "$h/pids")"
if alive "$pid"; then
  cat "/proc/$pid/cmdline" >"$h/dockerd.argv"
  cat "/proc/$pid/environ" >"$h/dockerd.env"
  kill -TERM "$pid"
  while alive "$pid"; do sleep 0.1; done
fi
[ "\${1:-}" != stop ] || { echo "dockerd $pid stopped"; exit 0; }
mapfile -d '' cmd <"$h/dockerd.argv"
mapfile -d '' envs <"$h/dockerd.env"
cd /
setsid env -i "\${envs[@]}" "\${cmd[@]}" </dev/null >>"$h/dockerd.log" 2>&1 &
new=$!
sed -i "s/^dockerd .*/dockerd $new $(awk '{print $22}' "/proc/$new/stat")/" "$h/pids"
for _ in $(seq 300); do
  curl -sf --unix-socket /var/run/docker.sock http://engine/_ping >/dev/null && { echo "dockerd restarted: $pid -> $new"; exit 0; }
  sleep 0.1
done
echo "dockerd $new does not answer" >&2
exit 1
`;

interface MaintainJson {
  ok: boolean;
  runId: string;
  resumed: string | null;
  hosts: { host: string; outcome: string; seconds: number; steps: { step: string; seconds: number }[]; failedAt?: string; outputTail?: string; error?: { error: string; reason: string; message: string; exitCode: number } }[];
}

/** What a poll saw: the service's running tasks, and the nodes not active. */
interface Poll {
  running: number;
  out: string[];
  managersOut: number;
}

describe('cluster maintain on a 4-host lab', { timeout: 170_000 }, () => {
  let lab: Lab;
  let restart: string;

  const managers = () => lab.hosts.filter((h) => h.roles.includes('manager'));
  /** The node list through the first manager that answers. */
  const nodes = async (): Promise<SwarmNode[]> => {
    for (const h of managers()) {
      const list = await lab.docker(h).nodes.list({ signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      if (list) return list;
    }
    throw new Error('no manager answers');
  };
  const node = (list: SwarmNode[], host: string) => list.find((n) => n.Description?.Hostname === host)!;
  const maintain = async (...args: string[]) => {
    const r = await runCli(['cluster', 'maintain', '--inventory', lab.inventoryFile, '--state', join(lab.dir, 'jump-state'), '--timeout', '60s', ...args]);
    return r;
  };
  const dockerdPid = async (host: string): Promise<string> => (await readFile(join(lab.host(host).hostDir, 'pids'), 'utf8')).match(/^dockerd (\d+)/m)![1]!;

  /**
   * Every ~200 ms, through a manager that is not under maintenance at that
   * moment (its node carries no unfinished mark), the service's running tasks
   * and the nodes not active.
   */
  function poller(): { stop: () => Promise<Poll[]> } {
    const polls: Poll[] = [];
    let stopped = false;
    const once = async (d: Docker, h: string): Promise<boolean> => {
      const signal = AbortSignal.timeout(1500);
      const list = await d.nodes.list({ signal });
      const mark = node(list, h).Spec.Labels?.[LABEL];
      if (mark && !mark.endsWith(':done')) return false;
      const tasks = await d.tasks.list({ filters: { service: [SERVICE], 'desired-state': ['running'] }, signal });
      const out = list.filter((n) => n.Spec.Availability !== 'active');
      polls.push({ running: tasks.filter((t) => t.Status.State === 'running').length, out: out.map((n) => n.Description?.Hostname ?? n.ID), managersOut: out.filter((n) => n.ManagerStatus).length });
      return true;
    };
    const loop = (async () => {
      while (!stopped) {
        for (const h of managers()) {
          if (await once(lab.docker(h), h.name).catch(() => false)) break;
        }
        await sleep(200);
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        await loop;
        return polls;
      },
    };
  }

  before(async () => {
    lab = await startLab(join(base, 'lab'), 4, { managers: 3 });
    const up = await runCli(['cluster', 'up', '--inventory', lab.inventoryFile, '--json']);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    restart = join(lab.dir, 'restart-dockerd');
    await writeFile(restart, RESTART_DOCKERD);
    await chmod(restart, 0o755);
    const archive = join(base, 'image.tar');
    const layer = join(base, 'layer.tar');
    await writeImageArchive(archive, [{ refs: ['mt/web:1'], layers: [{ path: layer, diffId: await writeBusyboxLayer(layer) }], cmd: ['sleep', '3600'] }], 'legacy');
    for (const h of lab.hosts) await lab.docker(h).images.loadAll(() => createReadStream(archive));
    // SIGKILL stops a task at once: Docker's own drain would show its gap before the replacement runs.
    await lab.docker('h1').services.create({
      Name: SERVICE,
      Mode: { Replicated: { Replicas: 3 } },
      TaskTemplate: { ContainerSpec: { Image: 'mt/web:1', StopSignal: 'SIGKILL' }, RestartPolicy: { Condition: 'any', Delay: 500_000_000 } },
    });
    for (let i = 0; ; i++) {
      const tasks = await lab.docker('h1').tasks.list({ filters: { service: [SERVICE], 'desired-state': ['running'] } });
      if (tasks.filter((t) => t.Status.State === 'running').length === 3) break;
      if (i > 100) throw new Error('the service did not start');
      await sleep(200);
    }
  });
  after(async () => {
    await lab?.stop();
    await rm(base, { recursive: true, force: true });
  });

  test('refused before anything starts: no maintenance or two, a host not in the inventory; the swarm unchanged', async () => {
    const before = (await nodes()).map((n) => `${n.ID}@${n.Version.Index}`).sort();
    const none = await maintain('--json');
    assert.equal(none.code, 2);
    assert.match(JSON.parse(none.stdout).message, /^give the maintenance: --run CMD or --engine BUNDLE$/);
    const both = await maintain('--run', 'true', '--engine', 'x.airlock', '--json');
    assert.equal(both.code, 2);
    assert.match(JSON.parse(both.stdout).message, /^--run and --engine go one at a time$/);
    const unknown = await maintain('--run', 'true', '--hosts', 'h2,h9', '--json');
    assert.equal(unknown.code, 2);
    assert.deepEqual(JSON.parse(unknown.stdout), { error: 'usage', reason: 'unknown-host', message: '--hosts names h9, not in the inventory', hint: "the inventory's hosts: h1, h2, h3, h4", exitCode: 2 });
    assert.deepEqual((await nodes()).map((n) => `${n.ID}@${n.Version.Index}`).sort(), before);
  });

  test("every host's dockerd restarted in turn: the service never below 3 running, one node out at a time, marks cleared", async () => {
    const pidsBefore = await Promise.all(lab.hosts.map((h) => dockerdPid(h.name)));
    const watch = poller();
    const r = await maintain('--run', restart, '--json');
    const polls = await watch.stop();
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const j = JSON.parse(r.stdout) as MaintainJson;
    assert.equal(j.ok, true);
    assert.deepEqual(j.hosts.map((h) => [h.host, h.outcome, h.steps.map((s) => s.step).join(',')]), lab.hosts.map((h) => [h.name, 'done', 'drain,run,ready,activate,settle']));
    for (const h of j.hosts) assert.match(h.outputTail ?? '', /dockerd restarted: \d+ -> \d+/);
    const pidsAfter = await Promise.all(lab.hosts.map((h) => dockerdPid(h.name)));
    pidsAfter.forEach((p, i) => assert.notEqual(p, pidsBefore[i], `${lab.hosts[i]!.name}'s dockerd was restarted`));
    assert.ok(polls.length >= 50, `the poller saw the run (${polls.length} polls)`);
    const below = polls.filter((p) => p.running < 3);
    assert.equal(below.length, 0, `polls below 3 running: ${JSON.stringify(below)}`);
    const most = Math.max(...polls.map((p) => p.out.length));
    assert.equal(most, 1, `nodes out at once: ${JSON.stringify(polls.filter((p) => p.out.length > 1))}`);
    assert.deepEqual(new Set(polls.flatMap((p) => p.out)), new Set(lab.hosts.map((h) => h.name)), 'every node was out at some poll');
    // Read through whichever manager answers first: a follower may show the last writes a moment late.
    const settled = (list: SwarmNode[]) => list.every((n) => n.Spec.Availability === 'active' && n.Status.State === 'ready' && n.Spec.Labels?.[LABEL] === undefined);
    let after = await nodes();
    for (let i = 0; i < 50 && !settled(after); i++) {
      await sleep(200);
      after = await nodes();
    }
    assert.ok(settled(after), JSON.stringify(after.map((n) => [n.Description?.Hostname, n.Spec.Availability, n.Status.State, n.Spec.Labels?.[LABEL]])));
  });

  test('--parallel 2: a worker goes with a manager, never two managers (3 need 2), the service never below 3', async () => {
    const watch = poller();
    const r = await maintain('--run', 'true', '--parallel', '2', '--json');
    const polls = await watch.stop();
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual((JSON.parse(r.stdout) as MaintainJson).hosts.map((h) => h.outcome), ['done', 'done', 'done', 'done']);
    assert.equal(polls.filter((p) => p.running < 3).length, 0, JSON.stringify(polls.filter((p) => p.running < 3)));
    assert.equal(Math.max(...polls.map((p) => p.managersOut)), 1);
    assert.deepEqual([...new Set(polls.filter((p) => p.out.length === 2).map((p) => p.out.sort().join('+')))], ['h1+h4'], 'h1 and h4 went together, h2 and h3 alone');
  });

  test('a command failing on the second host stops there, node drained, exit 20 with its output; a re-run resumes from it', async () => {
    const failing = `if [ "$(hostname)" = h2 ]; then echo "disk check failed on h2"; exit 3; fi; echo ok`;
    const r = await maintain('--run', failing, '--json');
    assert.equal(r.code, 20, r.stderr + r.stdout);
    const j = JSON.parse(r.stdout) as MaintainJson;
    assert.equal(j.ok, false);
    assert.deepEqual(j.hosts.map((h) => [h.host, h.outcome]), [['h1', 'done'], ['h2', 'failed'], ['h3', 'not-started'], ['h4', 'not-started']]);
    const h2 = j.hosts[1]!;
    assert.equal(h2.failedAt, 'run');
    assert.equal(h2.error?.reason, 'maintain-command-failed');
    assert.equal(h2.error?.exitCode, 20);
    assert.match(h2.error!.message, /^h2: `.*` exited 3; its output ends:\ndisk check failed on h2$/);
    assert.equal(h2.outputTail, 'disk check failed on h2');
    const list = await nodes();
    assert.deepEqual(lab.hosts.map((h) => [h.name, node(list, h.name).Spec.Availability, node(list, h.name).Spec.Labels?.[LABEL] ?? null]), [
      ['h1', 'active', `${j.runId}:done`],
      ['h2', 'drain', `${j.runId}:run`],
      ['h3', 'active', null],
      ['h4', 'active', null],
    ]);
    const tasks = await lab.docker('h1').tasks.list({ filters: { service: [SERVICE], 'desired-state': ['running'] } });
    assert.equal(tasks.filter((t) => t.Status.State === 'running' && t.NodeID !== node(list, 'h2').ID).length, 3, 'the service runs its 3 off the drained node');

    // Again, with a command that works: h1 is skipped, h2 goes first, then h3 and h4.
    const again = await maintain('--run', 'true');
    assert.equal(again.code, 0, again.stderr + again.stdout);
    assert.match(again.stdout, new RegExp(`run ${j.runId} \\(resumed\\): 3 done, 1 done before, 0 failed, 0 not started`));
    const drains = again.stderr.split('\n').filter((l) => /^h\d: drain draining/.test(l)).map((l) => l.slice(0, 2));
    assert.deepEqual(drains, ['h2', 'h3', 'h4']);
    assert.match(again.stderr, new RegExp(`^h1: skip done by run ${j.runId} already$`, 'm'));
    const final = await nodes();
    assert.ok(final.every((n) => n.Spec.Availability === 'active' && n.Spec.Labels?.[LABEL] === undefined), JSON.stringify(final.map((n) => n.Spec)));
  });
  test('a command that stopped the engine and failed: the re-run reaches the host over SSH alone, and its command brings the engine back', async () => {
    const r = await maintain('--hosts', 'h4', '--run', `${restart} stop; exit 1`, '--json');
    assert.equal(r.code, 20, r.stderr + r.stdout);
    const j = JSON.parse(r.stdout) as MaintainJson;
    assert.deepEqual([j.hosts[0]!.outcome, j.hosts[0]!.failedAt, j.hosts[0]!.error?.reason], ['failed', 'run', 'maintain-command-failed']);
    assert.match(j.hosts[0]!.outputTail ?? '', /^dockerd \d+ stopped$/);
    assert.equal((await lab.docker('h4').system.ping().then(() => 'answers').catch(() => 'down')), 'down');
    const h4 = node(await nodes(), 'h4');
    assert.deepEqual([h4.Spec.Availability, h4.Spec.Labels?.[LABEL]], ['drain', `${j.runId}:run`]);

    const again = await maintain('--hosts', 'h4', '--run', restart, '--json');
    assert.equal(again.code, 0, again.stderr + again.stdout);
    const k = JSON.parse(again.stdout) as MaintainJson;
    assert.equal(k.resumed, j.runId);
    assert.equal(k.hosts[0]!.outcome, 'done');
    assert.match(k.hosts[0]!.outputTail ?? '', /^dockerd restarted: \d+ -> \d+$/);
    const back = node(await nodes(), 'h4');
    assert.deepEqual([back.Spec.Availability, back.Status.State, back.Spec.Labels?.[LABEL]], ['active', 'ready', undefined]);
  });
});
