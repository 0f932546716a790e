/**
 * The agent soak at length (issue 17's "Measured"): the same run as
 * test/agent/soak.test.ts (test/helpers/agent-soak.ts), with 100 versions:
 * a private dockerd made a single-node swarm, a real agent fed the versions
 * through its folder inbox, killed with SIGKILL at random and started again,
 * the engine saying "swarm inactive" for 6 s, answering 503 for 6 s and
 * stopped and started once. Reports the agent's memory (VmRSS from
 * /proc/PID/status, sampled every 0.5 s, every agent process of the run),
 * the journal's size, the soak's counts, and whether everything the soak
 * checks held; exits 1 when it did not.
 *
 *   .runtime/node dist/bench/agent-soak.js [--versions 100] [--seed 1717] [--kill-chance 0.15] [--keep 2] [--out docs/benchmarks.md]
 */
import { parseArgs } from 'node:util';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSoak, soakFigures } from '../test/helpers/agent-soak.js';
import { startBench } from '../test/helpers/apply.js';
import { writeGeneratedBlock } from './lib/doc.js';
import { machineFacts } from './lib/machine.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const { values } = parseArgs({
  options: {
    versions: { type: 'string', default: '100' },
    seed: { type: 'string', default: '1717' },
    'kill-chance': { type: 'string', default: '0.15' },
    keep: { type: 'string', default: '2' },
    out: { type: 'string' },
  },
});

const bench = await startBench('airlock-bench-agent-soak-');
let body: string;
let held: boolean;
try {
  const started = new Date().toISOString().slice(0, 10);
  const r = await runSoak(bench, {
    seed: Number(values.seed),
    versions: Number(values.versions),
    killChance: Number(values['kill-chance']),
    stack: 'soak',
    keep: Number(values.keep),
    restartEngine: true,
    settleMs: 300_000,
    say: (line) => process.stderr.write(`${line}\n`),
  });
  held = r.problems.length === 0;
  const m = machineFacts(bench.dir, REPO);
  body = [
    ...soakFigures(r).map((l) => `- ${l}`),
    `- checks: ${held ? 'all held (every imported version deployed or superseded by a newer deployed one, the newest running, nothing quarantined or given up, the store after prune holding exactly the kept versions\' blobs, journal integrity ok, no deployment left running)' : `**FAILED**: ${r.problems.join('; ')}`}`,
    `- CPU: ${m.cpu}, ${m.cores} cores; ${m.memory} RAM; ${m.kernel}; ${m.fileSystem}`,
    `- Node ${m.node}; airlock ${m.commit}`,
    `- Command: \`.runtime/node dist/bench/agent-soak.js --versions ${values.versions} --seed ${values.seed} --kill-chance ${values['kill-chance']} --keep ${values.keep}\`, ${started}`,
  ].join('\n');
} finally {
  await bench.close();
}
process.stdout.write(`${body}\n`);
if (values.out) await writeGeneratedBlock(values.out, 'agent-soak', '## Agent soak', body);
process.exit(held ? 0 : 1);
