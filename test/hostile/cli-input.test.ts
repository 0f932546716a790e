/**
 * Bad input on the command line, in the files it names and in the folders it
 * reads, given to the real CLI (the built dist, on the packaged runtime): each
 * is a usage (2) or config (3) error that names the option or the file, never
 * "internal error" (1), and leaves nothing behind. Rows that need a user who
 * may not read a file run the CLI as `nobody` (as root) or take the file's
 * read bit away (as anyone else).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import YAML from 'yaml';
import { Journal } from '../../src/journal/journal.js';
import { cliArgv, makeSigner, runCli, tempDir, type Signer } from '../helpers/fixtures.js';

interface Ctx {
  dir: string;
  signer: Signer;
  /** A small signed bundle (no images), for commands that need one to get as far as the bad input. */
  bundle: string;
  /** A good definition of that bundle. */
  definition: string;
  /** A regular file, where a folder belongs. */
  file: string;
  /** A state dir whose journal only root may read. */
  closedState: string;
}

interface Row {
  name: string;
  /** Writes what the row needs under `at` (a folder of its own) and returns the CLI's arguments. */
  args: (c: Ctx, at: string) => Promise<string[]> | string[];
  code: 2 | 3;
  /** What the message must say: the option or file, and the fault. */
  message: (c: Ctx, at: string) => RegExp;
  /** Run by a user who is not the owner of the test's files. */
  asOtherUser?: boolean;
  /** The row's output folder must stay without a bundle. */
  noOutput?: boolean;
}

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Aliases of aliases: 9^8 strings from a file of a few hundred bytes ("billion laughs"). */
const ALIAS_BOMB = ['a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]', ...'bcdefgh'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefg'[i]}`).join(', ')}]`)].join('\n');

async function definitionWith(at: string, extra: string): Promise<string> {
  const file = join(at, 'bundle.yaml');
  await writeFile(file, `name: x\nversion: 1.0.0\n${extra}\n`);
  return file;
}

const build = (c: Ctx, at: string, definition: string, key = c.signer.keyPath): string[] => ['bundle', 'build', '-f', definition, '--key', key, '-o', join(at, 'out')];

function expiresRow(value: string, message: RegExp): Row {
  return {
    name: `expires: ${value} in bundle.yaml`,
    args: async (c, at) => build(c, at, await definitionWith(at, `expires: "${value}"`)),
    code: 3,
    message: (_, at) => new RegExp(`${esc(join(at, 'bundle.yaml'))}(:\\d+)?: expires: "?${esc(value)}"?.*${message.source}`),
    noOutput: true,
  };
}

async function openKey(c: Ctx, at: string, mode: number): Promise<string> {
  const key = join(at, 'open.key');
  await cp(c.signer.keyPath, key);
  await chmod(key, mode);
  return key;
}

async function inventory(at: string, text: string): Promise<string> {
  const file = join(at, 'hosts.yml');
  await writeFile(file, text);
  return file;
}

const ROWS: Row[] = [
  // Durations.
  { name: 'bundle apply --timeout banana', args: (c) => ['bundle', 'apply', c.bundle, '--timeout', 'banana'], code: 2, message: () => /--timeout banana: not a duration/ },
  { name: 'bundle apply --timeout 99999999h', args: (c) => ['bundle', 'apply', c.bundle, '--timeout', '99999999h'], code: 2, message: () => /--timeout 99999999h: longer than 24h/ },
  { name: 'bundle apply --wait banana', args: (c) => ['bundle', 'apply', c.bundle, '--wait', 'banana'], code: 2, message: () => /--wait banana: not a duration/ },
  { name: 'rollback --timeout banana', args: () => ['rollback', 'demo', '--timeout', 'banana'], code: 2, message: () => /--timeout banana: not a duration/ },
  { name: 'rollback --wait 99999999h', args: () => ['rollback', 'demo', '--wait', '99999999h'], code: 2, message: () => /--wait 99999999h: longer than 24h/ },
  { name: 'recover --timeout 99999999h', args: () => ['recover', '--timeout', '99999999h'], code: 2, message: () => /--timeout 99999999h: longer than 24h/ },
  { name: 'recover --wait banana', args: () => ['recover', '--wait', 'banana'], code: 2, message: () => /--wait banana: not a duration/ },
  { name: 'prune --wait banana', args: () => ['prune', '--wait', 'banana'], code: 2, message: () => /--wait banana: not a duration/ },
  { name: 'node drain --timeout banana', args: () => ['node', 'drain', 'h2', '--timeout', 'banana'], code: 2, message: () => /--timeout banana: not a duration/ },
  { name: 'node activate --wait 99999999h', args: () => ['node', 'activate', 'h2', '--wait', '99999999h'], code: 2, message: () => /--wait 99999999h: longer than 24h/ },
  { name: 'stack deploy --timeout banana', args: (c) => ['stack', 'deploy', 'demo', '-c', c.file, '--timeout', 'banana'], code: 2, message: () => /--timeout banana: not a duration/ },
  { name: 'bundle apply --inventory --timeout 99999999h', args: async (c, at) => ['bundle', 'apply', c.bundle, '--inventory', await inventory(at, 'hosts: {}\n'), '--timeout', '99999999h'], code: 2, message: () => /--timeout 99999999h: longer than 24h/ },

  // --state and --trust naming a file.
  { name: 'status --state FILE', args: (c) => ['status', '--state', c.file], code: 3, message: (c) => new RegExp(`state dir ${esc(c.file)} is a file, not a folder`) },
  { name: 'history --state FILE', args: (c) => ['history', '--state', c.file], code: 3, message: (c) => new RegExp(`state dir ${esc(c.file)} is a file, not a folder`) },
  { name: 'bundle import --state FILE', args: (c) => ['bundle', 'import', c.bundle, '--trust', c.signer.trustDir, '--state', c.file], code: 3, message: (c) => new RegExp(`cannot create state dir ${esc(c.file)}: ${esc(c.file)} is a file, not a folder`) },
  { name: 'bundle verify --trust FILE', args: (c) => ['bundle', 'verify', c.bundle, '--trust', c.file], code: 3, message: (c) => new RegExp(`trust store ${esc(c.file)} is a file, not a folder`) },
  { name: 'bundle import --trust FILE', args: (c, at) => ['bundle', 'import', c.bundle, '--trust', c.file, '--state', join(at, 'state')], code: 3, message: (c) => new RegExp(`trust store ${esc(c.file)} is a file, not a folder`) },

  // The trust store's entries.
  {
    name: 'a folder named x.pub in the trust dir',
    args: async (c, at) => {
      await cp(c.signer.trustDir, join(at, 'trust'), { recursive: true });
      await mkdir(join(at, 'trust', 'x.pub'));
      return ['bundle', 'verify', c.bundle, '--trust', join(at, 'trust')];
    },
    code: 3,
    message: (_, at) => new RegExp(`trusted key ${esc(join(at, 'trust', 'x.pub'))} is a folder, not a file`),
  },
  {
    name: 'a folder named revoked in the trust dir',
    args: async (c, at) => {
      await cp(c.signer.trustDir, join(at, 'trust'), { recursive: true });
      await mkdir(join(at, 'trust', 'revoked'));
      return ['bundle', 'import', c.bundle, '--trust', join(at, 'trust'), '--state', join(at, 'state')];
    },
    code: 3,
    message: (_, at) => new RegExp(`revocation list ${esc(join(at, 'trust', 'revoked'))} is a folder, not a file`),
  },
  {
    name: 'an unreadable .pub in the trust dir',
    args: async (c, at) => {
      await cp(c.signer.trustDir, join(at, 'trust'), { recursive: true });
      const pub = (await readdir(join(at, 'trust'))).find((n) => n.endsWith('.pub'))!;
      await chmod(join(at, 'trust', pub), asRoot ? 0o600 : 0o000);
      return ['bundle', 'verify', c.bundle, '--trust', join(at, 'trust')];
    },
    code: 3,
    message: (_, at) => new RegExp(`cannot read trusted key ${esc(join(at, 'trust'))}/vendor\\.pub: permission denied`),
    asOtherUser: true,
  },

  // A folder where a file belongs.
  { name: 'bundle build --key FOLDER', args: (c, at) => build(c, at, c.definition, join(c.dir, 'keys')), code: 3, message: (c) => new RegExp(`signing key ${esc(join(c.dir, 'keys'))} is a folder, not a file`), noOutput: true },
  { name: 'bundle split --key FOLDER', args: (c, at) => ['bundle', 'split', c.bundle, '--size', '1M', '--key', join(c.dir, 'keys'), '--out', join(at, 'out')], code: 3, message: (c) => new RegExp(`signing key ${esc(join(c.dir, 'keys'))} is a folder, not a file`), noOutput: true },
  { name: 'key id FOLDER', args: (c) => ['key', 'id', join(c.dir, 'keys')], code: 3, message: (c) => new RegExp(`key file ${esc(join(c.dir, 'keys'))} is a folder, not a file`) },
  {
    name: 'bundle build --receipt-key FOLDER',
    args: (c, at) => [...build(c, at, c.definition), '--since-receipt', c.file, '--receipt-key', join(c.dir, 'keys')],
    code: 3,
    message: (c) => new RegExp(`site key \\(--receipt-key\\) ${esc(join(c.dir, 'keys'))} is a folder, not a file`),
    noOutput: true,
  },
  { name: 'bundle build -f FOLDER', args: (c, at) => build(c, at, c.dir), code: 3, message: (c) => new RegExp(`bundle definition ${esc(c.dir)} is a folder, not a file`), noOutput: true },

  // YAML alias bombs.
  { name: 'an alias bomb in bundle.yaml', args: async (c, at) => build(c, at, await definitionWith(at, ALIAS_BOMB)), code: 3, message: (_, at) => new RegExp(`${esc(join(at, 'bundle.yaml'))}: its aliases \\(\\*name\\) expand beyond`), noOutput: true },
  {
    name: 'an alias bomb in agent.yaml',
    args: async (_, at) => {
      await writeFile(join(at, 'agent.yaml'), `${ALIAS_BOMB}\n`);
      return ['agent', '--check-config', '--config', join(at, 'agent.yaml')];
    },
    code: 3,
    message: (_, at) => new RegExp(`${esc(join(at, 'agent.yaml'))}: its aliases \\(\\*name\\) expand beyond`),
  },
  { name: 'an alias bomb in hosts.yml (bundle apply --inventory)', args: async (c, at) => ['bundle', 'apply', c.bundle, '--inventory', await inventory(at, `${ALIAS_BOMB}\n`)], code: 3, message: (_, at) => new RegExp(`${esc(join(at, 'hosts.yml'))}: its aliases \\(\\*name\\) expand beyond`) },
  { name: 'an alias bomb in hosts.yml (cluster up)', args: async (_, at) => ['cluster', 'up', '--inventory', await inventory(at, `${ALIAS_BOMB}\n`)], code: 3, message: (_, at) => new RegExp(`${esc(join(at, 'hosts.yml'))}: its aliases \\(\\*name\\) expand beyond`) },

  // expires: of a definition.
  expiresRow('99999999999d', /more than 100 years; write never/),
  expiresRow('0h', /would make the bundle expire as it is built/),
  expiresRow('2020-01-01', /is not after the build time .*: every host would refuse the bundle as expired/),
  expiresRow('2027-02-30', /there is no day 30 in month 02 of 2027/),
  expiresRow('Jan 1 2030', /is neither a duration nor a date/),

  // Private keys open to others.
  { name: 'a signing key readable by others (bundle build)', args: async (c, at) => build(c, at, c.definition, await openKey(c, at, 0o644)), code: 3, message: (_, at) => new RegExp(`signing key ${esc(join(at, 'open.key'))} is open to others \\(mode 0644\\)`), noOutput: true },
  { name: 'a signing key readable by its group (bundle split)', args: async (c, at) => ['bundle', 'split', c.bundle, '--size', '1M', '--key', await openKey(c, at, 0o640), '--out', join(at, 'out')], code: 3, message: (_, at) => new RegExp(`signing key ${esc(join(at, 'open.key'))} is open to others \\(mode 0640\\)`), noOutput: true },
  {
    name: 'an SSH key readable by others (hosts.yml)',
    args: async (c, at) => {
      const key = await openKey(c, at, 0o604);
      return ['bundle', 'apply', c.bundle, '--inventory', await inventory(at, YAML.stringify({ hosts: { h1: { address: '127.0.0.1', user: 'root', key, roles: ['manager'] } } }))];
    },
    code: 3,
    message: (_, at) => new RegExp(`SSH key \\(key: in ${esc(join(at, 'hosts.yml'))}\\) ${esc(join(at, 'open.key'))} is open to others \\(mode 0604\\)`),
  },

  // A folder that cannot be made.
  { name: 'key generate --out /proc/nope/x', args: () => ['key', 'generate', '--out', '/proc/nope/x'], code: 3, message: () => /--out \/proc\/nope\/x: cannot create folder \/proc\/nope: \/proc does not let folders be made in it/ },
  { name: 'key generate --out under a file', args: (c) => ['key', 'generate', '--out', join(c.file, 'keys', 'x')], code: 3, message: (c) => new RegExp(`--out ${esc(join(c.file, 'keys', 'x'))}: cannot create folder .*: ${esc(c.file)} is a file, not a folder`) },

  // A journal this user may not read.
  { name: 'status by a user who cannot read the journal', args: (c) => ['status', '--state', c.closedState], code: 3, message: (c) => new RegExp(`cannot read the journal ${esc(join(c.closedState, 'journal.db'))}: permission denied`), asOtherUser: true },
  { name: 'history by a user who cannot read the journal', args: (c) => ['history', '--state', c.closedState], code: 3, message: (c) => new RegExp(`cannot read the journal ${esc(join(c.closedState, 'journal.db'))}: permission denied`), asOtherUser: true },
];

let ctx: Ctx;
let cleanup: () => Promise<void>;

before(async () => {
  const t = await tempDir('airlock-cli-input-');
  cleanup = t.cleanup;
  // `nobody` must reach the files it is meant to meet.
  await chmod(t.dir, 0o755);
  const signer = await makeSigner(t.dir);
  const definition = await definitionWith(t.dir, 'expires: never');
  const built = await runCli(['bundle', 'build', '-f', definition, '--key', signer.keyPath, '-o', join(t.dir, 'bundles')]);
  assert.equal(built.code, 0, built.stderr);
  const file = join(t.dir, 'a-file');
  await writeFile(file, 'not a folder\n');
  const closedState = join(t.dir, 'closed-state');
  Journal.open(closedState).close();
  await chmod(closedState, 0o755);
  await chmod(join(closedState, 'journal.db'), asRoot ? 0o600 : 0o000);
  ctx = { dir: t.dir, signer, bundle: join(t.dir, 'bundles', 'x-1.0.0.airlock'), definition, file, closedState };
});

after(() => cleanup());

/** The real CLI, as this user or as another; killed (and failed) if it runs past `limitMs`. */
function cli(args: string[], asOtherUser: boolean, limitMs = 30_000): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  // As the systemd tests do: util-linux's setpriv drops to `nobody` (Node's own uid option cannot exec the runtime there).
  const [command, argv] = asOtherUser && asRoot ? ['setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, ...cliArgv(args)]] : [process.execPath, cliArgv(args)];
  const child = spawn(command, argv, {
    stdio: ['ignore', 'ignore', 'pipe'],
    // A folder `nobody` may enter: the runner's own may be closed to it.
    cwd: ctx.dir,
    env: { ...process.env, AIRLOCK_STATE_DIR: join(ctx.dir, 'default-state'), AIRLOCK_TRUST_DIR: ctx.signer.trustDir },
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  return new Promise((res, rej) => {
    child.on('error', rej);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stderr, ms: Date.now() - started });
    });
  });
}

let n = 0;
for (const row of ROWS) {
  test(`refused by name: ${row.name}`, async () => {
    const at = join(ctx.dir, `row-${++n}`);
    await mkdir(at);
    await chmod(at, 0o755);
    const args = await row.args(ctx, at);
    const r = await cli(args, row.asOtherUser === true);
    assert.notEqual(r.code, null, `airlock ${args.join(' ')} did not end within 30 s`);
    assert.doesNotMatch(r.stderr, /internal error/, r.stderr);
    assert.equal(r.code, row.code, `airlock ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, row.message(ctx, at));
    if (row.noOutput) assert.deepEqual(await readdir(join(at, 'out')).catch(() => []), [], 'nothing was written');
  });
}
