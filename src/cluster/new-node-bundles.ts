/**
 * A node that joins a swarm where stacks already run gets their bundles
 * before it is set active, so that no task lands there and fails with "No
 * such image".
 *
 * Which bundles: the manager's own journal, through its airlock (`history
 * --json`): each stack's newest committed deployment, a rollback followed to
 * the apply it restores, and the bundle file that apply was made from (the
 * path `bundle apply FILE` journals, e.g. the upload folder of `bundle apply
 * --inventory`). The content store holds blobs, not bundle files, and a
 * bundle is only ever imported as the vendor signed it: a stack whose file
 * is gone from the manager is named, and its new nodes stay paused.
 *
 * How: manager -> jump box over SFTP (into a private temporary folder, once
 * per run) -> each new node over the resumable, verified upload, where the
 * node's own `airlock bundle import` checks the signature and every blob
 * and loads the images into its engine.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { AirlockError } from '../errors/index.js';
import { forEachHost } from '../remote/for-each-host.js';
import type { InventoryHost } from '../remote/inventory.js';
import { openSftp } from '../remote/sftp-calls.js';
import { uploadFile } from '../remote/upload.js';
import { onHost, type HostConnection } from './connect.js';
import { DEFAULT_REMOTE_DIR, runAirlock } from './rollout.js';

/** A deployment as `airlock history --json` prints it (the fields used here). */
export interface HistoryRow {
  id: number;
  stack: string;
  kind: 'apply' | 'rollback';
  status: string;
  restores: number | null;
  source: string | null;
  bundle_name?: string | null;
  bundle_version?: string | null;
}

/** A stack deployed on the cluster, and the bundle file on the manager it runs from (or why there is none). */
export type DeployedBundle = { stack: string; bundle: string } & ({ file: string } | { missing: string });

/** Each stack's bundle as the journal's history says: newest committed deployment first, a rollback followed to what it restores. */
export function deployedBundles(history: readonly HistoryRow[]): DeployedBundle[] {
  const byId = new Map(history.map((d) => [d.id, d]));
  const current = new Map<string, HistoryRow>();
  for (const d of [...history].sort((a, b) => b.id - a.id)) if (d.status === 'committed' && !current.has(d.stack)) current.set(d.stack, d);
  return [...current.values()]
    .sort((a, b) => a.stack.localeCompare(b.stack))
    .map((d) => {
      let from = d;
      for (let hops = 0; from.kind === 'rollback' && from.restores !== null && byId.has(from.restores) && hops < history.length; hops++) from = byId.get(from.restores)!;
      const bundle = `${d.bundle_name ?? '?'} ${d.bundle_version ?? '?'}`;
      return from.source?.startsWith('/') ? { stack: d.stack, bundle, file: from.source } : { stack: d.stack, bundle, missing: `deployed from ${JSON.stringify(from.source ?? '')}, not from a bundle file the journal names` };
    });
}

export type GiveOutcome = { ok: true; bundles: string[] } | { ok: false; error: AirlockError };

export interface GiveOptions {
  manager: HostConnection;
  nodes: HostConnection[];
  /** The airlock command on the hosts. */
  airlock: string;
  parallel?: number | undefined;
  onHost?: (h: InventoryHost, event: string) => void;
}

