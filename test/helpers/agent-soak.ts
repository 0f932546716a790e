/**
 * The agent soak (issue 17), shared by test/agent/soak.test.ts and
 * bench/agent-soak.ts: a stream of versions of a two-service stack dropped
 * into a real agent's folder inbox, the agent killed with SIGKILL at random
 * points and started again, the engine unavailable for a while (a proxy on
 * its socket saying "swarm inactive", then answering 503, and the private
 * dockerd stopped and started once); then, once the agent has settled, what
 * must hold, as a list of problems (empty when it held). Every random choice
 * comes from one seed, so a failure can be replayed.
 */
import { readFileSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import semver from 'semver';
import { AgentProcess, dropBundle as drop, writeAgentConfig, type AgentLayout } from './agent.js';
import { buildRelease, engineSpecs, recordedSpecs, specDrift, type Bench } from './apply.js';
import { readJournal } from './journal-read.js';
import { EngineProxy } from './engine-proxy.js';
import { runCli } from './fixtures.js';

export interface SoakOptions {
  seed: number;
  /** How many versions are dropped: 2.0.1 … 2.0.N (names that sort otherwise than versions from 2.0.10 on). */
  versions: number;
  /** Chance, after each drop, that the agent is killed. */
  killChance: number;
  /** The stack and image repository the versions deploy (other tests on the engine must not share them). */
  stack: string;
  /** Retention kept by the prune run at the end. */
  keep: number;
  /** Stop and start the private dockerd once, at about 60% of the stream. */
  restartEngine: boolean;
  /** How long the agent may take to settle once the stream ended. */
  settleMs: number;
  /** Progress lines, for a long run. */
  say?: (line: string) => void;
}

export interface SoakResult {
  seed: number;
  dropped: string[];
  kills: { at: string; version: string }[];
  faults: string[];
  deployed: string[];
  superseded: string[];
  quarantined: string[];
  failed: string[];
  /** VmRSS samples of every agent process, kB. */
  rssKb: number[];
  journalBytes: number;
  blobsOnDisk: number;
  problems: string[];
  ms: { build: number; stream: number; settle: number };
  layout: AgentLayout;
}

/** mulberry32: a small PRNG, the same stream for the same seed. */
export function randomFrom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function rssOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Where a kill lands: a random moment, or as the agent reaches a point of its work. */
const KILL_POINTS: { name: string; pattern?: RegExp }[] = [
  { name: 'random moment' },
  { name: 'bundle imported', pattern: /msg="bundle imported"/ },
  { name: 'step store', pattern: /msg="apply step" .*step=store/ },
  { name: 'step load', pattern: /msg="apply step" .*step=load/ },
  { name: 'step services', pattern: /msg="apply step" .*step=services/ },
  { name: 'step converge', pattern: /msg="apply step" .*step=converge/ },
  { name: 'step commit', pattern: /msg="apply step" .*step=commit/ },
];

export async function runSoak(bench: Bench, opts: SoakOptions): Promise<SoakResult> {
  const say = opts.say ?? (() => {});
  const rand = randomFrom(opts.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const t0 = Date.now();
  const versions = Array.from({ length: opts.versions }, (_, i) => `2.0.${i + 1}`);
  const bundles: string[] = [];
  // Two builds at a time: a build is mostly one CLI process.
  for (let i = 0; i < versions.length; i += 2) {
    bundles.push(...(await Promise.all(versions.slice(i, i + 2).map((v) => buildRelease(bench, { version: v, stack: opts.stack, repo: opts.stack })))));
  }
  const built = Date.now();
  say(`built ${versions.length} bundles in ${((built - t0) / 1000).toFixed(1)} s`);

  const proxy = new EngineProxy(join(bench.dir, `${opts.stack}-proxy.sock`), bench.daemon.socket);
  await proxy.start();
  const layout = await writeAgentConfig(join(bench.dir, `soak-${opts.stack}`), bench.signer.trustDir, { apply: { timeout: '30s' } });
  const env = { DOCKER_HOST: proxy.dockerHost };
  const rssKb: number[] = [];
  let agent = new AgentProcess(layout.config, env);
  const sampler = setInterval(() => {
    const kb = rssOf(agent.child.pid);
    if (kb !== undefined) rssKb.push(kb);
  }, 500);
  const kills: SoakResult['kills'] = [];
  const faults: string[] = [];
  const dropped: string[] = [];
  // The faults, each once, at points of the stream the seed picks.
  const at = (from: number, to: number) => Math.floor(opts.versions * (from + rand() * (to - from)));
  const inactiveAt = at(0.1, 0.3);
  const failingAt = at(0.35, 0.5);
  const restartAt = opts.restartEngine ? at(0.55, 0.7) : -1;
  try {
    await agent.waitFor(/msg="agent started"/);
    let next = 0;
    while (next < versions.length) {
      // One version at a time, or a few together (taken in version order, not name order).
      const batch = rand() < 0.2 ? 2 + Math.floor(rand() * 3) : 1;
      const from = next;
      next = Math.min(versions.length, next + batch);
      const mark = agent.mark;
      const hits = (i: number) => from <= i && i < next;
      if (hits(inactiveAt)) {
        proxy.sayInactiveFor(6_000);
        faults.push(`engine says "swarm inactive" for 6 s from ${versions[from]}`);
      }
      if (hits(failingAt)) {
        proxy.failFor(6_000, /^(\/v[\d.]+)?\/(tasks|services)/, 'This node is not a swarm manager. Manager is being prepared or has trouble connecting to the cluster.');
        faults.push(`engine answers 503 to /tasks and /services for 6 s from ${versions[from]}`);
      }
      let restarting: Promise<void> | undefined;
      if (hits(restartAt)) {
        faults.push(`dockerd stopped and started again as ${versions[from]} arrives`);
        restarting = (async () => {
          await bench.daemon.stop();
          await sleep(2_000 + rand() * 2_000);
          await bench.daemon.start();
        })();
      }
      for (let i = from; i < next; i++) {
        await drop(bundles[i]!, layout.inbox, `demo-${versions[i]}.airlock`);
        dropped.push(versions[i]!);
      }
      say(`dropped ${versions.slice(from, next).join(', ')}`);
      if (rand() < opts.killChance) {
        const point = pick(KILL_POINTS);
        if (point.pattern) await agent.waitFor(point.pattern, 20_000, mark).catch(() => undefined);
        else await sleep(rand() * 4_000);
        if (agent.child.exitCode === null && agent.child.signalCode === null) {
          agent.child.kill('SIGKILL');
          await agent.exited;
          kills.push({ at: point.name, version: versions[next - 1]! });
          say(`killed the agent at ${point.name}`);
          await sleep(rand() * 1_000);
          agent = new AgentProcess(layout.config, env);
        }
      } else {
        await sleep(500 + rand() * 2_500);
      }
      await restarting;
    }
    const streamed = Date.now();

    // Settled: nothing left in the inbox or waiting, the newest committed, no deployment running.
    const newest = versions.at(-1)!;
    const settledBy = Date.now() + opts.settleMs;
    let settled = false;
    while (Date.now() < settledBy) {
      if (agent.child.exitCode !== null || agent.child.signalCode !== null) break;
      const inbox = (await readdir(layout.inbox)).filter((n) => n.endsWith('.airlock'));
      const open = readJournal(layout.state, (j) => {
        const waiting = j.queue().filter((q) => q.state === 'waiting').length;
        const deployments = j.deployments();
        const running = deployments.filter((d) => d.status === 'running').length;
        const top = deployments.some((d) => d.bundle_version === newest && d.status === 'committed');
        return waiting + running + (top ? 0 : 1);
      });
      if (inbox.length === 0 && open === 0) {
        settled = true;
        break;
      }
      await sleep(500);
    }
    const end = await agent.stop();
    clearInterval(sampler);
    const problems: string[] = [];
    if (!settled) problems.push(`the agent did not settle within ${opts.settleMs / 1000} s (still running: ${end.signal === null}); its log ends:\n${agent.log.split('\n').slice(-30).join('\n')}`);
    if (end.code !== 0) problems.push(`the last agent ended with ${end.code ?? end.signal}`);
    const settleDone = Date.now();
    const verdict = await checkOutcome(bench, layout, opts, dropped);
    problems.push(...verdict.problems);
    return {
      seed: opts.seed,
      dropped,
      kills,
      faults,
      ...verdict.counts,
      rssKb,
      journalBytes: await journalBytesOf(layout.state),
      problems,
      ms: { build: built - t0, stream: streamed - built, settle: settleDone - streamed },
      layout,
    };
  } finally {
    clearInterval(sampler);
    await agent.stop('SIGKILL');
    await proxy.close();
  }
}

/** journal.db with its WAL, if one is left. */
async function journalBytesOf(state: string): Promise<number> {
  const size = (f: string) => stat(join(state, f)).then((s) => s.size, () => 0);
  return (await size('journal.db')) + (await size('journal.db-wal'));
}

interface Verdict {
  problems: string[];
  counts: { deployed: string[]; superseded: string[]; quarantined: string[]; failed: string[]; blobsOnDisk: number };
}

/** What must hold once the agent settled, checked against the journal, the inbox, the engine and the content store on disk. */
async function checkOutcome(bench: Bench, layout: AgentLayout, opts: SoakOptions, dropped: string[]): Promise<Verdict> {
  const problems: string[] = [];
  const { state } = layout;
  const bundles = readJournal(state, (j) => j.bundles().filter((b) => b.name === 'demo'));
  const queue = readJournal(state, (j) => j.queue());
  const committed = readJournal(state, (j) =>
    j.deployments().flatMap((d) => (d.kind === 'apply' && d.status === 'committed' && d.bundle_version ? [{ id: d.id, version: d.bundle_version }] : [])),
  );
  const deployedSet = new Set(committed.map((c) => c.version));
  const byId = new Map(queue.map((q) => [q.bundle_id, q]));
  const superseded: string[] = [];
  const failed: string[] = [];

  // Every version dropped was imported, once.
  const imported = bundles.map((b) => b.version);
  const missing = dropped.filter((v) => !imported.includes(v));
  if (missing.length > 0) problems.push(`dropped but never imported: ${missing.join(', ')}`);
  if (new Set(imported).size !== imported.length) problems.push(`a version imported twice: ${imported.join(', ')}`);

  // Every imported version is deployed, or superseded by a newer one that is.
  for (const b of bundles) {
    const q = byId.get(b.id);
    if (!q) {
      problems.push(`${b.version} imported but never queued`);
      continue;
    }
    if (q.state === 'failed') failed.push(b.version);
    if (q.state === 'superseded') superseded.push(b.version);
    if (deployedSet.has(b.version)) continue;
    if (q.state !== 'superseded') {
      problems.push(`${b.version} neither deployed nor superseded: queue state ${q.state}${q.reason ? ` (${q.reason})` : ''}`);
      continue;
    }
    const by = /^demo (\S+) /.exec(q.reason ?? '')?.[1];
    if (!by || !semver.valid(by) || !semver.gt(by, b.version)) problems.push(`${b.version} superseded, but its reason names no newer version: ${q.reason}`);
    if (![...deployedSet].some((v) => semver.gt(v, b.version))) problems.push(`${b.version} superseded, but no newer version was deployed`);
  }
  if (failed.length > 0) problems.push(`given up: ${failed.join(', ')}`);

  // The newest is what runs: its deployment is the last committed one, and the engine runs its specs.
  const newest = dropped.reduce((a, v) => (semver.gt(v, a) ? v : a));
  const last = committed.at(-1);
  if (last?.version !== newest) problems.push(`the last committed deployment is of ${last?.version ?? 'nothing'}, not the newest ${newest}`);
  else {
    const drift = specDrift(recordedSpecs(state, last.id), await engineSpecs(bench.docker, opts.stack));
    if (drift.length > 0) problems.push(`the engine does not run deployment #${last.id} (${newest}): ${drift.join('; ')}`);
    const web = (await bench.docker.services.list({ filters: { name: [`${opts.stack}_web`] } }))[0];
    const image = (web?.Spec.TaskTemplate?.ContainerSpec as { Image?: string } | undefined)?.Image ?? '';
    if (!image.startsWith(`${opts.stack}/web:${newest}`)) problems.push(`${opts.stack}_web runs ${image || 'nothing'}, not ${newest}`);
  }

  // Nothing good quarantined, nothing left in the inbox.
  const quarantined = (await readdir(join(layout.inbox, 'quarantine')).catch(() => [] as string[])).filter((n) => !n.endsWith('.reason'));
  for (const name of quarantined) {
    const reason = await readFile(join(layout.inbox, 'quarantine', `${name}.reason`), 'utf8').catch(() => 'no reason file');
    problems.push(`quarantined: ${name}: ${reason.trim()}`);
  }
  const left = (await readdir(layout.inbox)).filter((n) => n.endsWith('.airlock'));
  if (left.length > 0) problems.push(`left in the inbox: ${left.join(', ')}`);

  // The journal is intact, and no deployment is left running.
  const integrity = readJournal(state, (j) => j.integrity());
  if (integrity !== 'ok') problems.push(`journal integrity_check: ${String(integrity)}`);
  const running = readJournal(state, (j) => j.deployments().filter((d) => d.status === 'running'));
  if (running.length > 0) problems.push(`deployments left running: ${running.map((r) => `#${r.id} at ${r.step}`).join(', ')}`);

  // Retention: after a prune, the store holds exactly the blobs of the bundles kept (the last `keep` committed versions), every one of them.
  const pruned = await runCli(['prune', '--state', state, '--keep', String(opts.keep), '--json'], { DOCKER_HOST: bench.daemon.dockerHost });
  if (pruned.code !== 0) problems.push(`airlock prune exited ${pruned.code}: ${pruned.stderr}`);
  const keptVersions = [...new Set(committed.map((c) => c.version).reverse())].slice(0, opts.keep);
  const want = new Set<string>();
  readJournal(state, (j) => {
    const demo = j.bundles().filter((b) => b.name === 'demo');
    for (const v of keptVersions) {
      const row = demo.find((b) => b.version === v)!;
      for (const blob of (JSON.parse(row.manifest.toString('utf8')) as { blobs: { digest: string }[] }).blobs) want.add(blob.digest.slice('sha256:'.length));
    }
    const keptDeployments = new Set(j.deployments().filter((d) => d.status === 'committed' && d.bundle_version && keptVersions.includes(d.bundle_version)).map((d) => d.id));
    for (const o of j.objects()) if (o.data_digest !== null && keptDeployments.has(o.deployment_id)) want.add(o.data_digest.slice('sha256:'.length));
  });
  const onDisk = new Set(await readdir(join(state, 'blobs', 'sha256')));
  const absent = [...want].filter((d) => !onDisk.has(d));
  const extra = [...onDisk].filter((d) => !want.has(d));
  if (absent.length > 0) problems.push(`blobs of kept versions ${keptVersions.join(', ')} missing from the store: ${absent.length}`);
  if (extra.length > 0) problems.push(`blobs no kept version (${keptVersions.join(', ')}) references, still in the store after prune: ${extra.length}`);

  return { problems, counts: { deployed: [...deployedSet], superseded, quarantined, failed, blobsOnDisk: onDisk.size } };
}

/** The figures, one line each, for t.diagnostic and the bench. */
export function soakFigures(r: SoakResult): string[] {
  const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;
  const sorted = [...r.rssKb].sort((a, b) => a - b);
  const rss = sorted.length > 0 ? `agent RSS (VmRSS, ${sorted.length} samples every 0.5 s): min ${mb(sorted[0]!)}, median ${mb(sorted[Math.floor(sorted.length / 2)]!)}, max ${mb(sorted.at(-1)!)}; last agent at the end ${mb(r.rssKb.at(-1)!)}` : 'agent RSS: no sample';
  return [
    `seed ${r.seed} (replay: AIRLOCK_SOAK_SEED=${r.seed})`,
    `versions dropped ${r.dropped.length}, kills ${r.kills.length} (${r.kills.map((k) => `${k.at} @${k.version}`).join('; ')})`,
    `faults: ${r.faults.join('; ') || 'none'}`,
    `deployed ${r.deployed.length}, superseded ${r.superseded.length}, quarantined ${r.quarantined.length}, given up ${r.failed.length}`,
    rss,
    `journal.db (with any WAL left) ${(r.journalBytes / 1024).toFixed(0)} KiB; blobs in the store after prune ${r.blobsOnDisk}`,
    `time: build ${(r.ms.build / 1000).toFixed(1)} s, stream ${(r.ms.stream / 1000).toFixed(1)} s, settle ${(r.ms.settle / 1000).toFixed(1)} s`,
  ];
}
