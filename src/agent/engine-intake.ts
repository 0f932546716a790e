/**
 * An engine bundle in the inbox: installed (or upgraded) rather than only
 * imported, so that a host's first boot can bring its own engine before it
 * joins the swarm. Which way a bundle goes is read from its manifest before
 * it is verified; the install verifies it like every import, so a manifest
 * that lies only gets itself refused.
 */
import { openBundleFile, readBundleHead } from '../bundle/reader.js';
import type { Manifest } from '../bundle/manifest-format.js';
import type { ImportResult } from '../import/import-bundle.js';
import type { TrustStore } from '../trust/trust-store.js';
import { appliedBy } from '../apply/applied-by.js';
import type { AgentConfig } from './config.js';
import type { Logger } from './log.js';
import { agentSealing } from './sealing.js';

/** Whether the file's (not yet verified) manifest names an engine. Unreadable: no, and the import says why. */
export async function carriesEngine(path: string): Promise<boolean> {
  try {
    const head = await readBundleHead(await openBundleFile(path));
    return (JSON.parse(head.manifestBytes.toString('utf8')) as Partial<Manifest>).engine !== undefined;
  } catch {
    return false;
  }
}

/** Installs the engine of a bundle from the inbox, with the host's engine config; returns the import's result. */
export async function installEngineFromInbox(path: string, config: AgentConfig, trust: TrustStore, log: Logger): Promise<ImportResult> {
  const [{ installEngineBundle }, { defaultEngineHostPaths }] = await Promise.all([import('../engine/engine-host.js'), import('../engine/host-paths.js')]);
  const r = await installEngineBundle(path, {
    stateDir: config.stateDir,
    trust,
    sealing: agentSealing(config),
    paths: defaultEngineHostPaths(),
    config: config.engine,
    timeoutMs: config.apply.timeoutMs,
    drainTimeoutMs: config.apply.timeoutMs,
    // Unattended: never take services down; a node that cannot drain is upgraded from the jump box.
    allowDowntime: false,
    lockWaitMs: 10 * 60_000,
    appliedBy: appliedBy(),
    say: (line) => log.info(line),
  });
  log.info(`engine ${r.outcome}`, { version: r.version, form: r.form, previous: r.previous?.version, change: r.change ?? undefined });
  return r.imported;
}
