/** Test projects on disk: keys, trust stores, bundle definitions and their images. */
import { spawn, type ChildProcessByStdio, type SpawnOptionsWithStdioTuple, type StdioNull, type StdioPipe } from 'node:child_process';
import type { Readable } from 'node:stream';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { generateKeyPair } from '../../src/trust/keys.js';
import { writeBusyboxLayer, writeImageArchive, writeLayer, writeMultiPlatformArchive, writeRandomLayer, type MultiPlatformOptions, type WrittenVariant } from './images.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = join(REPO, 'bin/airlock');
/** Node flags for every airlock a test starts (`scripts/run-tests.mjs --gc-stress` sets them). */
const NODE_FLAGS = (process.env.AIRLOCK_TEST_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);

/** The arguments that start the real CLI on the tests' runtime: `spawn(process.execPath, cliArgv([...]))`. */
export function cliArgv(args: string[]): string[] {
  return [...NODE_FLAGS, CLI, ...args];
}

/** Starts the real CLI in a child process, on the runtime the tests run on (the packaged one), its output piped. */
export function spawnCli(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): ChildProcessByStdio<null, Readable, Readable> {
  const opts: SpawnOptionsWithStdioTuple<StdioNull, StdioPipe, StdioPipe> = { ...options, stdio: ['ignore', 'pipe', 'pipe'] };
  return spawn(process.execPath, cliArgv(args), opts);
}

export async function tempDir(prefix = 'airlock-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface Signer {
  keyPath: string;
  pubPath: string;
  keyId: string;
  trustDir: string;
}

/** A key pair and a trust dir that trusts it. */
export async function makeSigner(dir: string, name = 'vendor'): Promise<Signer> {
  const pair = await generateKeyPair(join(dir, 'keys', name));
  const trustDir = join(dir, `trust-${name}`);
  await mkdir(trustDir, { recursive: true });
  await writeFile(join(trustDir, `${name}.pub`), await readFile(pair.publicPath));
  return { keyPath: pair.privatePath, pubPath: pair.publicPath, keyId: pair.keyId, trustDir };
}

export interface ProjectOptions {
  name?: string;
  version?: string;
  layout?: 'legacy' | 'oci';
  /** Text served by the app layer; changing it changes only that layer. */
  appText?: string;
  expires?: string | null;
  extraFiles?: { dest: string; data: Buffer }[];
  /** Repository prefix of the images (`demo/web`, `demo/base`); tests that share an engine pick their own. */
  repo?: string;
  /** Adds a layer of this many random bytes to the web image, to make loads take time. */
  bulkBytes?: number;
}

/**
 * A bundle project: bundle.yaml, a compose file, an env file, an extra
 * file, and a docker-save archive with a busybox base and an app layer.
 */
export async function makeProject(dir: string, opts: ProjectOptions = {}): Promise<string> {
  const version = opts.version ?? '1.0.0';
  const repo = opts.repo ?? 'demo';
  await mkdir(join(dir, 'images'), { recursive: true });
  const base = join(dir, 'images', 'base.tar');
  const baseId = await writeBusyboxLayer(base);
  const app = join(dir, 'images', 'app.tar');
  const appId = await writeLayer(app, [{ path: 'www/index.html', data: Buffer.from(opts.appText ?? `hello from ${version}\n`) }]);
  const webLayers = [{ path: base, diffId: baseId }, { path: app, diffId: appId }];
  if (opts.bulkBytes) {
    const bulk = join(dir, 'images', 'bulk.tar');
    webLayers.push({ path: bulk, diffId: await writeRandomLayer(bulk, opts.bulkBytes) });
  }
  await writeImageArchive(
    join(dir, 'images', 'demo.tar'),
    [
      { refs: [`${repo}/web:${version}`], layers: webLayers, cmd: ['httpd', '-f', '-h', '/www'] },
      { refs: [`${repo}/base:1`], layers: [{ path: base, diffId: baseId }] },
    ],
    opts.layout ?? 'oci',
  );
  const compose = {
    services: {
      web: { image: `${repo}/web:${version}`, env_file: ['web.env'], deploy: { replicas: 1 } },
      worker: { image: `${repo}/base:1`, command: ['sleep', '3600'] },
    },
  };
  await writeFile(join(dir, 'docker-compose.yml'), YAML.stringify(compose));
  await writeFile(join(dir, 'web.env'), `GREETING=hello\nVERSION=${version}\n`);
  const files = [{ src: 'app.conf', dest: 'conf/app.conf', mode: 0o640 }];
  await writeFile(join(dir, 'app.conf'), `listen=8080\n`);
  for (const [i, f] of (opts.extraFiles ?? []).entries()) {
    await writeFile(join(dir, `extra-${i}`), f.data);
    files.push({ src: `extra-${i}`, dest: f.dest, mode: 0o644 });
  }
  const definition = {
    name: opts.name ?? 'demo',
    version,
    description: 'test bundle',
    ...(opts.expires === undefined ? { expires: '30d' } : { expires: opts.expires }),
    stacks: [{ name: 'web', compose: 'docker-compose.yml', env_files: ['web.env'] }],
    image_archives: ['images/demo.tar'],
    files,
  };
  const file = join(dir, 'bundle.yaml');
  await writeFile(file, YAML.stringify(definition));
  return file;
}

