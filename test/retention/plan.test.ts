import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planPrune, type BundleFact, type DeploymentFact, type JournalFacts } from '../../src/retention/plan.js';

// Tiny journals: blob digests are short names, sizes 1 each.

function bundle(id: number, version: string, blobs: string[], images: { id: string; blobs: string[] }[] = [], opts: { name?: string; holdsBlobs?: boolean } = {}): BundleFact {
  return {
    id,
    name: opts.name ?? 'demo',
    version,
    blobs: blobs.map((digest) => ({ digest, size: 1, kind: 'layer' })),
    images: images.map((i) => ({ id: i.id, manifest: { digest: `m-${i.id}`, size: 1 }, layers: [], refs: [`demo/${i.id}`], blobs: i.blobs })),
    holdsBlobs: opts.holdsBlobs ?? true,
  };
}

function deploy(id: number, bundleId: number | null, o: Partial<Omit<DeploymentFact, 'id' | 'bundleId'>> = {}): DeploymentFact {
  return { id, stack: o.stack ?? 'web', bundleId, kind: o.kind ?? 'apply', status: o.status ?? 'committed', restores: o.restores ?? null, imageIds: o.imageIds ?? [], dataDigests: o.dataDigests ?? [] };
}

const rollback = (id: number, bundleId: number, restores: number, o: Partial<DeploymentFact> = {}) => deploy(id, bundleId, { kind: 'rollback', restores, ...o });

function facts(bundles: BundleFact[], deployments: DeploymentFact[], extra: Partial<JournalFacts> = {}): JournalFacts {
  const images = new Map<string, { id: string; refs: string[] }>();
  for (const b of bundles) for (const i of b.images) images.set(i.id, { id: i.id, refs: [...i.refs] });
  const blobs = new Map<string, { digest: string; size: number; kind: string }>();
  for (const b of bundles) for (const x of b.blobs) blobs.set(x.digest, { ...x });
  return { bundles, deployments, images: [...images.values()], blobs: [...blobs.values()], ...extra };
}

/** v1..v4 of one app: a shared base layer and image, an app layer and image per version. */
function fourReleases(): BundleFact[] {
  return [1, 2, 3, 4].map((n) =>
    bundle(n, `1.${n}.0`, ['base-layer', 'base-config', `app${n}-layer`, `app${n}-config`, `compose${n}`, 'app.conf'], [
      { id: 'base', blobs: ['base-config', 'base-layer'] },
      { id: `app${n}`, blobs: [`app${n}-config`, 'base-layer', `app${n}-layer`] },
    ]),
  );
}
const fourApplies = () => [1, 2, 3, 4].map((n) => deploy(n, n, { imageIds: ['base', `app${n}`] }));

interface Case {
  name: string;
  facts: JournalFacts;
  keep: number;
  keptDeployments: number[];
  prunedBundles: number[];
  blobs: string[];
  images: string[];
}

