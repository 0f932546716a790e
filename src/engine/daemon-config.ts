/**
 * The engine's `/etc/docker/daemon.json`: defaults fit for an air-gapped swarm
 * (rotated json-file logs, no live-restore, which swarm refuses), the data
 * root, and the host config's own daemon keys (docs/engine-install.md).
 *
 * Once airlock installs the engine the file is airlock's: it is written whole
 * from the host config each time. A file airlock did not write (its bytes are
 * not the ones airlock last wrote, remembered beside it as a hash) is kept as
 * `daemon.json.airlock-saved-<time>` first, and the caller says so.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { configError } from '../errors/index.js';
import { writeWhole } from '../store/durable.js';
import type { EngineHostPaths } from './host-paths.js';

/** The host config's `engine:` section (agent.yaml). */
export interface EngineHostConfig {
  /** The engine's data root (`data-root`); the engine's default when unset. */
  dataRoot?: string;
  /** More daemon.json keys, the operator's (`bip`, `default-address-pools`, …). */
  daemon?: Record<string, unknown>;
}

export type DaemonConfig = Record<string, unknown>;

const DEFAULTS: DaemonConfig = {
  'log-driver': 'json-file',
  'log-opts': { 'max-size': '10m', 'max-file': '3' },
};

/** The daemon.json airlock writes for this host config. */
export function daemonConfig(cfg: EngineHostConfig = {}): DaemonConfig {
  const own = cfg.daemon ?? {};
  if (own['live-restore'] === true) {
    throw configError('the host config sets engine.daemon.live-restore: true, which a swarm node refuses (dockerd will not start in swarm mode with it)', {
      reason: 'engine-live-restore',
      subject: 'engine.daemon.live-restore',
      hint: 'remove live-restore from the engine.daemon keys: airlock sets it false',
    });
  }
  if (own.hosts !== undefined) {
    throw configError("the host config sets engine.daemon.hosts, which dockerd refuses beside the units' own -H (the engine would not start)", {
      reason: 'bad-definition',
      subject: 'engine.daemon.hosts',
      hint: 'remove hosts: the engine listens on /var/run/docker.sock, which airlock and its agent use',
    });
  }
  const dataRoot = own['data-root'];
  if (dataRoot !== undefined && cfg.dataRoot !== undefined && dataRoot !== cfg.dataRoot) {
    throw configError(`the host config sets the data root twice: engine.dataRoot ${cfg.dataRoot} and engine.daemon.data-root ${String(dataRoot)}`, {
      reason: 'bad-definition',
      subject: 'engine.daemon.data-root',
      hint: 'keep engine.dataRoot only',
    });
  }
  return { ...DEFAULTS, ...own, 'live-restore': false, ...(cfg.dataRoot === undefined ? {} : { 'data-root': cfg.dataRoot }) };
}

/** JSON with its object keys sorted at every level, two spaces, one newline: the same config is the same bytes. */
export function canonicalDaemonJson(cfg: DaemonConfig): string {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return JSON.stringify(sorted(cfg), null, 2) + '\n';
}

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
/** Beside daemon.json: the hash of the bytes airlock wrote last, which tells airlock's file from another's. */
const writtenMark = (paths: EngineHostPaths) => `${paths.daemonJson}.airlock`;

async function readOrUndefined(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export interface DaemonConfigWriteOptions {
  /** Told where a daemon.json that airlock did not write was kept (the caller says so to the operator). */
  onSavedAside?: (path: string) => void;
}

/**
 * Writes daemon.json when its bytes differ (atomically); true when it wrote.
 * A file someone else wrote is kept aside first, and `onSavedAside` is told where.
 */
export async function writeDaemonConfig(paths: EngineHostPaths, cfg: DaemonConfig, opts: DaemonConfigWriteOptions = {}): Promise<boolean> {
  const text = canonicalDaemonJson(cfg);
  const existing = await readOrUndefined(paths.daemonJson);
  if (existing?.equals(Buffer.from(text))) return false;
  await mkdir(dirname(paths.daemonJson), { recursive: true, mode: 0o755 });
  if (existing) {
    const mark = (await readOrUndefined(writtenMark(paths)))?.toString('utf8').trim();
    if (mark !== sha256(existing)) {
      const savedAs = `${paths.daemonJson}.airlock-saved-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      await rename(paths.daemonJson, savedAs);
      opts.onSavedAside?.(savedAs);
    }
  }
  // The mark first: a crash between the two leaves a file airlock takes for another's, and keeps (never loses).
  await writeWhole(writtenMark(paths), sha256(text) + '\n');
  await writeWhole(paths.daemonJson, text);
  return true;
}
