// The scripted sequence of scripts/record-engine: raw Engine API calls over the unix socket, each
// answer written as a fixture. Everything it creates carries the stack label of its own stack
// name and is removed at the end, whatever happened.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { startSharedEngine } from './shared-engine.mjs';

const { values: opt } = parseArgs({ options: { image: { type: 'string' }, archive: { type: 'string' }, out: { type: 'string' }, engine: { type: 'string' } } });
const NS = 'com.docker.stack.namespace';
const stack = `airlock-rec-${process.pid}`;
const labels = { [NS]: stack };

const shared = opt.engine && opt.engine !== 'bookworm' ? await startSharedEngine(opt.engine, { swarm: false }) : undefined;
const host = shared?.host ?? process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
if (!host.startsWith('unix://')) throw new Error(`record-engine: DOCKER_HOST=${host}: only unix:// sockets`);
const socketPath = host.slice('unix://'.length);

let prefix = '';
/** One call; the answer as { status, headers, body } with body parsed when it is JSON. */
function call(method, path, body, { raw = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path: prefix + path, headers: { 'content-type': raw ? 'application/x-tar' : 'application/json' } }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed = text;
        try {
          parsed = text.trim() === '' ? null : JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode, headers: res.headers, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : raw ? body : JSON.stringify(body));
  });
}
async function ok(method, path, body, o) {
  const r = await call(method, path, body, o);
  if (r.status >= 400) throw new Error(`${method} ${path}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

const fixtures = {};
const keep = (name, value) => (fixtures[name] = value);
/** An error answer as the engine sent it, with the request that provoked it. */
const keepError = async (name, method, path, body) => {
  const r = await call(method, path, body);
  if (r.status < 400) throw new Error(`${method} ${path}: expected an error, got HTTP ${r.status}`);
  keep(name, { request: { method, path: path.replace(/\?.*/, '') }, status: r.status, body: r.body });
};

const filter = (f) => encodeURIComponent(JSON.stringify(f));
async function until(what, check, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`record-engine: timed out waiting for ${what}`);
    await sleep(500);
  }
}
const tasksOf = (id) => ok('GET', `/tasks?filters=${filter({ service: [id] })}`);

const made = { services: [], secrets: [], configs: [], networks: [], image: false };
try {
  const ping = await call('GET', '/_ping');
  const apiVersion = ping.headers['api-version'];
  const version = await ok('GET', '/version');
  prefix = `/v${apiVersion}`;
  const infoBefore = await ok('GET', '/info');
  if (infoBefore.Swarm.LocalNodeState !== 'active') {
    if (!shared) throw new Error(`record-engine: the engine at ${host} is in no swarm; record a row with --engine, or use a swarm manager`);
    await keepError('error-503-not-manager', 'GET', '/services');
    await ok('POST', '/swarm/init', { ListenAddr: '127.0.0.1:2377', AdvertiseAddr: '127.0.0.1' });
  }
  const info = await ok('GET', '/info');
  keep('version', version);
  // The fields the stack code and the fake read; the rest names the recording machine.
  keep('info', pick(info, ['ServerVersion', 'OSType', 'Architecture', 'Driver', 'DriverStatus', 'Swarm']));
  keep('nodes', (await ok('GET', '/nodes')).map(({ Description: { TLSInfo: _tls, ...description }, ...n }) => ({ ...n, Description: description })));

  await ok('POST', '/images/load?quiet=1', readFileSync(opt.archive), { raw: true });
  made.image = true;

  const network = { Name: `${stack}_default`, Driver: 'overlay', Attachable: true, Labels: labels };
  const net = keep('network-create', await ok('POST', '/networks/create', network));
  made.networks.push(net.Id);
  keep('network-sent', network);
  keep('network-inspect', await ok('GET', `/networks/${net.Id}`));
  await keepError('error-409-network-exists', 'POST', '/networks/create', { ...network, CheckDuplicate: true });

  const secret = { Name: `${stack}_token`, Labels: labels, Data: Buffer.from('s3cret').toString('base64') };
  const sec = keep('secret-create', await ok('POST', '/secrets/create', secret));
  made.secrets.push(sec.ID);
  keep('secret-inspect', await ok('GET', `/secrets/${sec.ID}`));
  await keepError('error-409-secret-exists', 'POST', '/secrets/create', secret);
  const config = { Name: `${stack}_conf`, Labels: labels, Data: Buffer.from('key: value\n').toString('base64') };
  const cfg = keep('config-create', await ok('POST', '/configs/create', config));
  made.configs.push(cfg.ID);
  keep('config-inspect', await ok('GET', `/configs/${cfg.ID}`));

  // A service as the converter writes one: the engine's answer shows what it fills in.
  const spec = {
    Name: `${stack}_app`,
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: opt.image,
        Labels: labels,
        Env: ['MODE=one'],
        Secrets: [{ File: { Name: 'token', UID: '0', GID: '0', Mode: 0o444 }, SecretID: sec.ID, SecretName: secret.Name }],
        Configs: [{ File: { Name: '/conf.yml', UID: '0', GID: '0', Mode: 0o444 }, ConfigID: cfg.ID, ConfigName: config.Name }],
      },
      Networks: [{ Target: net.Id, Aliases: ['app'] }],
      ForceUpdate: 0,
    },
    Mode: { Replicated: { Replicas: 1 } },
  };
  keep('service-sent', spec);
  const svc = keep('service-create', await ok('POST', '/services/create', spec));
  made.services.push(svc.ID);
  await until('the first task to run', async () => (await tasksOf(svc.ID)).some((t) => t.Status.State === 'running'));
  const created = keep('service-inspect', await ok('GET', `/services/${svc.ID}`));
  keep('tasks-running', await tasksOf(svc.ID));
  keep('service-list-status', await ok('GET', `/services?status=1&filters=${filter({ label: [`${NS}=${stack}`] })}`));

  const next = { ...spec, TaskTemplate: { ...spec.TaskTemplate, ContainerSpec: { ...spec.TaskTemplate.ContainerSpec, Env: ['MODE=two'] } } };
  keep('service-update', await ok('POST', `/services/${svc.ID}/update?version=${created.Version.Index}`, next));
  await keepError('error-out-of-sequence', 'POST', `/services/${svc.ID}/update?version=${created.Version.Index}`, next);
  await until('the updated task to run', async () => {
    const s = await ok('GET', `/services/${svc.ID}`);
    return s.UpdateStatus?.State === 'completed' && (await tasksOf(svc.ID)).some((t) => t.Status.State === 'running' && t.Spec.ContainerSpec.Env?.[0] === 'MODE=two');
  });
  keep('service-inspect-updated', await ok('GET', `/services/${svc.ID}`));
  keep('tasks-updated', await tasksOf(svc.ID));

  // A task that cannot start: its image is not in the engine.
  const missing = { ...spec, Name: `${stack}_broken`, TaskTemplate: { ...spec.TaskTemplate, ContainerSpec: { Image: 'airlock-rec/missing:1', Labels: labels }, Networks: [] } };
  const broken = await ok('POST', '/services/create', missing);
  made.services.push(broken.ID);
  keep('tasks-failed', await until('a task to fail', async () => {
    const tasks = await tasksOf(broken.ID);
    return tasks.some((t) => t.Status.State === 'rejected' || t.Status.State === 'failed') && tasks;
  }));

  await keepError('error-404-service', 'GET', `/services/${stack}_nothing`);
  await keepError('error-404-network', 'GET', `/networks/${stack}_nothing`);
  await keepError('error-404-secret', 'GET', `/secrets/${stack}_nothing`);
  await keepError('error-409-service-exists', 'POST', '/services/create', spec);
} finally {
  for (const id of made.services) await call('DELETE', `/services/${id}`);
  if (made.services.length) await until('the tasks to go', async () => (await ok('GET', `/tasks?filters=${filter({ label: [`${NS}=${stack}`] })}`)).length === 0, 60_000).catch(() => {});
  for (const id of made.secrets) await call('DELETE', `/secrets/${id}`);
  for (const id of made.configs) await call('DELETE', `/configs/${id}`);
  // A network is released a moment after its last task.
  for (const id of made.networks) await until('the network to go', async () => (await call('DELETE', `/networks/${id}`)).status < 400 || undefined, 30_000).catch(() => {});
  if (made.image) await call('DELETE', `/images/${opt.image}?force=1`);
  await shared?.stop();
}

const version = fixtures.version.Version;
const dir = join(opt.out, version);
mkdirSync(dir, { recursive: true });
keep('recording', { engine: version, apiVersion: fixtures.version.ApiVersion, stack, recordedAt: new Date().toISOString().slice(0, 10) });
// The stack name of this run becomes STACK, the image IMAGE: the fake puts its own in.
for (const [name, value] of Object.entries(fixtures)) {
  const text = JSON.stringify(value, null, 2).split(stack).join('STACK').split(opt.image).join('IMAGE');
  writeFileSync(join(dir, `${name}.json`), `${text}\n`);
}
console.log(`record-engine: ${Object.keys(fixtures).length} fixtures of Docker ${version} (API ${fixtures.version.ApiVersion}) in ${dir}`);

function pick(o, keys) {
  return Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k]]));
}
