import type { Manifest } from '../bundle/manifest-format.js';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { AirlockError, asAirlockError, isRefusal } from '../errors/index.js';
import { openBundleFile, readBundle, type VerifiedHead } from '../bundle/reader.js';
import { bundleBytes } from '../bundle/parts-stream.js';
import type { BaseRef, ImageRecord } from '../bundle/manifest.js';
import type { Limits } from '../bundle/limits.js';
import { ContentStore, type Staging } from '../store/content-store.js';
import { contentStoreOf } from '../store/state-dir.js';
import { Journal } from '../journal/journal.js';
import { BundleRecords } from '../journal/bundles.js';
import type { TrustStore } from '../trust/trust-store.js';
import type { ImageEngine } from '../docker/engine.js';
import { loadImages } from '../images/load-images.js';
import { variantsForHost } from '../images/host-variants.js';
import { formatPlatform, hostPlatform } from '../images/platform.js';
import { countBytes } from '../streams/count-bytes.js';
import { ImageRecords } from '../journal/images.js';
import { acquireApplyLock } from '../journal/lock.js';
import { checkVersionPolicy } from './policy.js';
import { checkBaseBlobs } from './base-check.js';
import { crashPoint } from '../process/fault.js';
import { hostKeysOf, type SealingOptions } from '../seal/sealing-options.js';
import { checkSealedContent, checkSealedTo } from './sealing-check.js';

export interface ImportOptions {
  stateDir: string;
  trust: TrustStore;
  allowDowngrade?: boolean;
  now?: Date;
  limits?: Partial<Limits>;
  /**
   * The engine to load the images into; without it, blobs are only stored.
   * A bundle without a variant of some image for the engine's platform is
   * refused before anything is stored.
   */
  docker?: ImageEngine;
  onProgress?: (p: ImportProgress) => void;
  signal?: AbortSignal;
  /** How long to wait for an apply or prune on this host to finish. */
  lockWaitMs?: number;
  /** Where the site identities are, and whether secrets must arrive sealed. */
  sealing?: SealingOptions;
  /** The caller's own check of the verified manifest, before anything is stored (`engine install`: platform and preflight). */
  beforeStore?: (manifest: Manifest) => Promise<void>;
  /** The caller's check of the verified blobs, staged and not yet committed (`engine install`: apt's simulation of the package set). */
  beforeCommit?: (manifest: Manifest, blobPath: (digest: string) => string) => Promise<void>;
}

export type ImportProgress = { phase: 'verify'; bytes: number; total: number } | { phase: 'load'; bytes: number; total: number };

export interface ImportResult {
  bundleId: number;
  name: string;
  version: string;
  manifestDigest: string;
  keyId: string;
  /** Every key whose signature counted (several where the trust metadata asks for a threshold). */
  signers: string[];
  blobs: number;
  newBlobs: number;
  newBytes: number;
  alreadyImported: boolean;
  /** For a delta bundle: its base, and how many of the blobs are the base's (already in the store, not in the file). */
  delta?: { base: BaseRef; baseBlobs: number; baseBytes: number };
  /** Image refs by what the load did, and the host platform whose variants were loaded; absent when images were not loaded. */
  images?: LoadSummary;
}

export interface LoadSummary {
  loaded: string[];
  present: string[];
  tagged: string[];
  /** The engine's platform: the variant of each image that was loaded. */
  platform: string;
}

/**
 * Verifies a bundle and stores its blobs in one pass. Blobs are staged and
 * committed only after the whole bundle checks out; the journal records the
 * import, or the refusal with its reason.
 */
export async function importBundle(file: string, opts: ImportOptions): Promise<ImportResult> {
  const journal = Journal.open(opts.stateDir);
  try {
    // Under the apply lock: a prune must not delete a blob this import found already stored.
    const release = await acquireApplyLock(journal, `bundle import ${file}`, opts.lockWaitMs ?? 60_000);
    try {
      const store = contentStoreOf(opts.stateDir);
      const result = await storeBundle(file, opts, journal, store);
      if (opts.docker) {
        result.images = (await loadBundleImages(opts, journal, store, result.bundleId)).summary;
      }
      return result;
    } finally {
      release();
    }
  } finally {
    journal.close();
  }
}

/**
 * The verify-and-store pass: commits blobs and the bundle record, or records
 * the refusal. With `opts.docker`, the engine's platform is checked too
 * (variantsForHost), before anything is stored; nothing is loaded here.
 */
