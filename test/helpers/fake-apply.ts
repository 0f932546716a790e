/**
 * An apply host in-process: a real SQLite journal and content store in a
 * temp dir, the fake engine (fake-engine.ts), and the pipeline run as
 * `bundle apply` runs it (src/apply/bundle-apply.ts), its context built the
 * same way. The bundle steps do the least that is true: verify passes, store
 * records the bundle in the journal, load gives the engine the release's
 * images. For the pipeline, recovery and the crash table without a dockerd.
 *
 * The release is crash.test.ts's: v1 runs web (with a config), worker and
 * legacy; v2 a new web image and config, a new worker environment, legacy
 * removed and probe added.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApplyContext } from '../../src/apply/context.js';
import { journalRecorder } from '../../src/apply/recorder.js';
import { recoverUnfinished } from '../../src/apply/recover.js';
import type { RevocationGate } from '../../src/apply/revocation.js';
import { runPipeline, type StackOutcome } from '../../src/apply/run-pipeline.js';
import { FORMAT_V1, type Manifest } from '../../src/bundle/manifest-format.js';
import { BundleRecords } from '../../src/journal/bundles.js';
import { DeploymentRecords, type DeploymentRow } from '../../src/journal/deployments.js';
import { Journal } from '../../src/journal/journal.js';
import { contentStoreOf } from '../../src/store/state-dir.js';
import { hostKeysOf } from '../../src/seal/sealing-options.js';
import { desiredStack } from '../../src/stack/desired.js';
import { unkeyedSuffix } from '../../src/compose/convert/index.js';
import type { DesiredStack } from '../../src/stack/types.js';
import { TrustStore } from '../../src/trust/trust-store.js';
import { IDLE } from './apply.js';
import { FakeEngine } from './fake-engine.js';
import { tempDir } from './fixtures.js';

export type Version = '1.0.0' | '2.0.0';

export interface FakeHost {
  /** The state dir: journal.db and blobs/. */
  state: string;
  stack: string;
  fake: FakeEngine;
  ctx: ApplyContext;
  /** The images each release runs. */
  images(version: Version): string[];
  /**
   * An apply of the release, as `bundle apply` runs it after recovery: one
   * deployment, every step journaled. `unkeyedNames`: as airlock named
   * secrets and configs before sealed secrets (the value's bare SHA-256).
   */
  apply(version: Version, opts?: { unkeyedNames?: boolean }): Promise<StackOutcome[]>;
  /** `airlock recover`: the deployments it closed. */
  recover(): Promise<DeploymentRow[]>;
  close(): Promise<void>;
}

/** Short enough for milliseconds; no stability window, so a poll that sees every task running converges. */
const FAST = { stableMs: 0, pollMs: 1 };

function compose(stack: string, version: Version): string {
  const extra = version === '2.0.0' ? 'probe' : 'legacy';
  return `
services:
  web:
    image: ${stack}/web:${version}
    command: ${JSON.stringify(IDLE)}
    deploy: { replicas: 1 }
    configs: [{ source: release, target: /etc/release.conf }]
  worker:
    image: ${stack}/base:1
    command: ${JSON.stringify(IDLE)}
    environment: { RELEASE: "${version}" }
  ${extra}:
    image: ${stack}/base:1
    command: ${JSON.stringify(IDLE)}
configs:
  release: { file: ./conf/release.conf }
`;
}

export async function fakeHost(opts: { engine?: string; stack?: string; timeoutMs?: number } = {}): Promise<FakeHost> {
  const stack = opts.stack ?? 'crash';
  const fake = new FakeEngine(opts.engine ?? '20.10');
  const work = await tempDir('airlock-fake-apply-');
  const state = join(work.dir, 'state');
  const trustDir = join(work.dir, 'trust');
  await mkdir(trustDir);
  // An empty trust store: no key is revoked, so recovery may finish forward or restore.
  const revocation: RevocationGate = { trust: () => TrustStore.load(trustDir) };
  const journal = Journal.open(state);
  const deployments = new DeploymentRecords(journal);
  const store = contentStoreOf(state);
  const ctx: ApplyContext = { docker: fake, journal, deployments, store, keys: hostKeysOf(state, undefined), recorder: journalRecorder(journal, deployments, store), timeoutMs: opts.timeoutMs ?? 2000, ...FAST };

  const images = (version: Version) => [`${stack}/web:${version}`, `${stack}/base:1`];
  const desired = async (version: Version, unkeyedNames = false): Promise<DesiredStack> => {
    const files = { '/release/conf/release.conf': `release=${version}\n` };
    const readFile = (p: string) => Buffer.from(files[p as keyof typeof files] ?? '');
    const input = { stack, files: [{ name: 'docker-compose.yml', content: compose(stack, version) }], workingDir: '/release', env: {}, apiVersion: await fake.client.apiVersion(), readFile, nameSuffix: async () => (unkeyedNames ? unkeyedSuffix : ctx.keys.plainNames()) };
    return (await desiredStack(input)).desired;
  };
  /** The store step's part: the bundle recorded as an import records it, with no blobs. */
  const recordBundle = (version: Version): number => {
    const manifest: Manifest = { format: FORMAT_V1, name: stack, version, description: 'fake release', created: new Date().toISOString(), expires: null, blobs: [], stacks: [], images: [], files: [] };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    return new BundleRecords(journal).recordImport({ manifest, manifestDigest: `sha256:${stack}-${version}`, keyId: 'fake-key', signers: ['fake-key'], manifestBytes, signatureBytes: Buffer.alloc(0) }, new Date());
  };

  return {
    state,
    stack,
    fake,
    ctx,
    images,
    async apply(version, applyOpts = {}) {
      await recoverUnfinished(ctx, revocation);
      const id = deployments.start({ stack, bundleId: null, kind: 'apply', replaces: deployments.current(stack)?.id ?? null, appliedBy: 'test', source: `${stack} ${version}` });
      return runPipeline(ctx, {
        stacks: [{ id, stack, desired: () => desired(version, applyOpts.unkeyedNames) }],
        prune: true,
        bundle: {
          verify: async () => {},
          store: async () => recordBundle(version),
          load: async () => new Map(images(version).map((ref) => [ref, fake.addImage(ref).Id] as const)),
        },
      });
    },
    recover: () => recoverUnfinished(ctx, revocation),
    async close() {
      journal.close();
      await work.cleanup();
    },
  };
}
