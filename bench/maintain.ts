/**
 * Rolling maintenance: `airlock cluster maintain --run true` across a 4-host
 * lab (3 managers, 1 worker; a service at 3 replicas whose tasks stop at once)
 * against the hand-written loop an operator runs today, per host:
 * `docker node update --availability drain`, poll `docker node ps` and
 * `docker service ls` until the node runs nothing and every service shows its
 * count, `docker node update --availability active`, poll `docker service ls`
 * again. Target: time(maintain) <= 1.1 x time(loop), with no poll below the
 * count for maintain; the loop's polls below are reported.
 *
 *   .runtime/node dist/bench/maintain.js [--runs 2] [--doc docs/benchmarks.md]
 *
 * One lab for every run, the two alternating. A poller reads the service's
 * running tasks through h1's API every 200 ms during each.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { CLI } from '../test/helpers/fixtures.js';
import { writeBusyboxLayer, writeImageArchive } from '../test/helpers/images.js';
import { startLab, type Lab } from '../test/helpers/lab.js';
import { writeGeneratedBlock } from './lib/doc.js';
import { timed } from './lib/proc.js';
import { median } from './lib/stats.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '2' }, doc: { type: 'string' } } });
const runs = Number(values.runs);
const SERVICE = 'bm-web';
const REPLICAS = 3;

/** Polls of the service's running tasks through h1 every 200 ms until stopped: how many, and how many below the count. */
function poller(lab: Lab): { stop: () => Promise<{ polls: number; below: number; lowest: number }> } {
  let stopped = false;
  let polls = 0;
  let below = 0;
  let lowest = REPLICAS;
  const d = lab.docker('h1');
  const loop = (async () => {
    while (!stopped) {
      const tasks = await d.tasks.list({ filters: { service: [SERVICE], 'desired-state': ['running'] } }).catch(() => undefined);
      if (tasks) {
        const running = tasks.filter((t) => t.Status.State === 'running').length;
        polls++;
        if (running < REPLICAS) below++;
        lowest = Math.min(lowest, running);
      }
      await sleep(200);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return { polls, below, lowest };
    },
  };
}

/** The docker CLI against h1's engine (not blocking: the poller goes on meanwhile). */
async function docker(lab: Lab, ...args: string[]): Promise<string> {
  return (await promisify(execFile)('docker', ['-H', lab.host('h1').dockerHost, ...args], { encoding: 'utf8' })).stdout;
}

async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await sleep(200);
}

const countsBack = async (lab: Lab) => (await docker(lab, 'service', 'ls', '--format', '{{.Replicas}}')).trim().split('\n').every((l) => /^(\d+)\/\1\b/.test(l));

/** The operator's loop with Docker's own drain, host after host. */
async function handLoop(lab: Lab): Promise<void> {
  for (const h of lab.hosts) {
    await docker(lab, 'node', 'update', '--availability', 'drain', h.name);
    await until(async () => !(await docker(lab, 'node', 'ps', h.name, '--format', '{{.CurrentState}}')).split('\n').some((s) => s.startsWith('Running')) && (await countsBack(lab)));
    await docker(lab, 'node', 'update', '--availability', 'active', h.name);
    await until(() => countsBack(lab));
  }
}

async function measure(lab: Lab, body: () => Promise<void>): Promise<{ ms: number; polls: number; below: number; lowest: number }> {
  const watch = poller(lab);
  const t0 = Date.now();
  await body();
  const ms = Date.now() - t0;
  return { ms, ...(await watch.stop()) };
}

