import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import YAML from 'yaml';
import { labelFilter, type Docker, type NamedServiceSpec } from '../../src/docker/index.js';
import { diffSpecs } from '../../src/stack/spec-diff.js';
import { keyedNameSuffix } from '../../src/seal/names.js';
import type { Plan } from '../../src/stack/types.js';
import { PrivateDaemon } from '../helpers/dockerd.js';
import { dockerCliFor } from '../helpers/engines.js';
import { recordEngineSpecs, recordingEngineSpecs, unwitnessedRules } from '../helpers/engine-specs.js';
import { runCli, tempDir } from '../helpers/fixtures.js';
import { writeBusyboxLayer, writeImageArchive } from '../helpers/images.js';

// A single-node swarm of this file's own, with a busybox image loaded.
let work: { dir: string; cleanup: () => Promise<void> };
let daemon: PrivateDaemon;
let docker: Docker;
const IMAGE = 'stacktest/busybox:1';

before(async () => {
  work = await tempDir('airlock-stack-');
  daemon = new PrivateDaemon(join(work.dir, 'engine'));
  await daemon.start();
  docker = daemon.client();
  await docker.swarm.init({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: '127.0.0.1' });
  const layer = join(work.dir, 'base.tar');
  const diffId = await writeBusyboxLayer(layer);
  const archive = join(work.dir, 'image.tar');
  await writeImageArchive(archive, [{ refs: [IMAGE], layers: [{ path: layer, diffId }] }], 'legacy');
  await docker.images.loadAll(() => createReadStream(archive));
});

after(async () => {
  await docker.close();
  await daemon.destroy();
  await work.cleanup();
});

// The state dir holds the host's names key (secret names are keyed: src/seal/host-keys.ts).
const env = () => ({ DOCKER_HOST: daemon.dockerHost, AIRLOCK_STATE_DIR: join(work.dir, 'state') });
const dockerCli = (...args: string[]) => execFileSync(dockerCliFor(), ['-H', daemon.dockerHost, ...args], { encoding: 'utf8' });

async function compose(name: string, doc: unknown): Promise<string> {
  const file = join(work.dir, name);
  await writeFile(file, YAML.stringify(doc));
  return file;
}

const web = (extra: Record<string, unknown> = {}) => ({
  image: IMAGE,
  command: ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'],
  environment: { GREETING: 'hello' },
  deploy: { replicas: 2 },
  ...extra,
});

test('deploy creates what docker stack deploy would, and docker stack commands see it', async () => {
  const file = await compose('s1.yml', { services: { web: web(), worker: web({ deploy: { replicas: 1 } }) } });
  const r = await runCli(['stack', 'deploy', '-c', file, 'shop', '--timeout', '60s'], env());
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /Creating network shop_default/);
  assert.match(r.stdout, /shop_web 2\/2/);

  assert.match(dockerCli('stack', 'ls', '--format', '{{.Name}} {{.Services}}'), /^shop 2$/m);
  assert.deepEqual(dockerCli('stack', 'services', 'shop', '--format', '{{.Name}} {{.Replicas}}').trim().split('\n').sort(), ['shop_web 2/2', 'shop_worker 1/1']);
  const svc = await docker.services.inspect('shop_web');
  assert.deepEqual(svc.Spec.Labels, { 'com.docker.stack.image': IMAGE, 'com.docker.stack.namespace': 'shop' });
  assert.deepEqual(svc.Spec.TaskTemplate?.ContainerSpec?.Labels, { 'com.docker.stack.namespace': 'shop' });
  const net = await docker.networks.inspect('shop_default');
  assert.equal(net.Driver, 'overlay');
  assert.deepEqual(net.Labels, { 'com.docker.stack.namespace': 'shop' });
  const ls = JSON.parse((await runCli(['stack', 'ls', '--json'], env())).stdout) as { name: string; services: number }[];
  assert.deepEqual(ls, [{ name: 'shop', services: 2 }]);
});