const cases: Case[] = [
  {
    name: 'keep 2 of 4 applies: v1 and v2 go, shared blobs and the shared image stay',
    facts: facts(fourReleases(), fourApplies()),
    keep: 2,
    keptDeployments: [4, 3],
    prunedBundles: [1, 2],
    blobs: ['app1-config', 'app1-layer', 'app2-config', 'app2-layer', 'compose1', 'compose2'],
    images: ['app1', 'app2'],
  },
  {
    name: 'keep 1: only what runs now',
    facts: facts(fourReleases(), fourApplies()),
    keep: 1,
    keptDeployments: [4],
    prunedBundles: [1, 2, 3],
    blobs: ['app1-config', 'app1-layer', 'app2-config', 'app2-layer', 'app3-config', 'app3-layer', 'compose1', 'compose2', 'compose3'],
    images: ['app1', 'app2', 'app3'],
  },
  {
    name: 'keep more than there are: nothing goes',
    facts: facts(fourReleases(), fourApplies()),
    keep: 10,
    keptDeployments: [4, 3, 2, 1],
    prunedBundles: [],
    blobs: [],
    images: [],
  },
  {
    name: 'the running deployment is a rollback to v1: v1 is kept as the state it restored',
    facts: facts(fourReleases().slice(0, 3), [...fourApplies().slice(0, 3), rollback(4, 1, 1, { imageIds: ['base', 'app1'] })]),
    keep: 2,
    keptDeployments: [4, 3, 1],
    prunedBundles: [2],
    blobs: ['app2-config', 'app2-layer', 'compose2'],
    images: ['app2'],
  },
  {
    name: 'keep 2 also keeps the release a bare rollback goes to, even past the window',
    // #4 rolled back to #2; the states are #2 and #3, and a bare rollback from #2 goes to #1.
    facts: facts(fourReleases().slice(0, 3), [...fourApplies().slice(0, 3), rollback(4, 2, 2, { imageIds: ['base', 'app2'] })]),
    keep: 2,
    keptDeployments: [4, 3, 2, 1],
    prunedBundles: [],
    blobs: [],
    images: [],
  },
  {
    name: 'keep 1 after a rollback: the rollback and what it restored',
    facts: facts(fourReleases().slice(0, 3), [...fourApplies().slice(0, 3), rollback(4, 2, 2, { imageIds: ['base', 'app2'] })]),
    keep: 1,
    keptDeployments: [4, 2],
    prunedBundles: [1, 3],
    blobs: ['app1-config', 'app1-layer', 'app3-config', 'app3-layer', 'compose1', 'compose3'],
    images: ['app1', 'app3'],
  },
  {
    name: 'rolling back and forth counts each state once',
    // States newest first: #3 (via #5), #2 (via #4), then #1: keep 3 keeps all three releases.
    facts: facts(fourReleases().slice(0, 3), [...fourApplies().slice(0, 3), rollback(4, 2, 2), rollback(5, 3, 3)]),
    keep: 3,
    keptDeployments: [5, 4, 3, 2, 1],
    prunedBundles: [],
    blobs: [],
    images: [],
  },
  {
    name: 'a rollback chain (a rollback to a rollback) keeps every link',
    facts: facts(fourReleases().slice(0, 3), [...fourApplies().slice(0, 3), rollback(4, 1, 1), deploy(5, 3, { imageIds: ['base', 'app3'] }), rollback(6, 1, 4)]),
    keep: 1,
    keptDeployments: [6, 4, 1],
    prunedBundles: [2, 3],
    blobs: ['app2-config', 'app2-layer', 'app3-config', 'app3-layer', 'compose2', 'compose3'],
    images: ['app2', 'app3'],
  },
  {
    name: 'failed and rolled-back deployments are not states; a newer bundle that failed stays pending',
    facts: facts(fourReleases().slice(0, 3), [deploy(1, 1), deploy(2, 2), deploy(3, 3, { status: 'rolled-back' })]),
    keep: 1,
    keptDeployments: [2],
    prunedBundles: [1],
    blobs: ['app1-config', 'app1-layer', 'compose1'],
    images: ['app1'],
  },
  {
    name: 'a bundle that failed goes once a newer release has committed',
    facts: facts(fourReleases(), [deploy(1, 1), deploy(2, 2), deploy(3, 3, { status: 'failed' }), deploy(4, 4)]),
    keep: 2,
    keptDeployments: [4, 2],
    prunedBundles: [1, 3],
    blobs: ['app1-config', 'app1-layer', 'app3-config', 'app3-layer', 'compose1', 'compose3'],
    images: ['app1', 'app3'],
  },
  {
    name: 'a bundle never applied but older than a release that committed is superseded, not pending: it goes',
    facts: facts([...fourReleases(), bundle(5, '0.9.0', ['old-layer'], [{ id: 'old', blobs: ['old-layer'] }])], fourApplies()),
    keep: 1,
    keptDeployments: [4],
    prunedBundles: [1, 2, 3, 5],
    blobs: ['app1-config', 'app1-layer', 'app2-config', 'app2-layer', 'app3-config', 'app3-layer', 'compose1', 'compose2', 'compose3', 'old-layer'],
    images: ['app1', 'app2', 'app3', 'old'],
  },
  {
    name: 'an unfinished apply keeps its bundle',
    facts: facts(fourReleases(), [...fourApplies().slice(0, 3), deploy(4, 4, { status: 'running' })]),
    keep: 1,
    keptDeployments: [4, 3],
    prunedBundles: [1, 2],
    blobs: ['app1-config', 'app1-layer', 'app2-config', 'app2-layer', 'compose1', 'compose2'],
    images: ['app1', 'app2'],
  },
  {
    name: 'secret and config data: kept deployments keep theirs, shared data stays',
    facts: facts(fourReleases().slice(0, 2), [deploy(1, 1, { dataDigests: ['secret-old', 'config-shared'] }), deploy(2, 2, { dataDigests: ['secret-new', 'config-shared'] })]),
    keep: 1,
    keptDeployments: [2],
    prunedBundles: [1],
    blobs: ['app1-config', 'app1-layer', 'compose1', 'secret-old'],
    images: ['app1'],
  },
  {
    name: 'a pinned image carried only by a pruned bundle keeps its blobs and stays in the engine',
    facts: facts(
      [bundle(1, '1.0.0', ['x-config', 'x-layer', 'c1'], [{ id: 'x', blobs: ['x-config', 'x-layer'] }]), bundle(2, '2.0.0', ['c2'])],
      [deploy(1, 1, { imageIds: ['x'] }), deploy(2, 2, { imageIds: ['x'] })],
    ),
    keep: 1,
    keptDeployments: [2],
    prunedBundles: [1],
    blobs: ['c1'],
    images: [],
  },
  {
    name: 'stacks are counted apart; a bundle two stacks use stays while either keeps it',
    facts: facts(fourReleases().slice(0, 3), [
      deploy(1, 1, { stack: 'a' }),
      deploy(2, 1, { stack: 'b' }),
      deploy(3, 2, { stack: 'a' }),
      deploy(4, 3, { stack: 'a' }),
    ]),
    keep: 1,
    keptDeployments: [4, 2],
    prunedBundles: [2],
    blobs: ['app2-config', 'app2-layer', 'compose2'],
    images: ['app2'],
  },
  {
    name: 'only images in the journal are ever removed; orphan blob rows go',
    facts: facts(fourReleases().slice(0, 2), fourApplies().slice(0, 2), {
      images: [{ id: 'app1', refs: ['demo/app1'] }],
      blobs: [{ digest: 'orphan', size: 5, kind: 'file' }],
    }),
    keep: 1,
    keptDeployments: [2],
    prunedBundles: [1],
    blobs: ['app1-config', 'app1-layer', 'compose1', 'orphan'],
    images: ['app1'],
  },
  {
    name: 'no deployments: every bundle is pending, nothing goes',
    facts: facts(fourReleases(), []),
    keep: 1,
    keptDeployments: [],
    prunedBundles: [],
    blobs: [],
    images: [],
  },
];

