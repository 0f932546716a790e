/**
 * The agent as a real process: `airlock agent --config FILE`, its logfmt
 * lines collected so a test can wait for an event.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import { cliArgv } from './fixtures.js';

export interface AgentLayout {
  dir: string;
  state: string;
  inbox: string;
  config: string;
}

/** Writes agent.yaml under `dir` with fast test schedules; `extra` is merged over it, key by key at the top. */
export async function writeAgentConfig(dir: string, trustDir: string, extra: Record<string, unknown> = {}): Promise<AgentLayout> {
  const state = join(dir, 'state');
  const inbox = join(dir, 'inbox');
  await mkdir(dir, { recursive: true });
  const base: Record<string, Record<string, unknown> | string> = {
    stateDir: state,
    trustDir,
    logLevel: 'debug',
    inbox: { dir: inbox, poll: '*/1 * * * * *', complete: { mode: 'stable', stableFor: '1s' } },
    apply: { mode: 'on-arrival', timeout: '60s' },
    retention: { schedule: null },
    drift: { schedule: null },
    // Off unless a test asks: its start-up look at /info would take a fault a test injects for the import.
    certificates: { schedule: null },
  };
  for (const [k, v] of Object.entries(extra)) {
    const b = base[k];
    base[k] = typeof b === 'object' && typeof v === 'object' && v !== null ? { ...b, ...(v as Record<string, unknown>) } : (v as Record<string, unknown>);
  }
  const config = join(dir, 'agent.yaml');
  await writeFile(config, YAML.stringify(base));
  return { dir, state, inbox, config };
}

/** Drops a bundle into the inbox the way an upload ends: written aside, then renamed in. */
export async function dropBundle(bundle: string, inbox: string, name: string): Promise<void> {
  await dropTogether([[bundle, name]], inbox);
}

/** Several bundles that land at once: each written aside, then all renamed in together. */
export async function dropTogether(bundles: readonly (readonly [bundle: string, name: string])[], inbox: string): Promise<void> {
  for (const [bundle, name] of bundles) await copyFile(bundle, join(inbox, `${name}.tmp-upload`));
  await Promise.all(bundles.map(([, name]) => rename(join(inbox, `${name}.tmp-upload`), join(inbox, name))));
}

export class AgentProcess {
  readonly child: ChildProcess;
  private text = '';
  private readonly waiters = new Set<() => void>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(config: string, env: NodeJS.ProcessEnv = {}, prefix: string[] = []) {
    const argv = [...prefix, process.execPath, ...cliArgv(['agent', '--config', config])];
    this.child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const onData = (d: Buffer) => {
      this.text += d.toString();
      for (const w of this.waiters) w();
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
    this.exited = new Promise((res) =>
      this.child.on('close', (code, signal) => {
        for (const w of this.waiters) w();
        res({ code, signal });
      }),
    );
  }

  get log(): string {
    return this.text;
  }

  /** Log lines matching `pattern`, in order. */
  lines(pattern: RegExp): string[] {
    return this.text.split('\n').filter((l) => pattern.test(l));
  }

  /** Resolves with the first line (after `from` lines) matching `pattern`; rejects on exit or timeout, showing the log. */
  waitFor(pattern: RegExp, timeoutMs = 60_000, from = 0): Promise<string> {
    return new Promise((res, rej) => {
      const check = () => {
        const hit = this.text.split('\n').slice(from).find((l) => pattern.test(l));
        if (hit !== undefined) return done(undefined, hit);
        if (this.child.exitCode !== null || this.child.signalCode !== null) done(new Error(`agent exited (${this.child.exitCode ?? this.child.signalCode}) before ${pattern}:\n${this.text}`));
      };
      const timer = setTimeout(() => done(new Error(`no ${pattern} in the agent log within ${timeoutMs} ms:\n${this.text}`)), timeoutMs);
      const done = (err?: Error, line?: string) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (err) rej(err);
        else res(line!);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** The number of log lines so far: pass to waitFor to look only at what comes after. */
  get mark(): number {
    return this.text.split('\n').length - 1;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}
