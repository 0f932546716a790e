/**
 * For the engine install tests: engine bundles built from the fixtures of
 * scripts/engine-bundles, and the real CLI run inside bare lab hosts (their
 * own root, no engine until airlock installs one).
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import YAML from 'yaml';
import { CLI, runCli, type Signer } from './fixtures.js';
import type { BareLabHost, ExecResult, Lab } from './lab.js';

/** An `airlock` command that runs the checkout's CLI on the tests' runtime: the hosts' roots have no node of their own. */
export async function airlockCommand(dir: string): Promise<string> {
  const path = join(dir, 'airlock');
  await writeFile(path, `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`);
  await chmod(path, 0o755);
  return path;
}

export interface EngineBundleInput {
  name?: string;
  version: string;
  engine: { version: string; static?: string; packages?: string | string[] };
}

/** Builds and signs an engine bundle (uncompressed: the tests pay for hashing only); returns its path. */
export async function buildEngineBundle(dir: string, signer: Signer, input: EngineBundleInput): Promise<string> {
  const name = input.name ?? 'docker-engine';
  const folder = join(dir, `${name}-${input.version}`);
  await mkdir(folder, { recursive: true });
  const def = join(folder, 'bundle.yaml');
  await writeFile(def, YAML.stringify({ name, version: input.version, engine: input.engine }));
  const r = await runCli(['bundle', 'build', '-f', def, '--key', signer.keyPath, '-o', folder, '--compress', 'none', '--json']);
  if (r.code !== 0) throw new Error(`bundle build of ${name} ${input.version} failed (exit ${r.code}): ${r.stderr}`);
  return join(folder, `${name}-${input.version}.airlock`);
}

/** The host config an engine in a lab host needs: no bridge, no iptables, its own cgroup parent (lab.json's engineDaemon). */
export async function writeHostEngineConfig(h: BareLabHost, extra: Record<string, unknown> = {}): Promise<void> {
  await writeFile(join(h.etcDir, 'agent.yaml'), YAML.stringify({ ...extra, engine: { daemon: h.engineDaemon } }));
}

export interface HostCli {
  code: number;
  stdout: string;
  stderr: string;
  /** The last line of stdout as JSON (with --json), or the error object airlock printed. */
  json: Record<string, unknown> | undefined;
}

/** Runs the CLI inside the host (its namespaces and root), as root unless `user` says otherwise. */
export async function airlockIn(lab: Lab<BareLabHost>, host: string, airlock: string, args: string[], opts: { env?: Record<string, string>; user?: number } = {}): Promise<HostCli> {
  const env = Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const asUser = opts.user === undefined ? [] : ['setpriv', `--reuid=${opts.user}`, `--regid=${opts.user}`, '--clear-groups'];
  const r: ExecResult = await lab.exec(host, ['env', ...env, ...asUser, airlock, ...args], { allowFail: true, timeoutMs: 240_000 });
  return { ...r, json: lastJson(r.stdout) ?? lastJson(r.stderr) };
}

function lastJson(text: string): Record<string, unknown> | undefined {
  const line = text.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Reads the host's journal from the jump box. */
export function journalRows<T>(h: BareLabHost, sql: string, ...params: unknown[]): T[] {
  const db = new Database(join(h.stateDir, 'journal.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}