test('an unchanged stack is not touched; a change is planned field by field, then applied', async () => {
  const file = await compose('s1.yml', { services: { web: web(), worker: web({ deploy: { replicas: 1 } }) } });
  const before = (await docker.services.inspect('shop_web')).Version.Index;
  const plan = await runCli(['stack', 'plan', '-c', file, 'shop'], env());
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, /= service shop_web \(unchanged\)/);
  const again = await runCli(['stack', 'deploy', '-c', file, 'shop'], env());
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stdout, /Updating/);
  assert.equal((await docker.services.inspect('shop_web')).Version.Index, before, 'not updated');

  const changed = await compose('s1.yml', { services: { web: web({ environment: { GREETING: 'bonjour' } }), worker: web({ deploy: { replicas: 1 } }) } });
  const plan2 = JSON.parse((await runCli(['stack', 'plan', '-c', changed, 'shop', '--json'], env())).stdout) as {
    services: { action: string; name: string; changes: { path: string; before: unknown; after: unknown }[] }[];
    unchanged: string[];
  };
  assert.deepEqual(plan2.unchanged, ['shop_worker']);
  assert.deepEqual(plan2.services.map((s) => [s.action, s.name]), [['update-service', 'shop_web']]);
  assert.deepEqual(plan2.services[0]!.changes, [{ path: 'TaskTemplate.ContainerSpec.Env', before: ['GREETING=hello'], after: ['GREETING=bonjour'] }]);
  const up = await runCli(['stack', 'deploy', '-c', changed, 'shop', '--timeout', '60s'], env());
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, /Updating service shop_web/);
  const tasks = await docker.tasks.list({ filters: { service: ['shop_web'], 'desired-state': ['running'] } });
  assert.equal(tasks.length, 2);
  assert.ok(tasks.every((t) => t.Spec.ContainerSpec?.Env?.includes('GREETING=bonjour')));
});

test('secrets are named by content: a change rolls out a new one and the old one goes; values never show', async () => {
  const secretFile = join(work.dir, 'db_password');
  await writeFile(secretFile, 's3cr3t-value-one');
  const doc = { services: { web: web({ secrets: ['db_password'] }) }, secrets: { db_password: { file: './db_password' } } };
  const file = await compose('s2.yml', doc);
  const first = await runCli(['stack', 'deploy', '-c', file, 'vault', '--timeout', '60s', '--json'], env());
  assert.equal(first.code, 0, first.stderr);
  const names1 = (await docker.secrets.list()).map((s) => s.Spec.Name);
  assert.equal(names1.length, 1);
  assert.match(names1[0]!, /^vault_db_password-[0-9a-f]{10}$/);
  // Keyed by the host's names key, not the value's bare hash, which anyone could test guesses against.
  assert.ok(!names1[0]!.endsWith(createHash('sha256').update('s3cr3t-value-one').digest('hex').slice(0, 10)));
  const key = Buffer.from((await readFile(join(work.dir, 'state', 'names.key'), 'utf8')).trim(), 'hex');
  assert.equal(names1[0], `vault_db_password-${keyedNameSuffix('vault_db_password', Buffer.from('s3cr3t-value-one'), key)}`);

  await writeFile(secretFile, 's3cr3t-value-two');
  const plan = await runCli(['stack', 'plan', '-c', file, 'vault', '--json'], env());
  const second = await runCli(['stack', 'deploy', '-c', file, 'vault', '--timeout', '60s'], env());
  assert.equal(second.code, 0, second.stderr);
  const names2 = (await docker.secrets.list()).map((s) => s.Spec.Name);
  assert.equal(names2.length, 1, 'the replaced secret was removed after the deploy converged');
  assert.notEqual(names2[0], names1[0]);
  for (const out of [first.stdout, first.stderr, plan.stdout, plan.stderr, second.stdout, second.stderr]) {
    assert.doesNotMatch(out, /s3cr3t-value/);
    assert.doesNotMatch(out, new RegExp(Buffer.from('s3cr3t-value-two').toString('base64')));
  }
  assert.equal((await runCli(['stack', 'rm', 'vault'], env())).code, 0);
  assert.deepEqual(await docker.secrets.list(), []);
});

test('a deploy that cannot converge fails with each failing task\'s error', async () => {
  const file = await compose('s3.yml', { services: { ghost: web({ image: 'stacktest/missing:1', deploy: { replicas: 1 } }) } });
  const r = await runCli(['stack', 'deploy', '-c', file, 'broken', '--timeout', '20s'], env());
  assert.equal(r.code, 15, r.stdout + r.stderr);
  assert.match(r.stderr, /services did not converge within 20 s: broken_ghost: 0\/1 ready; (rejected|failed) on node [0-9a-z]+: No such image: stacktest\/missing:1/);
  await runCli(['stack', 'rm', 'broken'], env());
});

test('--prune removes services that left the stack; stack rm removes the rest', async () => {
  const file = await compose('s1.yml', { services: { web: web({ environment: { GREETING: 'bonjour' } }) } });
  const keep = await runCli(['stack', 'deploy', '-c', file, 'shop', '--detach'], env());
  assert.equal(keep.code, 0, keep.stderr);
  assert.equal((await docker.services.list({ filters: { name: ['shop_worker'] } })).length, 1, 'without --prune, shop_worker stays');
  const pruned = await runCli(['stack', 'deploy', '-c', file, 'shop', '--prune', '--detach'], env());
  assert.match(pruned.stdout, /Removing service shop_worker/);
  assert.equal((await docker.services.list({ filters: { name: ['shop_worker'] } })).length, 0);

  const rm = await runCli(['stack', 'rm', 'shop'], env());
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(dockerCli('stack', 'ls', '--format', '{{.Name}}').trim(), '');
  assert.equal((await docker.networks.list({ filters: { name: ['shop_default'] } })).length, 0);
  const again = await runCli(['stack', 'rm', 'shop'], env());
  assert.equal(again.code, 4);
  assert.match(again.stderr, /nothing found in stack: shop/);
});

