/**
 * Shared by the apply, crash and journal tests: a private single-node swarm,
 * test releases built as real signed bundles, the CLI run against a state
 * dir, and checks that the engine runs what the journal says it runs.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import type { SwarmEngine } from '../../src/docker/engine.js';
import type { Docker, ServiceSpec } from '../../src/docker/index.js';
import { diffSpecs } from '../../src/stack/spec-diff.js';
import { PrivateDaemon } from './dockerd.js';
import { readJournal, type JournalReader } from './journal-read.js';
import { makeProject, makeSigner, runCli, spawnCli, tempDir, type CliResult, type Signer } from './fixtures.js';

/** A command that runs until stopped and stops at once on SIGTERM. */
export const IDLE = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'];

export interface Bench {
  dir: string;
  daemon: PrivateDaemon;
  docker: Docker;
  signer: Signer;
  close(): Promise<void>;
}

/** A private dockerd (in its own network namespace) made a single-node swarm, and a signing key. */
export async function startBench(prefix: string, opts: { swarm?: boolean } = {}): Promise<Bench> {
  const work = await tempDir(prefix);
  const daemon = new PrivateDaemon(join(work.dir, 'engine'));
  await daemon.start();
  const docker = daemon.client();
  if (opts.swarm ?? true) await docker.swarm.init({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: '127.0.0.1' });
  const signer = await makeSigner(work.dir);
  return {
    dir: work.dir,
    daemon,
    docker,
    signer,
    async close() {
      await docker.close();
      await daemon.destroy();
      await work.cleanup();
    },
  };
}

export interface ReleaseOptions {
  version: string;
  /** The stack the bundle deploys (default `web`). */
  stack?: string;
  /** Image repository prefix; tests that share an engine pick their own. */
  repo?: string;
  /** Random bytes in an extra layer of the web image, to make the load take time. */
  bulkBytes?: number;
  /** Changes the compose document before the bundle is built. */
  compose?: (doc: ComposeDoc) => void;
  /** Extra files for the bundle, by their path in the bundle. */
  files?: Record<string, string>;
  /** Build a delta against this earlier bundle (or its index or manifest). */
  since?: string;
  /** Site recipient files to seal the stack's secrets (and files marked sensitive) to: `--seal-to`. */
  sealTo?: string[];
  /** Changes the bundle definition (bundle.yaml) before the build. */
  definition?: (def: Record<string, unknown>) => void;
}

export type ComposeDoc = { services: Record<string, Record<string, unknown>>; configs?: Record<string, unknown>; [k: string]: unknown };

/** Builds and signs a release of the test app; returns the bundle's path. */
export async function buildRelease(bench: Bench, opts: ReleaseOptions): Promise<string> {
  const stack = opts.stack ?? 'web';
  const project = join(bench.dir, `p-${stack}-${opts.version}`);
  await mkdir(project, { recursive: true });
  const def = await makeProject(project, {
    version: opts.version,
    repo: opts.repo ?? 'applytest',
    appText: `release ${opts.version}\n`,
    extraFiles: Object.entries(opts.files ?? {}).map(([dest, text]) => ({ dest, data: Buffer.from(text) })),
    ...(opts.bulkBytes ? { bulkBytes: opts.bulkBytes } : {}),
  });
  const compose = YAML.parse(await readFile(join(project, 'docker-compose.yml'), 'utf8')) as ComposeDoc;
  compose.services.web!.command = IDLE;
  compose.services.worker!.command = IDLE;
  opts.compose?.(compose);
  await writeFile(join(project, 'docker-compose.yml'), YAML.stringify(compose));
  if (stack !== 'web' || opts.definition) {
    const definition = YAML.parse(await readFile(def, 'utf8')) as { stacks: { name: string }[] };
    definition.stacks[0]!.name = stack;
    opts.definition?.(definition);
    await writeFile(def, YAML.stringify(definition));
  }
  const out = join(bench.dir, 'out', stack);
  const r = await runCli(['bundle', 'build', '-f', def, '--key', bench.signer.keyPath, '-o', out, '--json', ...(opts.since ? ['--since', opts.since] : []), ...(opts.sealTo ?? []).flatMap((f) => ['--seal-to', f])]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { path: string }).path;
}

export interface RunResult extends CliResult {
  /** The signal that ended the process, if one did (a crash point's SIGKILL). */
  signal: NodeJS.Signals | null;
}

/** Runs the real CLI in a child process and reports a death by signal too. */
export function runAirlock(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return finished(spawnCli(args, { env: { ...process.env, ...env } })).then((r) => ({
    ...r,
    code: r.code ?? -1,
  }));
}