export async function storeBundle(file: string, opts: ImportOptions, journal: Journal, store: ContentStore): Promise<ImportResult> {
  const bundles = new BundleRecords(journal);
  let staging: Staging | undefined;
  let head: VerifiedHead | undefined;
  const now = opts.now ?? new Date();
  let opened = 0;
  let baseCheck: Awaited<ReturnType<typeof checkBaseBlobs>> | undefined;
  const keys = hostKeysOf(opts.stateDir, opts.sealing);
  try {
    const host = opts.docker ? await hostPlatform(opts.docker, opts.signal ? { signal: opts.signal } : {}) : undefined;
    const source = await openBundleFile(file);
    const total = await bundleBytes(file, source);
    const input = countBytes(source, opts.onProgress && ((bytes) => opts.onProgress!({ phase: 'verify', bytes, total })));
    const verified = await readBundle(input, {
      trust: opts.trust,
      now,
      allowOlder: opts.allowDowngrade ?? false,
      ...(opts.limits ? { limits: opts.limits } : {}),
      beforePayload: async (h) => {
        head = h;
        checkVersionPolicy(h, bundles, opts.allowDowngrade ?? false);
        await checkSealedTo(h.manifest, keys);
        await opts.beforeStore?.(h.manifest);
        // A delta: the blobs it relies on must be here already, before anything is written.
        baseCheck = await checkBaseBlobs(h.manifest, store);
        await store.ensureFreeSpace((await store.missing(h.manifest.blobs)).bytes);
        staging = await store.beginStaging();
      },
      sink: {
        open: (blob) => {
          // For the fault tests: killed with one blob staged and the rest to come.
          if (++opened === 2) crashPoint('import-mid');
          return staging!.open(blob);
        },
      },
    });
    const already = bundles.byDigest(verified.manifestDigest) !== undefined;
    const staged = staging!;
    const m = verified.manifest;
    // Every blob checked out; an image this host could not run, or a secret it cannot open or may not take, is refused before any is stored.
    if (host) await variantsForHost(m.images, host, (d) => readFile(staged.pathOf(d)), `${m.name} ${m.version}`);
    await checkSealedContent(m, (d) => readFileSync(staged.pathOf(d)), keys, opts.sealing?.requireSealed ?? false);
    await opts.beforeCommit?.(m, (d) => staged.pathOf(d));
    const newBytes = verified.manifest.blobs.filter((b) => staged.stagedDigests.includes(b.digest)).reduce((n, b) => n + b.size, 0);
    const newDigests = await staged.commit();
    const bundleId = bundles.recordImport(verified, now);
    const result: ImportResult = {
      bundleId,
      name: m.name,
      version: m.version,
      manifestDigest: verified.manifestDigest,
      keyId: verified.keyId,
      signers: verified.signers,
      blobs: m.blobs.length,
      newBlobs: newDigests.length,
      newBytes,
      alreadyImported: already,
      ...(m.base && baseCheck ? { delta: { base: m.base, baseBlobs: baseCheck.needed, baseBytes: baseCheck.neededBytes } } : {}),
    };
    journal.record({
      kind: 'bundle.import',
      outcome: 'ok',
      subject: `${m.name} ${m.version}`,
      message: already ? 'already imported; blobs checked' : `stored ${newDigests.length} new blobs`,
      details: { file, ...result, ...(opts.allowDowngrade ? { allowDowngrade: true } : {}) },
    }, now);
    return result;
  } catch (e) {
    const err = asAirlockError(e);
    recordRefusal(journal, file, err, head, now);
    // The refusal is on record first: a failed clean-up must not hide it.
    await staging?.discard().catch(() => undefined);
    throw err;
  }
}

/**
 * Loads a stored bundle's images, the variant of each for the engine's
 * platform; journals them only once the engine holds them with the right
 * ids. Returns what it did and the variants it loaded.
 */
export async function loadBundleImages(
  opts: Pick<ImportOptions, 'docker' | 'signal' | 'onProgress'>,
  journal: Journal,
  store: ContentStore,
  bundleId: number,
): Promise<{ summary: LoadSummary; images: ImageRecord[] }> {
  const manifest = new BundleRecords(journal).manifest(bundleId);
  const subject = `${manifest.name} ${manifest.version}`;
  const call = opts.signal ? { signal: opts.signal } : {};
  try {
    const host = await hostPlatform(opts.docker!, call);
    const images = await variantsForHost(manifest.images, host, (d) => readFile(store.pathOf(d)), subject);
    const report = await loadImages(opts.docker!, store, images, {
      ...call,
      onBytes: (bytes, total) => opts.onProgress?.({ phase: 'load', bytes, total }),
    });
    new ImageRecords(journal).recordPresent(bundleId, images, new Date());
    const refs = (list: typeof images) => list.flatMap((i) => i.refs);
    const summary = { loaded: refs(report.loaded), present: refs(report.present), tagged: refs(report.tagged), platform: formatPlatform(host) };
    journal.record({ kind: 'images.load', outcome: 'ok', subject, details: summary });
    return { summary, images };
  } catch (e) {
    const err = asAirlockError(e);
    journal.record({ kind: 'images.load', outcome: isRefusal(err) ? 'refused' : 'failed', subject, reason: err.reason, message: err.message });
    throw err;
  }
}

function recordRefusal(journal: Journal, file: string, err: AirlockError, head: VerifiedHead | undefined, at: Date): void {
  journal.record({
    kind: 'bundle.import',
    outcome: isRefusal(err) ? 'refused' : 'failed',
    subject: head ? `${head.manifest.name} ${head.manifest.version}` : file,
    reason: err.reason,
    message: err.message,
    details: { file, errorClass: err.kind, ...(err.subject ? { entry: err.subject } : {}) },
  }, at);
}