const base = await mkdtemp('/tmp/airlock-bench-mt-');
const lab = await startLab(join(base, 'lab'), 4, { managers: 3 });
try {
  const up = await timed(process.execPath, [CLI, 'cluster', 'up', '--inventory', lab.inventoryFile, '--json']);
  if (!up.stdout.includes('"ok":true')) throw new Error(`cluster up failed:\n${up.stdout}\n${up.stderr}`);
  const archive = join(base, 'image.tar');
  const layer = join(base, 'layer.tar');
  await writeImageArchive(archive, [{ refs: ['bm/web:1'], layers: [{ path: layer, diffId: await writeBusyboxLayer(layer) }], cmd: ['sleep', '3600'] }], 'legacy');
  for (const h of lab.hosts) await lab.docker(h).images.loadAll(() => createReadStream(archive));
  await lab.docker('h1').services.create({
    Name: SERVICE,
    Mode: { Replicated: { Replicas: REPLICAS } },
    TaskTemplate: { ContainerSpec: { Image: 'bm/web:1', StopSignal: 'SIGKILL' }, RestartPolicy: { Condition: 'any', Delay: 500_000_000 } },
  });
  await until(() => countsBack(lab));
  const ours: Awaited<ReturnType<typeof measure>>[] = [];
  const theirs: Awaited<ReturnType<typeof measure>>[] = [];
  const steps: string[] = [];
  for (let i = 0; i < runs; i++) {
    theirs.push(await measure(lab, () => handLoop(lab)));
    ours.push(
      await measure(lab, async () => {
        const t = await timed(process.execPath, [CLI, 'cluster', 'maintain', '--inventory', lab.inventoryFile, '--state', join(lab.dir, 'jump-state'), '--run', 'true', '--json']);
        if (!t.stdout.includes('"ok":true')) throw new Error(`maintain failed:\n${t.stdout}\n${t.stderr}`);
        // Where the time went: each step summed over the hosts, and what no host's steps account for.
        const hosts = (JSON.parse(t.stdout) as { hosts: { seconds: number; steps: { step: string; seconds: number }[] }[] }).hosts;
        const byStep = new Map<string, number>();
        for (const s of hosts.flatMap((h) => h.steps)) byStep.set(s.step, (byStep.get(s.step) ?? 0) + s.seconds);
        const inHosts = hosts.reduce((n, h) => n + h.seconds, 0);
        steps.push(`${[...byStep].map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}, outside the hosts ${(t.wallMs / 1000 - inHosts).toFixed(1)} s`);
      }),
    );
    console.error(`run ${i + 1}: maintain ${(ours.at(-1)!.ms / 1000).toFixed(2)} s (${ours.at(-1)!.below} of ${ours.at(-1)!.polls} polls below), loop ${(theirs.at(-1)!.ms / 1000).toFixed(2)} s (${theirs.at(-1)!.below} of ${theirs.at(-1)!.polls} polls below)`);
  }
  const row = (name: string, xs: typeof ours) =>
    `| ${name} | ${(median(xs.map((x) => x.ms)) / 1000).toFixed(2)} s | ${xs.map((x) => (x.ms / 1000).toFixed(2)).join(', ')} | ${xs.map((x) => `${x.below}/${x.polls}`).join(', ')} | ${Math.min(...xs.map((x) => x.lowest))} |`;
  const ratio = median(ours.map((x) => x.ms)) / median(theirs.map((x) => x.ms));
  const body = [
    `Command: \`.runtime/node dist/bench/maintain.js --runs ${runs}\`; 4 lab hosts (3 managers), a service at ${REPLICAS} replicas stopped by SIGKILL; medians of ${runs}; a poll every 200 ms through h1.`,
    '',
    `| across 4 hosts | wall time (median) | runs | polls below ${REPLICAS} running | fewest running |`,
    '| --- | --- | --- | --- | --- |',
    row('cluster maintain --run true', ours),
    row('docker node update drain/active loop', theirs),
    '',
    `time(maintain) / time(loop) = **${ratio.toFixed(2)}** (target ≤ 1.1).`,
    '',
    `cluster maintain's seconds per step, summed over the 4 hosts, by run: ${steps.map((x) => `(${x})`).join('; ')}.`,
  ].join('\n');
  console.log(body);
  if (values.doc) await writeGeneratedBlock(values.doc, 'maintain', '## Rolling maintenance (cluster maintain)', body);
} finally {
  await lab.stop();
  await rm(base, { recursive: true, force: true });
}