/** The CLI against one state dir and the bench's engine. */
export function cliFor(bench: Bench, state: string) {
  // The bench's trust store also for rollback and recover, which read its revocation list.
  const env = (extra: NodeJS.ProcessEnv = {}) => ({ DOCKER_HOST: bench.daemon.dockerHost, AIRLOCK_TRUST_DIR: bench.signer.trustDir, ...extra });
  const cli = (args: string[], extra?: NodeJS.ProcessEnv): Promise<RunResult> => runAirlock([...args, '--state', state], env(extra));
  return {
    state,
    cli,
    apply: (file: string, extra: string[] = [], envExtra?: NodeJS.ProcessEnv) =>
      cli(['bundle', 'apply', file, '--trust', bench.signer.trustDir, '--timeout', '60s', '--json', ...extra], envExtra),
    /** An apply as a child process, for tests that act while it runs; stderr carries `deployment #N: step` lines. */
    spawnApply(file: string, extra: string[] = [], envExtra: NodeJS.ProcessEnv = {}): ChildProcess {
      return spawnCli(['bundle', 'apply', file, '--trust', bench.signer.trustDir, '--state', state, '--timeout', '60s', ...extra], {
        env: { ...process.env, ...env(envExtra) }
      });
    },
    journal: <T>(fn: (j: JournalReader) => T): T => readJournal(state, fn),
  };
}

export interface DeploymentSummary {
  id: number;
  status: string;
  step: string;
  reason: string | null;
  recoveries: number;
  kind: string;
}

export function deployments(state: string): DeploymentSummary[] {
  return readJournal(state, (j) => j.deployments().map(({ id, status, step, reason, recoveries, kind }) => ({ id, status, step, reason, recoveries, kind })));
}

/** The specs a deployment applied (spec_after), by service name; services it removes are left out. */
export function recordedSpecs(state: string, id: number): Map<string, ServiceSpec> {
  const rows = readJournal(state, (j) => j.services(id));
  return new Map(rows.flatMap((r) => (r.spec_after === null ? [] : [[r.name, JSON.parse(r.spec_after) as ServiceSpec] as const])));
}

/** The specs the engine (a real one or the fake) runs for a stack, by service name. */
export async function engineSpecs(docker: SwarmEngine, stack: string): Promise<Map<string, ServiceSpec>> {
  const services = await docker.services.list({ filters: { label: [`com.docker.stack.namespace=${stack}`] } });
  return new Map(services.map((s) => [s.Spec.Name!, s.Spec]));
}

const noForce = (s: ServiceSpec): ServiceSpec => ({ ...s, TaskTemplate: { ...s.TaskTemplate, ForceUpdate: 0 } });

/** Field-level differences between two sets of service specs, ForceUpdate aside; empty when they are the same. */
export function specDrift(want: Map<string, ServiceSpec>, have: Map<string, ServiceSpec>): string[] {
  const drift: string[] = [];
  for (const name of new Set([...want.keys(), ...have.keys()])) {
    const a = want.get(name);
    const b = have.get(name);
    if (!a) drift.push(`${name}: not expected`);
    else if (!b) drift.push(`${name}: missing`);
    else for (const d of diffSpecs(noForce(a), noForce(b))) drift.push(`${name}: ${JSON.stringify(d)}`);
  }
  return drift;
}

/** Asserts the engine runs exactly the specs deployment `id` applied. */
export async function assertRuns(docker: Docker, state: string, stack: string, id: number): Promise<void> {
  assert.deepEqual(specDrift(recordedSpecs(state, id), await engineSpecs(docker, stack)), [], `stack ${stack} differs from deployment #${id}`);
}

/** Resolves once `pattern` shows in what the child wrote to stderr; rejects if it exits first or time runs out. */
export function waitForStderr(child: ChildProcess, pattern: RegExp, timeoutMs = 60_000): Promise<string> {
  return new Promise((res, rej) => {
    let text = '';
    const timer = setTimeout(() => done(new Error(`no ${pattern} on stderr within ${timeoutMs} ms:\n${text}`)), timeoutMs);
    const onData = (d: Buffer) => {
      text += d.toString();
      if (pattern.test(text)) done();
    };
    const onExit = (code: number | null, signal: string | null) => done(new Error(`exited (${code ?? signal}) before ${pattern}:\n${text}`));
    const done = (err?: Error) => {
      clearTimeout(timer);
      child.stderr!.off('data', onData);
      child.off('exit', onExit);
      if (err) rej(err);
      else res(text);
    };
    child.stderr!.on('data', onData);
    child.on('exit', onExit);
  });
}

/** Collects a child's output and resolves with how it ended. */
export function finished(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  return new Promise((res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr })));
}