for (const c of cases) {
  test(`planPrune: ${c.name}`, () => {
    const plan = planPrune(c.facts, c.keep);
    assert.deepEqual(plan.keptDeployments.map((d) => d.id).sort((a, b) => b - a), [...c.keptDeployments].sort((a, b) => b - a), 'kept deployments');
    assert.deepEqual(plan.bundles.map((b) => b.id), c.prunedBundles, 'pruned bundles');
    assert.deepEqual(plan.blobs.map((b) => b.digest), [...c.blobs].sort(), 'blobs');
    assert.deepEqual(plan.images.map((i) => i.id), [...c.images].sort(), 'images');
    // The invariant behind every case: nothing a kept deployment or kept bundle needs is in the plan.
    const keptBundles = new Set(plan.keptBundles.map((k) => k.id));
    const gone = new Set(plan.blobs.map((b) => b.digest));
    for (const b of c.facts.bundles.filter((b) => keptBundles.has(b.id))) for (const x of b.blobs) assert.ok(!gone.has(x.digest), `${x.digest} of kept bundle ${b.id}`);
  });
}

test('planPrune: keep reasons say why', () => {
  const plan = planPrune(facts(fourReleases().slice(0, 3), [...fourApplies().slice(0, 3), rollback(4, 2, 2)]), 2);
  assert.deepEqual(plan.keptDeployments, [
    { id: 4, stack: 'web', reason: 'current' },
    { id: 3, stack: 'web', reason: 'recent' },
    { id: 2, stack: 'web', reason: 'restored' },
    { id: 1, stack: 'web', reason: 'rollback-default' },
  ]);
  const pending = planPrune(facts([...fourReleases()], fourApplies().slice(0, 2)), 1);
  assert.deepEqual(pending.keptBundles, [
    { id: 2, reason: 'deployment' },
    { id: 3, reason: 'pending' },
    { id: 4, reason: 'pending' },
  ]);
});

test('planPrune: sizes come from the manifest; bundles pruned before are flagged', () => {
  const bundles = fourReleases();
  bundles[0] = { ...bundles[0]!, holdsBlobs: false };
  const plan = planPrune(facts(bundles, fourApplies()), 2);
  assert.deepEqual(plan.bundles.map((b) => [b.id, b.alreadyPruned]), [[1, true], [2, false]]);
  assert.ok(plan.blobs.every((b) => b.size === 1));
  assert.deepEqual(plan.blobs.find((b) => b.digest === 'app1-layer')?.bundles, [1]);
});

test('planPrune: keep must be 1 or more', () => {
  for (const k of [0, -1, 1.5, Number.NaN]) assert.throws(() => planPrune(facts([], []), k), /at least 1/);
});
