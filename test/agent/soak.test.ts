/**
 * The agent soak (issue 17): a stream of versions of a two-service stack
 * dropped into a real agent's folder inbox, on a private dockerd; the agent
 * killed with SIGKILL at random points and started again; the engine saying
 * "swarm inactive" for a while, answering 503 for a while, and stopped and
 * started once. Then: every imported version deployed or superseded by a
 * newer deployed one, the newest running, nothing quarantined or given up,
 * the content store holding only what retention keeps, the journal intact
 * (test/helpers/agent-soak.ts). The seed is fixed and printed; replay a
 * failure with AIRLOCK_SOAK_SEED=N. The 100-version run is bench/agent-soak.ts.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startBench, type Bench } from '../helpers/apply.js';
import { runSoak, soakFigures } from '../helpers/agent-soak.js';

const SEED = Number(process.env.AIRLOCK_SOAK_SEED ?? 1717);

let bench: Bench;
before(async () => {
  bench = await startBench('airlock-agent-soak-');
});
after(async () => {
  await bench?.close();
});

test(`soak: versions streamed in while the agent is killed and the engine goes away; nothing imported is lost (seed ${SEED})`, { timeout: 220_000 }, async (t) => {
  t.diagnostic(`seed ${SEED} (replay: AIRLOCK_SOAK_SEED=${SEED})`);
  const r = await runSoak(bench, { seed: SEED, versions: 16, killChance: 0.45, stack: 'soak', keep: 2, restartEngine: true, settleMs: 100_000 });
  for (const line of soakFigures(r).slice(1)) t.diagnostic(line);
  assert.deepEqual(r.problems, [], `seed ${SEED}:\n${soakFigures(r).join('\n')}`);
  // The soak means something only if the faults happened.
  assert.ok(r.kills.length >= 3, `only ${r.kills.length} kills`);
  assert.equal(r.faults.length, 3, r.faults.join('; '));
  assert.ok(r.superseded.length > 0, 'some version was superseded');
});
