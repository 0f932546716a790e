/**
 * The root of trust (issue 22): what it costs a host and a signer, each against what a user
 * would otherwise run, in the same run.
 *
 *   npm run build && .runtime/node dist/bench/trust.js [--size-mib 512] [--runs 5] [--doc docs/benchmarks.md] [--keep]
 *
 *  1. `bundle sign` (a second signature on a bundle of --size-mib random layers: it copies every
 *     byte but manifest.sig into a new file, flushed) against `cp` of the same file and `sync` of
 *     the copy: the floor for rewriting a file durably.
 *  2. `bundle verify` of that bundle, 2 of 3 signatures, on a host with a root of trust (TUF
 *     metadata loaded and its chain checked, thresholds counted, the timestamp read) against the
 *     same verify on a host in the simple mode (one trusted key), and `openssl dgst -sha256`.
 *  3. `trust update` of a fresh timestamp, and `trust status`, against `airlock --version`: the
 *     process start-up they cannot go below.
 *
 * Every command is a whole process on the packaged runtime, under GNU time; the variants of one
 * measure run interleaved, rotating their order run by run, after one untimed warm-up each.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeTrustRepo } from '../test/helpers/trust-repo.js';
import { makeSigner } from '../test/helpers/fixtures.js';
import { makeBenchProject } from './lib/corpus.js';
import { writeGeneratedBlock } from './lib/doc.js';
import { machineFacts } from './lib/machine.js';
import { syncAll, timed, type Timed } from './lib/proc.js';
import { fmtRatio, fmtSec, fmtMB, mdTable, median, MiB } from './lib/stats.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const AIRLOCK = join(REPO, 'bin/airlock');

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '512' },
    runs: { type: 'string', default: '5' },
    doc: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const sizeMiB = Number(values['size-mib']);

interface Variant {
  label: string;
  /** Untimed preparation before each run. */
  prepare?: () => Promise<void>;
  run: () => Promise<Timed>;
}

/** Runs the variants interleaved, `runs` times each after a warm-up; medians of wall time and peak memory. */
async function measure(variants: Variant[]): Promise<{ label: string; wallMs: number; rss: number; all: number[] }[]> {
  const walls = variants.map(() => [] as number[]);
  const rss = variants.map(() => [] as number[]);
  for (let r = -1; r < runs; r++) {
    for (let k = 0; k < variants.length; k++) {
      const i = (k + Math.max(r, 0)) % variants.length;
      const v = variants[i]!;
      await v.prepare?.();
      syncAll();
      const t = await v.run();
      if (r < 0) continue;
      walls[i]!.push(t.wallMs);
      rss[i]!.push(t.peakRssBytes ?? 0);
    }
  }
  return variants.map((v, i) => ({ label: v.label, wallMs: median(walls[i]!), rss: median(rss[i]!), all: walls[i]! }));
}

const airlock = (args: string[], env: NodeJS.ProcessEnv) => timed(AIRLOCK, args, { env: { ...process.env, ...env } });

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'airlock-bench-trust-'));
  try {
    const t = await makeTrustRepo(work);
    await t.publish({ demo: '1.0.0' });
    const project = await makeBenchProject(join(work, 'project'), { name: 'demo', totalBytes: sizeMiB * MiB, kind: 'random' });
    const built = await t.cli(['bundle', 'build', '-f', project.definition, '--key', t.keys.alice.privatePath, '-o', join(work, 'out'), '--json']);
    const bundle = (JSON.parse(built.stdout) as { path: string }).path;
    const bytes = (JSON.parse(built.stdout) as { bytes: number }).bytes;
    const signed = join(work, 'signed.airlock');
    await copyFile(bundle, signed);
    await t.cli(['bundle', 'sign', signed, '--key', t.keys.bob.privatePath]);
    const simple = await makeSigner(work, 'alice-only');
    await copyFile(t.keys.alice.publicPath, join(simple.trustDir, 'alice.pub'));
    const simpleEnv = { AIRLOCK_TRUST_DIR: simple.trustDir, AIRLOCK_STATE_DIR: join(work, 'simple-state') };

    const copy = join(work, 'copy.airlock');
    const sign = await measure([
      { label: '`airlock bundle sign` (adds a signature)', prepare: () => copyFile(bundle, copy), run: () => airlock(['bundle', 'sign', copy, '--key', t.keys.bob.privatePath], t.env) },
      { label: '`cp` + `sync` of the copy', prepare: () => rm(copy, { force: true }), run: () => timed('sh', ['-c', `cp ${bundle} ${copy} && sync ${copy}`]) },
    ]);
    const verify = await measure([
      { label: '`bundle verify`, root of trust, 2 of 3', run: () => airlock(['bundle', 'verify', signed], t.env) },
      { label: '`bundle verify`, simple mode', run: () => airlock(['bundle', 'verify', signed], simpleEnv) },
      { label: '`openssl dgst -sha256`', run: () => timed('openssl', ['dgst', '-sha256', signed]) },
    ]);
    const meta = await measure([
      { label: '`trust update` of a new timestamp', prepare: async () => void (await t.timestamp({ demo: '1.0.0' })), run: () => airlock(['trust', 'update', join(t.repo, 'timestamp.json')], t.env) },
      { label: '`trust status`', run: () => airlock(['trust', 'status'], t.env) },
      { label: '`airlock --version`', run: () => airlock(['--version'], t.env) },
    ]);

    const rows = (ms: typeof sign, base: number) => ms.map((m) => [m.label, fmtSec(m.wallMs), fmtRatio(m.wallMs / base), fmtMB(m.rss)]);
    const facts = machineFacts(work, REPO);
    const body = [
      `Measured ${new Date().toISOString().slice(0, 10)} on ${facts.cpu} (${facts.cores} cores), ${facts.fileSystem}, Node ${facts.node}, commit ${facts.commit}; ${runs} runs each, medians; bundle ${fmtMB(bytes)} (random layers).`,
      '',
      `**Signing after the build** (ratio to \`cp\` + \`sync\`):`,
      '',
      mdTable(['command', 'wall', 'ratio', 'peak RSS'], rows(sign, sign[1]!.wallMs)),
      '',
      `**Verify on a host with a root of trust** (ratio to the simple mode):`,
      '',
      mdTable(['command', 'wall', 'ratio', 'peak RSS'], rows(verify, verify[1]!.wallMs)),
      '',
      '**Trust metadata commands** (ratio to `airlock --version`):',
      '',
      mdTable(['command', 'wall', 'ratio', 'peak RSS'], rows(meta, meta[2]!.wallMs)),
      '',
      `Every run (ms): ${[...sign, ...verify, ...meta].map((m) => `${m.label.replace(/`/g, '')}: ${m.all.map((x) => x.toFixed(0)).join(', ')}`).join('; ')}.`,
    ].join('\n');
    console.log(body);
    if (values.doc) await writeGeneratedBlock(values.doc, 'trust', '## Root of trust: signing and verifying', body);
  } finally {
    if (!values.keep) await rm(work, { recursive: true, force: true });
    else console.log(`kept ${work}`);
  }
}

await main();