export type TestArch = 'amd64' | 'arm64';

export interface MultiPlatformProjectOptions {
  version?: string;
  /** Repository prefix of the image (`REPO/app:VERSION`). */
  repo?: string;
  /** The variants the archive's index names (default amd64 and arm64). */
  architectures?: TestArch[];
  /** Variants the index names but whose blobs the archive leaves out. */
  absent?: TestArch[];
  layout?: MultiPlatformOptions['layout'];
  descriptorPlatforms?: boolean;
  /** The definition's `platforms:` list; default none (the build gives --platform). */
  platforms?: string[];
}

/**
 * A bundle project with one multi-platform image, `REPO/app:VERSION`, run
 * as stack `mp` service `app`: its amd64 variant is busybox and runs, its
 * arm64 variant is a layer of plain files (it need not run here).
 */
export async function makeMultiPlatformProject(dir: string, opts: MultiPlatformProjectOptions = {}): Promise<{ definition: string; ref: string; variants: WrittenVariant[] }> {
  const version = opts.version ?? '1.0.0';
  const ref = `${opts.repo ?? 'mp'}/app:${version}`;
  await mkdir(join(dir, 'images'), { recursive: true });
  const base = join(dir, 'images', 'busybox.tar');
  const baseId = await writeBusyboxLayer(base);
  const amdApp = join(dir, 'images', 'amd64-app.tar');
  const amdAppId = await writeLayer(amdApp, [{ path: 'app/release', data: Buffer.from(`${version} amd64\n`) }]);
  const armApp = join(dir, 'images', 'arm64-app.tar');
  const armAppId = await writeLayer(armApp, [
    { path: 'bin/app', data: Buffer.from('#!/bin/sh\n# stands in for an arm64 binary\n'), mode: 0o755 },
    { path: 'app/release', data: Buffer.from(`${version} arm64\n`) },
  ]);
  const layers: Record<TestArch, { path: string; diffId: string }[]> = {
    amd64: [{ path: base, diffId: baseId }, { path: amdApp, diffId: amdAppId }],
    arm64: [{ path: armApp, diffId: armAppId }],
  };
  const { variants } = await writeMultiPlatformArchive(
    join(dir, 'images', 'app.tar'),
    [
      {
        refs: [ref],
        variants: (opts.architectures ?? ['amd64', 'arm64']).map((arch) => ({
          platform: arch === 'arm64' ? { os: 'linux', architecture: 'arm64', variant: 'v8' } : { os: 'linux', architecture: 'amd64' },
          layers: layers[arch],
          cmd: ['sh'],
          absent: opts.absent?.includes(arch) ?? false,
        })),
      },
    ],
    { layout: opts.layout ?? 'buildx', ...(opts.descriptorPlatforms === undefined ? {} : { descriptorPlatforms: opts.descriptorPlatforms }) },
  );
  const compose = { services: { app: { image: ref, command: ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'] } } };
  await writeFile(join(dir, 'docker-compose.yml'), YAML.stringify(compose));
  const definition = join(dir, 'bundle.yaml');
  await writeFile(
    definition,
    YAML.stringify({
      name: 'mp',
      version,
      stacks: [{ name: 'mp', compose: 'docker-compose.yml' }],
      image_archives: ['images/app.tar'],
      ...(opts.platforms ? { platforms: opts.platforms } : {}),
    }),
  );
  return { definition, ref, variants };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI in a child process, as an operator would. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawnCli(args, { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', rej);
    child.on('close', (code) => res({ code: code ?? -1, stdout, stderr }));
  });
}