test('an image that interpolation makes invalid is refused before anything is created, as docker refuses it', async () => {
  // BADREF_TAG unset: `${BADREF_TAG-:latest}` gives `stacktest/busybox::latest`.
  const file = await compose('bad-image.yml', {
    services: { db: web({ networks: ['back'] }), app: web({ image: 'stacktest/busybox:${BADREF_TAG-:latest}', networks: ['back'] }) },
    networks: { back: {} },
  });
  const env = { DOCKER_HOST: daemon.dockerHost, BADREF_TAG: undefined };
  const message = `${file}: services.app.image: "stacktest/busybox::latest" is not a valid image reference (invalid reference format); it is written "stacktest/busybox:\${BADREF_TAG-:latest}", with BADREF_TAG unset`;
  for (const verb of ['deploy', 'plan']) {
    const r = await runCli(['stack', verb, '-c', file, 'badref'], env);
    assert.equal(r.code, 3, `${verb}: ${r.stdout}${r.stderr}`);
    assert.ok(r.stderr.includes(message), `${verb}: ${r.stderr}`);
    assert.match(r.stderr, /Set BADREF_TAG \(or fix the default in the file\)/);
  }
  const json = await runCli(['stack', 'deploy', '-c', file, 'badref', '--json'], env);
  assert.equal(json.code, 3);
  assert.deepEqual(
    (({ error, reason, subject, exitCode }) => ({ error, reason, subject, exitCode }))(JSON.parse(json.stdout) as Record<string, unknown>),
    { error: 'config', reason: 'compose-image-reference', subject: file, exitCode: 3 },
  );
  // docker refuses the same file the same way: nothing created by either.
  const ref = spawnSync(dockerCliFor(), ['-H', daemon.dockerHost, 'stack', 'deploy', '--resolve-image', 'never', '-c', file, 'badref_docker'], { encoding: 'utf8', env: { PATH: process.env['PATH'] } });
  assert.notEqual(ref.status, 0);
  assert.match(ref.stderr, /invalid image reference for service app: invalid reference format/);
  for (const stack of ['badref', 'badref_docker']) {
    const filters = { label: labelFilter({ 'com.docker.stack.namespace': stack }) };
    assert.deepEqual(await docker.networks.list({ filters }), [], `${stack}: no network`);
    assert.deepEqual(await docker.services.list({ filters }), [], `${stack}: no service`);
  }
  assert.deepEqual((await docker.services.list()).map((s) => s.Spec.Name ?? '').filter((n) => n.startsWith('badref')), []);
});

const LOOP = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'];

/**
 * Specs sent straight to the Engine API with every field the engine has a
 * default for left unset or empty, and fields it does not keep (at every API
 * version, or at older ones): what it stores differs from each, at the
 * fields src/stack/engine-defaults.ts names.
 */
const SPARSE: Record<string, Record<string, unknown>> = {
  bare: { TaskTemplate: { ContainerSpec: { Image: IMAGE, Args: LOOP } } },
  empty: {
    Mode: { Replicated: {} },
    TaskTemplate: {
      ContainerSpec: {
        Image: IMAGE,
        Args: LOOP,
        Privileges: {},
        Mounts: [
          {
            Type: '',
            Source: '/tmp',
            Target: '/a',
            ReadOnly: false,
            Consistency: 'cached',
            BindOptions: { Propagation: '', CreateMountpoint: true, ReadOnlyNonRecursive: true, ReadOnlyForceRecursive: true },
          },
          { Type: 'bind', Source: '/tmp', Target: '/b', BindOptions: { NonRecursive: true } },
          { Type: 'bind', Source: '/tmp', Target: '/c', BindOptions: { Propagation: 'rslave', NonRecursive: false } },
        ],
      },
      RestartPolicy: { Condition: '' },
      LogDriver: { Name: '', Options: {} },
    },
    UpdateConfig: { FailureAction: '', Order: '', Delay: 0, Monitor: 0 },
    RollbackConfig: { Delay: 0, Monitor: 0 },
    EndpointSpec: { Mode: '', Ports: [{ TargetPort: 80, Protocol: '', PublishMode: '' }] },
  },
  job: { Mode: { ReplicatedJob: {} }, TaskTemplate: { ContainerSpec: { Image: IMAGE, Args: ['true'] } } },
  'job-concurrent': { Mode: { ReplicatedJob: { MaxConcurrent: 3 } }, TaskTemplate: { ContainerSpec: { Image: IMAGE, Args: ['true'] } } },
  // Fields of API 1.44 and 1.46: an older engine does not keep them.
  newer: {
    TaskTemplate: {
      ContainerSpec: {
        Image: IMAGE,
        Args: LOOP,
        Privileges: { Seccomp: {}, AppArmor: {}, NoNewPrivileges: true },
        Healthcheck: { Test: ['CMD', 'true'], StartInterval: 2_000_000_000 },
        OomScoreAdj: 100,
        Mounts: [{ Type: 'tmpfs', Target: '/t', TmpfsOptions: { Options: [['exec']] } }],
      },
    },
  },
};

