/**
 * Multi-host apply: `airlock bundle apply BUNDLE --inventory` from the jump
 * box to 1 lab host and to 4 lab hosts (scripts/lab: each host its own
 * dockerd and sshd in network namespaces), the same bundle, fresh hosts
 * each run. Target: time(4) <= 1.5 x time(1).
 *
 *   .runtime/node dist/bench/rollout.js [--runs 3] [--mib 100] [--doc docs/benchmarks.md]
 *
 * Each run starts a lab, makes a swarm (h1 manager, the rest workers), trusts
 * the vendor key on every host, and times the whole CLI: upload to every
 * host, every host's import (verify, store, load), the deploy through h1 and
 * its convergence. The stack has one service per worker placement, so the
 * deploy waits for tasks on the workers.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildRelease, type Bench } from '../test/helpers/apply.js';
import { CLI, makeSigner } from '../test/helpers/fixtures.js';
import { startLab, type Lab } from '../test/helpers/lab.js';
import { writeGeneratedBlock } from './lib/doc.js';
import { timed } from './lib/proc.js';
import { median } from './lib/stats.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, mib: { type: 'string', default: '100' }, doc: { type: 'string' } } });
const runs = Number(values.runs);
const mib = Number(values.mib);

async function swarm(lab: Lab): Promise<void> {
  const [h1, ...workers] = lab.hosts;
  const manager = lab.docker(h1!);
  await manager.swarm.init({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: h1!.address });
  const token = (await manager.swarm.joinTokens()).Worker;
  for (const w of workers) await lab.docker(w).swarm.join({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: w.address, RemoteAddrs: [`${h1!.address}:2377`], JoinToken: token });
}

async function oneRun(bench: Bench, bundle: string, hosts: number): Promise<number> {
  const lab = await startLab(await mkdtemp('/tmp/airlock-lab-bench-'), hosts);
  try {
    await swarm(lab);
    for (const h of lab.hosts) {
      await mkdir(join(h.etcDir, 'trusted.d'), { recursive: true });
      await writeFile(join(h.etcDir, 'trusted.d', 'vendor.pub'), await readFile(bench.signer.pubPath));
    }
    const t = await timed(process.execPath, [CLI, 'bundle', 'apply', bundle, '--inventory', lab.inventoryFile, '--remote-airlock', CLI, '--timeout', '5m', '--json']);
    if (!t.stdout.includes('"deploy":{"host":"h1","ok":true')) throw new Error(`apply to ${hosts} hosts failed:\n${t.stdout}\n${t.stderr}`);
    return t.wallMs;
  } finally {
    await lab.stop();
  }
}

const dir = await mkdtemp('/tmp/airlock-bench-rollout-');
try {
  const bench = { dir, signer: await makeSigner(dir) } as unknown as Bench;
  const bundle = await buildRelease(bench, { version: '1.0.0', stack: 'bench', repo: 'benchapp', bulkBytes: mib << 20 });
  const one: number[] = [];
  const four: number[] = [];
  for (let i = 0; i < runs; i++) {
    // Alternating, so drift in the machine's load hits both alike.
    one.push(await oneRun(bench, bundle, 1));
    four.push(await oneRun(bench, bundle, 4));
    console.error(`run ${i + 1}: 1 host ${(one.at(-1)! / 1000).toFixed(2)} s, 4 hosts ${(four.at(-1)! / 1000).toFixed(2)} s`);
  }
  const ratio = median(four) / median(one);
  const body = [
    `Command: \`.runtime/node dist/bench/rollout.js --runs ${runs} --mib ${mib}\`; bundle with a ${mib} MiB random layer; medians of ${runs}.`,
    '',
    '| hosts | wall time (median) | runs |',
    '| --- | --- | --- |',
    `| 1 | ${(median(one) / 1000).toFixed(2)} s | ${one.map((x) => (x / 1000).toFixed(2)).join(', ')} |`,
    `| 4 | ${(median(four) / 1000).toFixed(2)} s | ${four.map((x) => (x / 1000).toFixed(2)).join(', ')} |`,
    '',
    `time(4) / time(1) = **${ratio.toFixed(2)}** (target ≤ 1.5).`,
  ].join('\n');
  console.log(body);
  if (values.doc) await writeGeneratedBlock(values.doc, 'rollout', '## Multi-host apply (bundle apply --inventory)', body);
} finally {
  await rm(dir, { recursive: true, force: true });
}
