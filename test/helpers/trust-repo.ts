/**
 * A vendor's trust repository and a host that trusts it, made with the real CLI: root keys,
 * a targets key, a timestamp key and release keys (alice, bob, carol sign stacks, 2 of 3; eve
 * signs engine bundles), the vendor commands that write the metadata, and a host trust dir with
 * the root installed and a state dir of its own.
 */
import { createPrivateKey, sign } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Metadata, MetadataKind, Signature } from '@tufjs/models';
import YAML from 'yaml';
import { generateKeyPair, type KeyPairFiles } from '../../src/trust/keys.js';
import { runCli, type CliResult } from './fixtures.js';

export const RELEASE = ['alice', 'bob', 'carol', 'eve'] as const;
export type KeyName = 'root1' | 'root2' | 'targets' | 'timestamp' | (typeof RELEASE)[number];

export interface TrustRepo {
  repo: string;
  keys: Record<KeyName, KeyPairFiles>;
  trustDir: string;
  stateDir: string;
  /** Environment that points the CLI at the host's trust dir and state dir. */
  env: NodeJS.ProcessEnv;
  /** Runs the CLI and fails the test with its output when the exit code is not `code`. */
  cli(args: string[], code?: number): Promise<CliResult>;
  /** Writes roles.yml (default: stacks 2 of alice, bob, carol; engine 1 of eve) and the next targets.json. */
  targets(roles?: RoleSpec[], extra?: string[]): Promise<CliResult>;
  /** The next snapshot (when targets changed) and timestamp, naming these bundles as current. */
  timestamp(bundles?: Record<string, string>, extra?: string[]): Promise<CliResult>;
  /** Paths of the repository's files, for `trust update`. */
  files(...names: string[]): string[];
  /** What a vendor ships with a release: targets, snapshot and timestamp, taken by the host with `trust update`. */
  publish(bundles: Record<string, string>, roles?: RoleSpec[]): Promise<void>;
}

export interface RoleSpec {
  name: string;
  paths: string[];
  threshold: number;
  keys: (typeof RELEASE)[number][];
}

export const DEFAULT_ROLES: RoleSpec[] = [
  { name: 'stacks', paths: ['stacks/*'], threshold: 2, keys: ['alice', 'bob', 'carol'] },
  { name: 'engine', paths: ['engine/*'], threshold: 1, keys: ['eve'] },
];

function expectCode(r: CliResult, code: number, args: string[]): CliResult {
  if (r.code !== code) throw new Error(`airlock ${args.join(' ')}: exit ${r.code}, expected ${code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

export async function makeTrustRepo(dir: string): Promise<TrustRepo> {
  const keysDir = join(dir, 'vendor-keys');
  await mkdir(keysDir, { recursive: true });
  const keys = {} as Record<KeyName, KeyPairFiles>;
  for (const name of ['root1', 'root2', 'targets', 'timestamp', ...RELEASE] as KeyName[]) keys[name] = await generateKeyPair(join(keysDir, name));
  const repo = join(dir, 'repo');
  const trustDir = join(dir, 'host-trust');
  const stateDir = join(dir, 'host-state');
  await mkdir(trustDir, { recursive: true });
  await mkdir(stateDir, { recursive: true });
  const env = { AIRLOCK_TRUST_DIR: trustDir, AIRLOCK_STATE_DIR: stateDir };
  const cli = async (args: string[], code = 0) => expectCode(await runCli(args, env), code, args);
  const t: TrustRepo = {
    repo,
    keys,
    trustDir,
    stateDir,
    env,
    cli,
    async targets(roles = DEFAULT_ROLES, extra = []) {
      const yml = join(dir, 'roles.yml');
      await writeFile(yml, YAML.stringify({ roles: roles.map((r) => ({ name: r.name, paths: r.paths, threshold: r.threshold, keys: Object.fromEntries(r.keys.map((k) => [k, keys[k].publicPath])) })) }));
      return cli(['trust', 'targets', '--repo', repo, '--roles', yml, '--key', keys.targets.privatePath, ...extra]);
    },
    async timestamp(bundles = {}, extra = []) {
      return cli(['trust', 'timestamp', '--repo', repo, '--key', keys.timestamp.privatePath, ...Object.entries(bundles).flatMap(([n, v]) => ['--bundle', `${n}=${v}`]), ...extra]);
    },
    files: (...names) => names.map((n) => join(repo, n)),
    async publish(bundles, roles) {
      await t.targets(roles);
      await t.timestamp(bundles);
      await cli(['trust', 'update', ...t.files('targets.json', 'snapshot.json', 'timestamp.json')]);
    },
  };
  // Root v1: root1 alone (threshold 1), the targets and timestamp keys.
  await cli(['trust', 'root', '--repo', repo, '--root-key', keys.root1.publicPath, '--targets-key', keys.targets.publicPath, '--timestamp-key', keys.timestamp.publicPath, '--sign', keys.root1.privatePath]);
  await cli(['trust', 'install', join(repo, '1.root.json')]);
  return t;
}

/**
 * Rewrites a metadata file of the repository as an attacker or a careless signer might, and
 * signs it again with `key` (so it is validly signed): for what the vendor tools never write,
 * such as a timestamp issued in the future.
 */
export async function resign(path: string, key: KeyPairFiles, keyId: string, change: (signed: Record<string, unknown>) => void, out = path): Promise<void> {
  const json = JSON.parse(await readFile(path, 'utf8')) as { signed: Record<string, unknown> };
  change(json.signed);
  const kind = json.signed._type as MetadataKind;
  const md = (Metadata.fromJSON as (k: MetadataKind, d: object) => Metadata<never>)(kind, json);
  const pem = createPrivateKey(await readFile(key.privatePath, 'utf8'));
  md.sign((data) => new Signature({ keyID: keyId, sig: sign(null, data, pem).toString('hex') }), false);
  await writeFile(out, JSON.stringify(md.toJSON(), null, 2));
}

/** The TUF key id the root gives a role's first key (what `resign` signs as). */
export async function roleKeyId(repo: string, role: string): Promise<string> {
  const root = JSON.parse(await readFile(join(repo, 'root.json'), 'utf8')) as { signed: { roles: Record<string, { keyids: string[] }> } };
  return root.signed.roles[role]!.keyids[0]!;
}