test('the engine completes sparse specs with its defaults: every default of the table seen, and no change to the planner', async () => {
  const apiVersion = await docker.client.apiVersion();
  const sent: NamedServiceSpec[] = Object.entries(SPARSE).map(([name, spec]) => ({ ...spec, Name: `defaults_${name}` }));
  for (const spec of sent) await docker.services.create(spec);
  try {
    const stored = await Promise.all(sent.map((s) => docker.services.inspect(s.Name)));
    const pairs = sent.map((s, i) => ({ sent: s, inspect: stored[i]! }));
    for (const { sent: s, inspect } of pairs) {
      assert.notEqual(JSON.stringify(inspect.Spec), JSON.stringify(s), `${s.Name}: the engine changed the spec`);
      assert.deepEqual(diffSpecs(inspect.Spec, s, apiVersion), [], `${s.Name}: as the engine stores it`);
    }
    assert.deepEqual(unwitnessedRules(pairs, apiVersion).map((r) => r.path), [], `every rule of API ${apiVersion} is seen on this engine`);
    if (recordingEngineSpecs()) await recordEngineSpecs(docker, 'api-sparse-specs', 'test/stack/deploy.test.ts', sent, stored);
  } finally {
    for (const s of sent) await docker.services.delete(s.Name!).catch(() => undefined);
  }
});

const planOf = async (file: string, stack: string): Promise<Plan> => {
  const r = await runCli(['stack', 'plan', '--json', '-c', file, stack], env());
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Plan;
};
const changesOf = (plan: Plan) => plan.services.flatMap((s) => (s.action === 'update-service' ? s.changes.map((c) => [s.name, c.path, c.before, c.after]) : [[s.name, s.action]]));

test('a field set back to its default, or changed by hand where the file leaves it unset, is an update back to the default', async () => {
  const tuned = await compose('r1.yml', {
    services: { app: web({ deploy: { update_config: { parallelism: 1, order: 'start-first' }, restart_policy: { delay: '1s', max_attempts: 3 } } }) },
  });
  const plain = await compose('r2.yml', { services: { app: web({ deploy: { update_config: { parallelism: 1 }, restart_policy: { delay: '1s' } } }) } });
  assert.equal((await runCli(['stack', 'deploy', '-c', tuned, 'resets', '--detach'], env())).code, 0);
  assert.deepEqual(changesOf(await planOf(tuned, 'resets')), [], 'deployed as the file says');

  // The file drops order and max_attempts: the engine's defaults are what it asks for now.
  assert.deepEqual(changesOf(await planOf(plain, 'resets')), [
    ['resets_app', 'TaskTemplate.RestartPolicy.MaxAttempts', 3, 0],
    ['resets_app', 'UpdateConfig.Order', 'start-first', 'stop-first'],
  ]);
  const v1 = (await docker.services.inspect('resets_app')).Version.Index;
  assert.equal((await runCli(['stack', 'deploy', '-c', plain, 'resets', '--detach'], env())).code, 0);
  const after = await docker.services.inspect('resets_app');
  assert.ok(after.Version.Index > v1, 'the service was updated');
  assert.equal(after.Spec.UpdateConfig?.Order, 'stop-first');
  assert.equal(after.Spec.TaskTemplate?.RestartPolicy?.MaxAttempts, 0);
  assert.deepEqual(changesOf(await planOf(plain, 'resets')), []);

  // Changed by hand, where the file leaves both unset: the next deploy puts the defaults back.
  dockerCli('service', 'update', '--detach', '--update-order', 'start-first', '--restart-max-attempts', '5', 'resets_app');
  assert.deepEqual(changesOf(await planOf(plain, 'resets')), [
    ['resets_app', 'TaskTemplate.RestartPolicy.MaxAttempts', 5, 0],
    ['resets_app', 'UpdateConfig.Order', 'start-first', 'stop-first'],
  ]);
  assert.equal((await runCli(['stack', 'deploy', '-c', plain, 'resets', '--detach'], env())).code, 0);
  assert.deepEqual(changesOf(await planOf(plain, 'resets')), []);
  assert.equal((await runCli(['stack', 'rm', 'resets'], env())).code, 0);
});
