/**
 * Runs the bundle-reader fuzzer for longer than the test does and prints the
 * count of each outcome.
 *
 *   .runtime/node dist/bench/fuzz.js [--seconds 300] [--seed 42]
 *   .runtime/node dist/bench/fuzz.js --seed 42 --iteration 1234 [--dump FILE]   # replay one case, keep the mutant
 *
 * Exits 1 if any case failed (crash, wrong error class, unhandled rejection, hang).
 */
import { randomInt } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { tempDir } from '../test/helpers/fixtures.js';
import { caseSeed, formatReport, fuzz, makeCorpus, runCase } from '../test/helpers/fuzz.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string' },
    iteration: { type: 'string' },
    'case-timeout': { type: 'string', default: '10000' },
    'max-failures': { type: 'string', default: '20' },
    dump: { type: 'string' },
  },
});

const seed = values.seed !== undefined ? Number(values.seed) : randomInt(2 ** 31);
if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be a whole number, got ${values.seed}`);
const caseTimeoutMs = Number(values['case-timeout']);

const { dir, cleanup } = await tempDir('airlock-fuzz-bench-');
try {
  const corpus = await makeCorpus(dir);
  if (values.iteration !== undefined) {
    const iteration = Number(values.iteration);
    let bytes: Buffer = Buffer.alloc(0);
    const r = await runCase(corpus, seed, iteration, caseTimeoutMs, (b) => (bytes = b));
    if (values.dump) await writeFile(values.dump, bytes);
    console.log(JSON.stringify({ ...r, caseSeed: caseSeed(seed, iteration) }, null, 2));
    process.exitCode = r.failure ? 1 : 0;
  } else {
    const seconds = Number(values.seconds);
    console.log(`fuzzing the bundle reader for ${seconds} s, seed ${seed}`);
    const report = await fuzz(corpus, {
      seed,
      seconds,
      caseTimeoutMs,
      maxFailures: Number(values['max-failures']),
      onProgress: (n, ms) => {
        if (n % 5000 === 0) console.log(`  ${n} cases, ${(n / (ms / 1000)).toFixed(0)}/s`);
      },
    });
    console.log(formatReport(report));
    process.exitCode = report.failures.length > 0 ? 1 : 0;
  }
} finally {
  await cleanup();
}
