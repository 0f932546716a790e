import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { AirlockError, asAirlockError, usageError } from '../errors/index.js';
import type { Command } from './command.js';
import { endWhenOutputCloses } from './output.js';
import { printableText } from '../units/printable.js';

/**
 * Command modules by first word, loaded on demand: `bundle verify` should not
 * pay for the Engine client or the compose schema (start-up time and memory
 * count on every host).
 */
const key = async () => (await import('./commands/key.js')).keyCommands;
const bundle = async () => (await import('./commands/bundle.js')).bundleCommands;
const deploy = async () => (await import('./commands/deploy.js')).deployCommands;
const MODULES: Record<string, (() => Promise<Command[]>)[]> = {
  key: [key],
  bundle: [bundle],
  'bundle apply': [deploy],
  'bundle plan': [deploy],
  'bundle sign': [async () => (await import('./commands/bundle-sign.js')).bundleSignCommands],
  stack: [async () => (await import('./commands/stack.js')).stackCommands],
  rollback: [deploy],
  recover: [deploy],
  history: [deploy],
  status: [deploy],
  prune: [async () => (await import('./commands/prune.js')).pruneCommands],
  doctor: [async () => (await import('./commands/doctor.js')).doctorCommands],
  agent: [async () => (await import('./commands/agent.js')).agentCommands],
  cluster: [async () => (await import('./commands/cluster.js')).clusterCommands, async () => (await import('./commands/cluster-certs.js')).clusterCertsCommands],
  'cluster maintain': [async () => (await import('./commands/maintain.js')).maintainCommands],
  engine: [async () => (await import('./commands/engine.js')).engineCommands],
  node: [async () => (await import('./commands/node.js')).nodeCommands],
  trust: [async () => (await import('./commands/trust.js')).trustCommands, async () => (await import('./commands/trust-vendor.js')).trustVendorCommands],
};

let COMMANDS: Command[] = [];

/** Loads the commands argv names (by its first two words, else its first), or all of them. */
async function loadCommands(argv?: string[]): Promise<void> {
  const loaders = argv === undefined ? Object.values(MODULES).flat() : (MODULES[argv.slice(0, 2).join(' ')] ?? MODULES[argv[0] ?? ''] ?? []);
  const loaded = (await Promise.all(loaders.map((l) => l()))).flat();
  COMMANDS = [...new Set(loaded)];
}

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function overview(): string {
  const groups = new Map<string, Command[]>();
  for (const c of COMMANDS) groups.set(c.path[0]!, [...(groups.get(c.path[0]!) ?? []), c]);
  const lines = ['airlock: signed offline bundles for air-gapped Docker Swarm', '', 'Usage: airlock <command> [options]', ''];
  for (const cmds of groups.values()) {
    for (const c of cmds) lines.push(`  ${c.path.join(' ').padEnd(18)} ${c.summary}`);
  }
  lines.push('', "Run 'airlock <command> --help' for a command's options.", 'Exit codes: docs/exit-codes.md');
  return lines.join('\n');
}

function commandHelp(c: Command): string {
  const opts = Object.entries(c.options).map(([name, o]) => `  --${name}${o.type === 'string' ? ' VALUE' : ''}${o.short ? `, -${o.short}` : ''}`);
  return [`Usage: ${c.usage}`, '', c.summary, ...(c.details ? ['', c.details] : []), '', 'Options:', ...opts, '  --help, -h'].join('\n');
}

/** Finds the longest command path that prefixes argv. */
function findCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  const matches = COMMANDS.filter((c) => c.path.every((w, i) => argv[i] === w)).sort((a, b) => b.path.length - a.path.length);
  const command = matches[0];
  return command ? { command, rest: argv.slice(command.path.length) } : undefined;
}

export async function run(argv: string[], sink: (s: string) => void = (s) => void process.stdout.write(`${s}\n`)): Promise<number> {
  // Every line a command prints passes here: text from a bundle, compose file, FTP server or engine
  // reaches the terminal with its control characters escaped.
  const out = (s: string) => sink(printableText(s));
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    await loadCommands();
    out(overview());
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version' || argv[0] === 'version') {
    out(version());
    return 0;
  }
  await loadCommands(argv);
  const found = findCommand(argv);
  if (!found) {
    await loadCommands();
    const group = COMMANDS.filter((c) => c.path[0] === argv[0]);
    if (group.length > 0 && (argv.length === 1 || argv[1] === '--help' || argv[1] === '-h')) {
      out(group.map((c) => `  ${c.path.join(' ').padEnd(18)} ${c.summary}`).join('\n'));
      return argv.length === 1 ? 2 : 0;
    }
    throw usageError(`unknown command: ${argv.slice(0, 2).join(' ')}`, { hint: "run 'airlock --help' for the list" });
  }
  const { command, rest } = found;
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (e) {
    throw usageError((e as Error).message, { hint: `see 'airlock ${command.path.join(' ')} --help'` });
  }
  if (parsed.values.help) {
    out(commandHelp(command));
    return 0;
  }
  const n = parsed.positionals.length;
  if (n < command.args.min || n > command.args.max) {
    throw usageError(`wrong number of arguments`, { hint: `usage: ${command.usage}` });
  }
  const json = (parsed.values as Record<string, unknown>).json === true;
  // Signed bytes go to a file or pipe exactly as signed (their signature must still check); a terminal sees them escaped.
  const outSigned = (s: string) => (process.stdout.isTTY ? out(s) : sink(s));
  const code = await command.run({ positionals: parsed.positionals, values: parsed.values as Record<string, string | boolean | undefined>, json, out, outSigned });
  return code ?? 0;
}

function report(err: AirlockError, json: boolean): void {
  // Messages quote file names, bundle fields and engine answers: escaped like all output.
  if (json) {
    process.stdout.write(`${printableText(JSON.stringify(err.toJSON()))}\n`);
    return;
  }
  const lines = [`airlock: ${err.kind === 'internal' ? 'internal error' : 'error'}: ${err.message}`];
  if (err.hint) lines.push(`  hint: ${err.hint}`);
  if (err.kind === 'internal' && process.env.AIRLOCK_DEBUG && err.cause instanceof Error) lines.push(err.cause.stack ?? '');
  process.stderr.write(`${printableText(lines.join('\n'))}\n`);
}

export async function main(argv: string[]): Promise<void> {
  endWhenOutputCloses();
  try {
    process.exitCode = await run(argv);
  } catch (e) {
    const err = asAirlockError(e);
    report(err, argv.includes('--json'));
    process.exitCode = err.exitCode;
  }
}
