/**
 * The engine commands on one host: verify and store an engine bundle, run
 * the preflight before anything is stored, then make its engine the one that
 * runs (engine-change.ts). Each holds the apply lock: nothing else deploys
 * while the engine changes under it.
 */
import type { EngineRecord, Manifest } from '../bundle/manifest-format.js';
import { AirlockError } from '../errors/index.js';
import { storeBundle, type ImportResult } from '../import/import-bundle.js';
import { Journal } from '../journal/journal.js';
import { acquireApplyLock } from '../journal/lock.js';
import type { SealingOptions } from '../seal/sealing-options.js';
import { contentStoreOf } from '../store/state-dir.js';
import type { TrustStore } from '../trust/trust-store.js';
import { applyEngine, recoverEngine, rollbackEngine, type EngineChangeOptions, type EngineChangeResult } from './engine-change.js';
import { currentEngine } from './installed.js';
import { checkPackages, packageFiles } from './packages.js';
import { preflightError, runPreflight } from './preflight.js';
import { preflightOptions } from './preflight-options.js';

export type HostEngineOptions = Omit<EngineChangeOptions, 'journal' | 'store'> & {
  stateDir: string;
  lockWaitMs: number;
};

/** Engine changes replace system files and start daemons: only root may. */
export function requireRoot(what: string): void {
  if ((process.geteuid?.() ?? 0) !== 0) {
    throw new AirlockError('policy', `${what} must run as root: it installs the engine's binaries, units and configuration`, {
      reason: 'not-root',
      hint: `sudo airlock ${what}`,
    });
  }
}

/** Refuses a bundle that carries no engine, before anything is stored. */
export function engineOf(m: Pick<Manifest, 'name' | 'version' | 'engine'>): EngineRecord {
  if (!m.engine) {
    throw new AirlockError('usage', `bundle ${m.name} ${m.version} carries no Docker Engine`, {
      reason: 'not-an-engine-bundle',
      hint: 'airlock bundle inspect shows what a bundle carries; stacks are applied with airlock bundle apply',
    });
  }
  return m.engine;
}

async function withHost<T>(opts: HostEngineOptions, what: string, body: (o: EngineChangeOptions) => Promise<T>): Promise<T> {
  const journal = Journal.open(opts.stateDir);
  try {
    const release = await acquireApplyLock(journal, what, opts.lockWaitMs);
    try {
      return await body({ ...opts, journal, store: contentStoreOf(opts.stateDir) });
    } finally {
      release();
    }
  } finally {
    journal.close();
  }
}

export interface EngineInstallResult extends EngineChangeResult {
  bundle: { name: string; version: string; id: number };
  /** The verify-and-store pass, as bundle import reports it. */
  imported: ImportResult;
}

/** `airlock engine install BUNDLE`. */
export async function installEngineBundle(
  file: string,
  opts: HostEngineOptions & { trust: TrustStore; sealing?: SealingOptions; allowDowngrade?: boolean },
): Promise<EngineInstallResult> {
  requireRoot('engine install');
  return withHost(opts, `engine install ${file}`, async (o) => {
    const installed = await currentEngine(opts.paths);
    // The verified manifest's engine, as the checks before storing saw it.
    let record: EngineRecord | undefined;
    const stored = await storeBundle(
      file,
      {
        stateDir: opts.stateDir,
        trust: opts.trust,
        allowDowngrade: opts.allowDowngrade ?? false,
        ...(opts.sealing ? { sealing: opts.sealing } : {}),
        beforeStore: async (m) => {
          record = engineOf(m);
          const report = await runPreflight(preflightOptions(record, installed, opts));
          if (!report.ok) throw preflightError(report);
        },
        // A package set the host cannot install is refused before it is stored: apt's simulation names what is missing.
        beforeCommit: async (m, blobPath) => {
          if (m.engine?.form === 'deb') await checkPackages(packageFiles(m.engine, blobPath));
        },
      },
      o.journal,
      o.store,
    );
    const result = await applyEngine(stored.bundleId, engineOf({ ...stored, engine: record }), o);
    return { ...result, bundle: { name: stored.name, version: stored.version, id: stored.bundleId }, imported: stored };
  });
}

/** `airlock engine rollback`. */
export function rollbackHostEngine(opts: HostEngineOptions): Promise<EngineChangeResult> {
  requireRoot('engine rollback');
  return withHost(opts, 'engine rollback', rollbackEngine);
}

/** The engine part of `airlock recover`: run before the stacks' recovery, which needs a working engine. */
export function recoverHostEngine(opts: HostEngineOptions): Promise<Awaited<ReturnType<typeof recoverEngine>>> {
  return withHost(opts, 'recover (engine)', recoverEngine);
}
