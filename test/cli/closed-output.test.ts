/**
 * The reader of airlock's output goes away (`airlock history --json | head
 * -c 100`, a log pipe that closes): the real CLI ends quietly with 141, as a
 * Unix tool that SIGPIPE killed, never with a stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeploymentRecords } from '../../src/journal/deployments.js';
import { Journal } from '../../src/journal/journal.js';
import { AgentProcess, writeAgentConfig } from '../helpers/agent.js';
import { makeSigner, runCli, spawnCli, tempDir } from '../helpers/fixtures.js';

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** What the other stream carried. */
  other: string;
  /** Bytes the reader took before it went away. */
  read: number;
}

/**
 * Runs the CLI with one of its streams read by a reader that goes away after
 * `keepBytes` (0: before the CLI writes anything); the other stream is read
 * in full.
 */
function withClosingReader(args: string[], opts: { stream?: 'stdout' | 'stderr'; keepBytes?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Ended> {
  const child = spawnCli(args, { env: { ...process.env, ...opts.env } });
  const closing = opts.stream === 'stderr' ? child.stderr : child.stdout;
  const other = opts.stream === 'stderr' ? child.stdout : child.stderr;
  const keep = opts.keepBytes ?? 0;
  let read = 0;
  let text = '';
  other.on('data', (d) => (text += d));
  if (keep === 0) closing.destroy();
  else {
    closing.on('data', (d: Buffer) => {
      read += d.length;
      if (read >= keep) closing.destroy();
    });
  }
  return new Promise((res, rej) => {
    child.on('error', rej);
    child.on('close', (code, signal) => res({ code, signal, other: text, read }));
  });
}

/** A journal with `n` finished deployments, as years of applies leave it. */
async function journalWith(n: number): Promise<{ state: string; cleanup: () => Promise<void> }> {
  const { dir, cleanup } = await tempDir('airlock-closed-output-');
  const journal = Journal.open(dir);
  const deployments = new DeploymentRecords(journal);
  journal.db.transaction(() => {
    for (let i = 0; i < n; i++) {
      const id = deployments.start({ stack: `stack-${i % 7}`, bundleId: null, kind: 'apply', replaces: null, appliedBy: 'ops@jump', source: `/srv/ftp/inbound/vendor-releases/${'quarterly/'.repeat(12)}release-${i}.airlock` });
      deployments.finish(id, i % 5 === 0 ? 'rolled-back' : 'committed', i % 5 === 0 ? 'services did not converge within 2m: web_web 0/1' : undefined);
    }
  })();
  journal.close();
  return { state: dir, cleanup };
}

test('history --json and history into a reader that stops after a few bytes: exit 141, nothing on stderr', async (t) => {
  const { state, cleanup } = await journalWith(1000);
  t.after(cleanup);
  // Far more than a pipe holds (64 KiB), so the CLI is still writing when the reader goes.
  for (const args of [['history', '--json'], ['history']]) {
    const full = await runCli([...args, '--state', state]);
    assert.equal(full.code, 0, full.stderr);
    assert.ok(full.stdout.length > 3 * 64 * 1024, `${args.join(' ')} wrote ${full.stdout.length} bytes`);
  }
  for (const args of [['history', '--json'], ['history']]) {
    const r = await withClosingReader([...args, '--state', state], { keepBytes: 100 });
    assert.deepEqual({ code: r.code, signal: r.signal, stderr: r.other }, { code: 141, signal: null, stderr: '' }, args.join(' '));
    assert.ok(r.read >= 100);
  }
});

test('doctor and doctor --json into a reader that is gone before they write: exit 141, nothing on stderr', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const signer = await makeSigner(dir);
  for (const json of [[], ['--json']]) {
    const r = await withClosingReader(['doctor', '--trust', signer.trustDir, '--state', join(dir, 'state'), ...json]);
    assert.deepEqual({ code: r.code, signal: r.signal, stderr: r.other }, { code: 141, signal: null, stderr: '' }, `doctor ${json.join(' ')}`);
  }
});

test('an error said to a closed stderr, and --help to a closed stdout: exit 141, no stack trace', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  // No journal here: the error (exit 4 otherwise) goes to a stderr nobody reads.
  const err = await withClosingReader(['history', '--state', dir], { stream: 'stderr' });
  assert.deepEqual({ code: err.code, signal: err.signal, stdout: err.other }, { code: 141, signal: null, stdout: '' });
  const help = await withClosingReader(['--help']);
  assert.deepEqual({ code: help.code, signal: help.signal, stderr: help.other }, { code: 141, signal: null, stderr: '' });
});

test("the agent whose log reader goes away ends with 141 at its next line, and its next start takes over", async (t) => {
  const { dir, cleanup } = await tempDir('airlock-closed-log-');
  t.after(cleanup);
  const signer = await makeSigner(dir);
  const layout = await writeAgentConfig(join(dir, 'agent'), signer.trustDir);
  // No engine is needed for what this agent does: an inbox with a file that is not a bundle.
  const env = { DOCKER_HOST: `unix://${join(dir, 'no-engine.sock')}` };
  const agent = new AgentProcess(layout.config, env);
  t.after(() => agent.stop('SIGKILL'));
  await agent.waitFor(/msg="agent started"/);
  agent.child.stderr!.destroy();
  // Something to log about: the agent looks at the inbox every second.
  await writeFile(join(layout.inbox, 'junk.airlock'), 'not a bundle\n');
  const ended = await Promise.race([agent.exited, new Promise((res) => setTimeout(() => res('still running'), 30_000))]);
  assert.deepEqual(ended, { code: 141, signal: null });

  // Nothing was lost: a new agent with a reader picks the file up.
  const again = new AgentProcess(layout.config, env);
  t.after(() => again.stop('SIGKILL'));
  await again.waitFor(/junk\.airlock/);
  assert.deepEqual(await again.stop(), { code: 0, signal: null });
});