/** Gives every node the bundles deployed on the cluster; by node name, what it got or why not. */
export async function giveDeployedBundles(o: GiveOptions): Promise<Map<string, GiveOutcome>> {
  const outcome = new Map<string, GiveOutcome>();
  const failAll = (why: (h: InventoryHost) => AirlockError) => {
    for (const n of o.nodes) outcome.set(n.host.name, { ok: false, error: why(n.host) });
    return outcome;
  };
  const m = o.manager.host;
  let deployed: DeployedBundle[];
  try {
    deployed = deployedBundles(await managerHistory(o));
  } catch (e) {
    const err = onHost(m, 'reading what is deployed from its journal failed', e);
    return failAll((h) => stillPaused(h, err.message, err.hint ?? `fix it on ${m.name} (or pass --remote-airlock PATH), then run cluster up again`));
  }
  const missing = deployed.filter((d): d is DeployedBundle & { missing: string } => 'missing' in d);
  if (missing.length > 0) {
    const what = missing.map((d) => `stack ${d.stack} (bundle ${d.bundle}) was ${d.missing}`).join('; ');
    return failAll((h) => stillPaused(h, `${m.name} has no bundle file for every stack deployed: ${what}`, `apply the stack's bundle again from a file (bundle apply --inventory), then run cluster up again`));
  }
  const files = [...new Set(deployed.map((d) => (d as { file: string }).file))];
  if (files.length === 0) {
    for (const n of o.nodes) outcome.set(n.host.name, { ok: true, bundles: [] });
    return outcome;
  }
  const local = await mkdtemp(join(tmpdir(), 'airlock-new-node-'));
  try {
    const copies: { path: string; sha256: string }[] = [];
    try {
      const sftp = await openSftp(o.manager.session.client);
      for (const [i, f] of files.entries()) {
        const path = join(local, `${i}-${basename(f)}`);
        o.onHost?.(m, `copying ${f} for the new nodes`);
        await new Promise<void>((resolve, reject) => sftp.fastGet(f, path, (e) => (e ? reject(e) : resolve())));
        copies.push({ path, sha256: await sha256Of(path) });
      }
      sftp.end();
    } catch (e) {
      const err = onHost(m, 'copying the deployed bundles from it failed', e);
      return failAll((h) => stillPaused(h, err.message, `the bundle files the journal names must stay on ${m.name}; apply them again from a file, then run cluster up again`));
    }
    const bundles = [...new Set(deployed.map((d) => d.bundle))];
    const done = await forEachHost(
      o.nodes.map((n) => n.host),
      o.parallel,
      async (h) => {
        const n = o.nodes.find((c) => c.host === h)!;
        for (const c of copies) {
          o.onHost?.(h, `upload ${basename(c.path)}`);
          const up = await uploadFile(n.session.client, c.path, { remoteDir: DEFAULT_REMOTE_DIR, sha256: c.sha256, host: h.name }).catch((e: unknown) => {
            throw onHost(h, 'upload', e);
          });
          o.onHost?.(h, 'import: verify, store, load images');
          await runAirlock(n.session, o.airlock, ['bundle', 'import', up.remotePath, '--json']).catch((e: unknown) => {
            throw onHost(h, 'import', e);
          });
        }
      },
    );
    for (const d of done) outcome.set(d.host.name, d.ok ? { ok: true, bundles } : { ok: false, error: stillPaused(d.host, d.error.message, d.error.hint ?? 'fix the node (its trust store must hold the vendor key, as for bundle apply --inventory), then run cluster up again', d.error.reason) });
    return outcome;
  } finally {
    await rm(local, { recursive: true, force: true });
  }
}

/** The manager's deployments; a manager that never imported or applied anything has deployed nothing. */
async function managerHistory(o: GiveOptions): Promise<HistoryRow[]> {
  try {
    return (await runAirlock(o.manager.session, o.airlock, ['history', '--json'])) as HistoryRow[];
  } catch (e) {
    // No journal, and no stack running that it lost (that one comes with its hint): nothing deployed.
    if (e instanceof AirlockError && e.reason === 'no-journal' && e.hint === undefined) return [];
    throw e;
  }
}

/** A failure on a host, as cluster up reports them (remote, exit 17), keeping the host's own reason. */
function stillPaused(h: InventoryHost, why: string, hint: string, reason = 'new-node-bundles'): AirlockError {
  const text = why.startsWith(`${h.name} `) || why.startsWith(`${h.name}:`) ? why : `${h.name}: ${why}`;
  return new AirlockError('remote', `${text} (the node stays paused: no task is scheduled there)`, { reason, subject: h.name, hint });
}

async function sha256Of(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}
