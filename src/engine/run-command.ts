/** Runs a host tool (apt-get, systemctl, groupadd) and keeps what it said, for the messages of the errors that follow. */
import { spawn } from 'node:child_process';

export interface CommandResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Called with each chunk as it comes, for long runs (an install). */
  onOutput?: (text: string) => void;
}

/** Resolves with what the command said and how it ended; rejects only when it cannot start (ENOENT). */
export function runCommand(command: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      opts.onOutput?.(s);
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
      opts.onOutput?.(s);
    });
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

/** The last lines of what a command said, for a message. */
export function tailOf(r: CommandResult, lines = 8): string {
  return (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-lines).join('\n');
}
