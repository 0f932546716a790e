import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { Duplex } from 'node:stream';
import {
  Docker,
  DockerClient,
  DockerError,
  OutOfSequenceError,
  asSocketLike,
  chooseApiVersion,
  encodeQuery,
  isConflict,
  isDockerError,
  isEngineUnreachable,
  isNotFound,
  isOutOfSequence,
  labelFilter,
  resolveDockerHost,
  unixSocketTransport,
} from '../../src/docker/index.js';
import { AirlockError } from '../../src/errors/index.js';
import { transience } from '../../src/docker/transient.js';
import { docker1903, fakeDaemon, sendJson, type Handler } from './fake-daemon.js';

async function withDaemon(
  handler: Handler,
  fn: (docker: Docker, requests: string[]) => Promise<void>,
  opts: { apiVersion?: string | null } = {},
) {
  const fake = fakeDaemon(handler, opts);
  await fake.listen();
  const docker = new Docker({ transport: unixSocketTransport(fake.socketPath), endpoint: 'fake', retry: false });
  try {
    await fn(docker, fake.requests);
  } finally {
    await docker.close();
    await fake.close();
  }
}

test('version choice: highest common, capped at 1.51, refused below 1.41', () => {
  assert.equal(chooseApiVersion('1.41'), '1.41');
  assert.equal(chooseApiVersion('1.45'), '1.45');
  assert.equal(chooseApiVersion('1.51'), '1.51');
  assert.equal(chooseApiVersion('1.52'), '1.51');
  assert.equal(chooseApiVersion('2.0'), '1.51');
  assert.throws(() => chooseApiVersion('1.40'), (e: unknown) => e instanceof DockerError && e.reason === 'api-too-old');
  assert.throws(() => chooseApiVersion('banana'), { reason: 'protocol' });
});

test('negotiates from the ping header and prefixes every call', async () => {
  await withDaemon(
    (req, res) => sendJson(res, 200, { ServerVersion: 'fake', Swarm: { LocalNodeState: 'inactive' } }),
    async (docker, requests) => {
      assert.equal(await docker.client.apiVersion(), '1.51');
      await docker.system.info();
      await docker.system.info();
      assert.deepEqual(requests, ['GET /_ping', 'GET /v1.51/info', 'GET /v1.51/info']);
    },
    { apiVersion: '1.53' },
  );
});

test('falls back to /version when the ping has no API-Version header', async () => {
  await withDaemon(
    (req, res) => (req.url === '/version' ? sendJson(res, 200, { ApiVersion: '1.43' }) : sendJson(res, 200, [])),
    async (docker, requests) => {
      await docker.services.list();
      assert.deepEqual(requests, ['GET /_ping', 'GET /version', 'GET /v1.43/services']);
    },
    { apiVersion: null },
  );
});

test('a daemon older than 1.41 is refused before any versioned call, named by its release and where it answers', async () => {
  const fake = docker1903();
  await fake.listen();
  const docker = new Docker({ transport: unixSocketTransport(fake.socketPath), endpoint: 'unix:///old/docker.sock' });
  try {
    await assert.rejects(docker.services.create({ Name: 'web' }), (e: unknown) => {
      assert.ok(e instanceof DockerError);
      assert.equal(e.reason, 'api-too-old');
      assert.equal(e.exitCode, 15);
      assert.equal(e.message, 'Docker Engine 19.03.15 (API 1.40) at unix:///old/docker.sock: airlock needs Docker 20.10 (API 1.41) or newer');
      assert.match(e.hint ?? '', /upgrade Docker Engine to 20\.10 or newer/);
      return true;
    });
    // Asked once, not retried; nothing versioned was sent, so nothing was created.
    assert.deepEqual(fake.requests, ['GET /_ping', 'GET /version']);
  } finally {
    await docker.close();
    await fake.close();
  }
  // An engine that does not say its release is still refused, by its API version.
  await withDaemon(
    (_req, res) => sendJson(res, 200, {}),
    async (docker) => {
      await assert.rejects(docker.system.info(), { reason: 'api-too-old', message: 'Docker Engine (API 1.40) at fake: airlock needs Docker 20.10 (API 1.41) or newer' });
    },
    { apiVersion: '1.40' },
  );
});

test('HTTP errors become typed errors with status and the daemon message', async () => {
  const answers: Record<string, [number, string]> = {
    '/v1.41/images/nope:1/json': [404, JSON.stringify({ message: 'No such image: nope:1' })],
    '/v1.41/networks/create': [409, JSON.stringify({ message: 'network with name x already exists' })],
    '/v1.41/services/web/update?version=7': [
      500,
      JSON.stringify({ message: 'rpc error: code = Unknown desc = update out of sequence' }),
    ],
    '/v1.41/swarm': [
      503,
      JSON.stringify({ message: 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.' }),
    ],
    '/v1.41/secrets/create': [400, 'plain text, not JSON'],
    '/v1.41/configs/c1': [500, JSON.stringify({ message: 'boom' })],
  };
  await withDaemon(
    (req, res) => {
      const [status, body] = answers[req.url ?? ''] ?? [418, '{}'];
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    },
    async (docker) => {
      await assert.rejects(docker.images.inspect('nope:1'), (e: unknown) => {
        assert.ok(isNotFound(e));
        assert.ok(e instanceof AirlockError);
        assert.equal(e.kind, 'notFound');
        assert.equal(e.status, 404);
        assert.equal(e.daemonMessage, 'No such image: nope:1');
        assert.equal(e.subject, 'nope:1');
        assert.equal(e.toJSON()['status'], 404);
        return true;
      });
      assert.equal(await docker.images.find('nope:1'), undefined);
      await assert.rejects(docker.networks.create({ Name: 'x' }), (e: unknown) => {
        assert.ok(isConflict(e));
        assert.equal(e.kind, 'engine');
        assert.equal(e.status, 409);
        return true;
      });
      await assert.rejects(docker.services.update('web', 7, { Name: 'web' }), (e: unknown) => {
        assert.ok(e instanceof OutOfSequenceError);
        assert.ok(isOutOfSequence(e));
        assert.equal(e.outOfSequence, true);
        assert.equal(e.reason, 'out-of-sequence');
        assert.equal(e.status, 500);
        return true;
      });
      await assert.rejects(docker.swarm.inspect(), { reason: 'not-swarm-manager', status: 503 });
      await assert.rejects(docker.secrets.create({ Name: 's', Data: Buffer.from('x') }), {
        reason: 'bad-request',
        status: 400,
        daemonMessage: 'plain text, not JSON',
      });
      await assert.rejects(docker.configs.inspect('c1'), { reason: 'engine-error', status: 500, daemonMessage: 'boom' });
    },
  );
});

test('query and filters are encoded the way the API reads them', async () => {
  await withDaemon(
    (req, res, body) => {
      if (req.url?.startsWith('/v1.41/images/get')) {
        res.writeHead(200, { 'content-type': 'application/x-tar' }).end('tar');
      } else if (req.url === '/v1.41/secrets/create') {
        sendJson(res, 201, { ID: 'sec1', echo: JSON.parse(body.toString()) });
      } else if (req.method === 'DELETE') {
        res.writeHead(204).end();
      } else sendJson(res, 200, []);
    },
    async (docker, requests) => {
      await docker.services.list({ filters: { label: labelFilter({ 'com.docker.stack.namespace': 'app', flag: undefined }), name: 'web' }, status: true });
      await docker.tasks.list({ filters: { service: 'web', 'desired-state': ['running'] } });
      await docker.images.list({ filters: {} });
      const tar = await docker.images.export(['airlock-test/a:1', 'sha256:abc']);
      let got = '';
      for await (const c of tar) got += String(c);
      assert.equal(got, 'tar');
      const created = (await docker.secrets.create({ Name: 's', Data: Buffer.from('hunter2') })) as unknown as {
        echo: { Data: string };
      };
      assert.equal(Buffer.from(created.echo.Data, 'base64').toString(), 'hunter2');
      await docker.services.delete('web');
      const q = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
      assert.deepEqual(requests.slice(1).map(q), [
        'GET /v1.41/services?filters={"label":["com.docker.stack.namespace=app","flag"],"name":["web"]}&status=1',
        'GET /v1.41/tasks?filters={"service":["web"],"desired-state":["running"]}',
        'GET /v1.41/images/json',
        'GET /v1.41/images/get?names=airlock-test/a:1&names=sha256:abc',
        'POST /v1.41/secrets/create',
        'DELETE /v1.41/services/web',
      ]);
    },
  );
  assert.equal(encodeQuery({ a: true, b: false, c: 0, d: undefined, e: null, f: ['x', 'y'] }), '?a=1&b=0&c=0&f=x&f=y');
});

test('an error inside a 200 progress stream fails the load', async () => {
  await withDaemon(
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"status":"Loading layer","id":"1"}\r\n{"stream":"Loaded ima');
      res.end('ge: a:1\\n"}\r\n{"errorDetail":{"message":"no space left on device"},"error":"no space left on device"}\r\n');
    },
    async (docker) => {
      const seen: string[] = [];
      await assert.rejects(
        docker.images.loadAll(Buffer.from('tar'), { onProgress: (m) => seen.push(m.status ?? m.stream ?? '') }),
        { reason: 'stream-error', daemonMessage: 'no space left on device' },
      );
      assert.deepEqual(seen, ['Loading layer', 'Loaded image: a:1\n']);
    },
  );
});

test('retries while the daemon is not up yet, then succeeds', async () => {
  const fake = fakeDaemon((_req, res) => sendJson(res, 200, { ApiVersion: '1.41' }));
  const retries: number[] = [];
  const docker = new Docker({
    transport: unixSocketTransport(fake.socketPath),
    retry: { initialDelayMs: 20, maxDelayMs: 100, maxElapsedMs: 5000 },
    onRetry: (e) => {
      assert.ok(isEngineUnreachable(e.error));
      retries.push(e.attempt);
    },
  });
  const late = setTimeout(() => void fake.listen(), 300);
  try {
    const v = await docker.system.version();
    assert.equal(v.ApiVersion, '1.41');
    assert.ok(retries.length >= 2, `retried ${retries.length} times`);
  } finally {
    clearTimeout(late);
    await docker.close();
    await fake.close();
  }
});

test('the retry budget is bounded', async () => {
  const docker = new Docker({
    transport: unixSocketTransport('/nonexistent/airlock/docker.sock'),
    endpoint: 'unix:///nonexistent/airlock/docker.sock',
    retry: { initialDelayMs: 20, maxDelayMs: 50, maxElapsedMs: 300 },
  });
  const t0 = Date.now();
  await assert.rejects(docker.system.info(), (e: unknown) => {
    assert.ok(isEngineUnreachable(e));
    assert.equal(e.code, 'ENOENT');
    assert.match(e.message, /unix:\/\/\/nonexistent\/airlock\/docker\.sock/);
    return true;
  });
  const took = Date.now() - t0;
  assert.ok(took >= 200 && took < 2000, `took ${took} ms`);
  await docker.close();
});

test('a connection dropped mid-request is retried for GET only', async () => {
  let drops = 0;
  const fake = fakeDaemon((req, res) => {
    if (drops++ % 2 === 0) return void req.socket.destroy();
    sendJson(res, 200, req.method === 'GET' ? { ServerVersion: 'x' } : { ID: 'n1' });
  });
  await fake.listen();
  const docker = new Docker({ transport: unixSocketTransport(fake.socketPath), retry: { initialDelayMs: 10 } });
  try {
    await docker.client.apiVersion(); // the ping is answered by the fake itself
    assert.equal((await docker.system.info()).ServerVersion, 'x');
    await assert.rejects(docker.networks.create({ Name: 'n' }), (e: unknown) => isEngineUnreachable(e));
    assert.deepEqual(fake.requests.slice(1), ['GET /v1.41/info', 'GET /v1.41/info', 'POST /v1.41/networks/create']);
  } finally {
    await docker.close();
    await fake.close();
  }
});

const NO_SWARM = 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';
const MANAGER_PREPARING = 'This node is not a swarm manager. Manager is being prepared or has trouble connecting to the cluster.';
const WORKER = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
const LOCKED = 'Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.';
const CONN_CLOSING = 'rpc error: code = Canceled desc = grpc: the client connection is closing';
const CANCELED = 'rpc error: code = Canceled desc = context canceled';
const TRANSPORT_CLOSING = 'rpc error: code = Unavailable desc = transport is closing';
const DIAL_FAILED = 'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing dial unix /var/run/docker/swarm/control.sock: connect: no such file or directory"';
const RAFT_STOPPED = 'rpc error: code = Unknown desc = raft: failed to process the request: node is stopped';
const LOST_LEADER = 'rpc error: code = Unknown desc = raft: failed to process the request: node lost leader status';
const NO_LEADER = "rpc error: code = Unknown desc = The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.";

test('which answers of a stopping or starting dockerd are worth another try, and whether the daemon may have acted', () => {
  const cases: [number, string, boolean, ReturnType<typeof transience>][] = [
    [503, MANAGER_PREPARING, false, 'not-done'],
    [503, NO_SWARM, false, undefined], // a host outside a swarm says it for good
    [503, NO_SWARM, true, 'not-done'], // from a manager: its swarm component stopped
    [503, WORKER, false, undefined],
    [503, WORKER, true, 'not-done'],
    [503, 'This node is not part of a swarm', true, 'not-done'],
    [503, LOCKED, true, undefined],
    [503, TRANSPORT_CLOSING, false, 'maybe-done'],
    [503, DIAL_FAILED, false, 'not-done'],
    [500, RAFT_STOPPED, false, 'not-done'],
    [500, NO_LEADER, false, 'not-done'],
    [500, CONN_CLOSING, false, 'not-done'],
    [500, CANCELED, false, 'maybe-done'],
    [500, LOST_LEADER, false, 'maybe-done'],
    [500, 'rpc error: code = Unknown desc = update out of sequence', true, undefined],
    [500, 'boom', true, undefined],
    [409, 'service web already exists', true, undefined],
  ];
  for (const [status, message, manager, want] of cases) assert.equal(transience(status, message, manager), want, `${status} ${message} (manager seen: ${manager})`);
});

/** A daemon that answers each `METHOD /path` with its script of error answers in turn, then with `ok`. */
function scriptedDaemon(scripts: Record<string, [number, string][]>, ok: (req: IncomingMessage) => unknown) {
  const seen = new Map<string, number>();
  return fakeDaemon((req, res) => {
    const key = `${req.method} ${(req.url ?? '').replace(/^\/v[\d.]+/, '').replace(/\?.*/, '')}`;
    const n = seen.get(key) ?? 0;
    seen.set(key, n + 1);
    const answer = scripts[key]?.[n];
    if (answer) return sendJson(res, answer[0], { message: answer[1] });
    sendJson(res, 200, ok(req));
  });
}

const FAST = { initialDelayMs: 10, maxDelayMs: 20, maxElapsedMs: 5_000 };

test('503s and the 500s of a stopping swarm are retried; a create goes again only after an answer that says nothing was done', async () => {
  const fake = scriptedDaemon(
    {
      'GET /services': [[503, TRANSPORT_CLOSING], [500, CONN_CLOSING], [500, NO_LEADER]],
      'POST /services/create': [[503, MANAGER_PREPARING], [500, RAFT_STOPPED], [500, CONN_CLOSING], [503, DIAL_FAILED]],
    },
    (req) => (req.method === 'GET' ? [] : { ID: 's1' }),
  );
  await fake.listen();
  const retries: string[] = [];
  const docker = new Docker({ transport: unixSocketTransport(fake.socketPath), retry: FAST, onRetry: (e) => retries.push(`${e.error.status} ${e.error.daemonMessage}`) });
  try {
    assert.deepEqual(await docker.services.list(), []);
    assert.deepEqual(await docker.services.create({ Name: 'web' }), { ID: 's1' });
    assert.deepEqual(retries, [`503 ${TRANSPORT_CLOSING}`, `500 ${CONN_CLOSING}`, `500 ${NO_LEADER}`, `503 ${MANAGER_PREPARING}`, `500 ${RAFT_STOPPED}`, `500 ${CONN_CLOSING}`, `503 ${DIAL_FAILED}`]);
    assert.equal(fake.requests.filter((r) => r === 'POST /v1.41/services/create').length, 5);
  } finally {
    await docker.close();
    await fake.close();
  }
});

test('a call that is not safe to repeat is not sent again after an answer after which the daemon may have acted', async () => {
  const fake = scriptedDaemon(
    {
      'POST /services/create': [[500, CANCELED]],
      'POST /services/web/update': [[503, TRANSPORT_CLOSING]],
      'POST /networks/create': [[500, LOST_LEADER]],
      'GET /configs/c1': [[500, 'boom']],
    },
    () => ({ ID: 'x' }),
  );
  await fake.listen();
  const docker = new Docker({ transport: unixSocketTransport(fake.socketPath), endpoint: 'unix:///run/docker.sock', retry: FAST });
  try {
    await assert.rejects(docker.services.create({ Name: 'web' }), {
      status: 500,
      daemonMessage: CANCELED,
      message: `Docker Engine at unix:///run/docker.sock stopped or restarted during POST /v1.41/services/create and may have done it, so it was not sent again (HTTP 500: ${CANCELED})`,
    });
    await assert.rejects(docker.services.update('web', 3, { Name: 'web' }), { status: 503, reason: 'unavailable', message: /^Docker Engine at unix:\/\/\/run\/docker\.sock stopped or restarted during POST .*\/services\/web\/update\?version=3 and may have done it/ });
    await assert.rejects(docker.networks.create({ Name: 'n' }), { status: 500, daemonMessage: LOST_LEADER });
    // Any other 500 is the daemon's answer, not a passing state: not retried, even for a GET.
    await assert.rejects(docker.configs.inspect('c1'), { status: 500, daemonMessage: 'boom' });
    assert.deepEqual(fake.requests.slice(1), ['POST /v1.41/services/create', 'POST /v1.41/services/web/update?version=3', 'POST /v1.41/networks/create', 'GET /v1.41/configs/c1']);
  } finally {
    await docker.close();
    await fake.close();
  }
});

test('"not a swarm manager" is final from an engine never seen as a manager, and a restart from one that was; a locked swarm is final', async () => {
  const fake = scriptedDaemon(
    {
      'GET /services': [[503, NO_SWARM]],
      'POST /services/create': [[503, NO_SWARM], [503, WORKER]],
      'POST /secrets/create': [[503, LOCKED]],
    },
    (req) => (req.method === 'GET' ? [] : { ID: 'x' }),
  );
  await fake.listen();
  const docker = new Docker({ transport: unixSocketTransport(fake.socketPath), retry: FAST });
  try {
    // At once, with the hint for a host outside a swarm.
    await assert.rejects(docker.services.list(), (e: unknown) => isDockerError(e, 'not-swarm-manager') && /create the swarm first/.test(e.hint ?? ''));
    assert.deepEqual(await docker.nodes.list(), []); // it serves as a manager now
    assert.deepEqual(await docker.services.create({ Name: 'web' }), { ID: 'x' });
    await assert.rejects(docker.secrets.create({ Name: 's', Data: Buffer.from('x') }), { status: 503, daemonMessage: LOCKED });
    assert.deepEqual(fake.requests.slice(1), ['GET /v1.41/services', 'GET /v1.41/nodes', ...Array(3).fill('POST /v1.41/services/create'), 'POST /v1.41/secrets/create']);
  } finally {
    await docker.close();
    await fake.close();
  }
});

test('a daemon that stays not ready is given up on after maxElapsedMs, with an error that names the engine', async () => {
  const fake = fakeDaemon((_req, res) => sendJson(res, 503, { message: MANAGER_PREPARING }));
  await fake.listen();
  const docker = new Docker({ transport: unixSocketTransport(fake.socketPath), endpoint: 'unix:///run/docker.sock', retry: { initialDelayMs: 20, maxDelayMs: 100, maxElapsedMs: 600 } });
  const t0 = Date.now();
  try {
    await assert.rejects(docker.services.list(), (e: unknown) => {
      assert.ok(e instanceof DockerError);
      assert.equal(e.exitCode, 15);
      assert.equal(e.status, 503);
      assert.equal(e.daemonMessage, MANAGER_PREPARING);
      assert.match(e.message, new RegExp(`^Docker Engine at unix:///run/docker\\.sock is stopping, restarting or not ready: it still answered "${MANAGER_PREPARING.replace(/\./g, '\\.')}" after 0\\.\\d s of retries \\(GET /v1\\.41/services: HTTP 503\\)$`));
      assert.match(e.hint ?? '', /systemctl status docker/);
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took >= 400 && took < 2000, `gave up after ${took} ms`);
    assert.ok(fake.requests.length > 4, `${fake.requests.length} requests`);
  } finally {
    await docker.close();
    await fake.close();
  }
});

test('a bare Duplex (like an ssh2 channel) works as a transport', async () => {
  const fake = fakeDaemon((_req, res) => sendJson(res, 200, { ServerVersion: 'via-duplex' }));
  await fake.listen();
  let opened = 0;
  const docker = new Docker({
    endpoint: 'ssh://fake',
    transport: async () => {
      const sock = await unixSocketTransport(fake.socketPath)();
      opened++;
      // No setNoDelay/ref/unref here, as with ssh2's forwarded stream.
      const bare = Duplex.from({ readable: sock, writable: sock });
      assert.equal((bare as unknown as { ref?: unknown }).ref, undefined);
      return bare;
    },
  });
  try {
    assert.equal((await docker.system.info()).ServerVersion, 'via-duplex');
    assert.equal(docker.endpoint, 'ssh://fake');
    assert.ok(opened >= 1);
  } finally {
    await docker.close();
    await fake.close();
  }
});

test('asSocketLike adds no-op socket methods and keeps real ones', () => {
  const bare = asSocketLike(new Duplex({ read() {}, write(_c, _e, cb) { cb(); } }));
  assert.equal(bare.setNoDelay(true), bare);
  assert.equal(bare.setKeepAlive(true, 1000), bare);
  assert.equal(bare.ref(), bare);
  assert.equal(bare.unref(), bare);
  const sock = new net.Socket();
  const unref = sock.unref;
  assert.equal(asSocketLike(sock).unref, unref);
  sock.destroy();
});

test('a transport that throws a typed error is not retried and keeps its error', async () => {
  let calls = 0;
  const docker = new Docker({
    transport: async () => {
      calls++;
      throw new AirlockError('remote', 'ssh: authentication failed', { reason: 'ssh-auth' });
    },
  });
  await assert.rejects(docker.system.info(), { kind: 'remote', reason: 'ssh-auth' });
  assert.equal(calls, 1);
  await docker.close();
});

test('DOCKER_HOST: unix sockets are accepted, anything else is a config error', () => {
  assert.equal(resolveDockerHost({}).endpoint, 'unix:///var/run/docker.sock');
  assert.equal(resolveDockerHost({ DOCKER_HOST: 'unix:///run/user/0/docker.sock' }).endpoint, 'unix:///run/user/0/docker.sock');
  assert.throws(() => resolveDockerHost({ DOCKER_HOST: 'tcp://10.0.0.1:2375' }), { kind: 'config', reason: 'docker-host' });
  assert.throws(() => resolveDockerHost({ DOCKER_HOST: 'unix://relative.sock' }), { kind: 'config' });
});

test('a pinned API version skips negotiation', async () => {
  const fake = fakeDaemon((_req, res) => sendJson(res, 200, []));
  await fake.listen();
  const client = new DockerClient({ transport: unixSocketTransport(fake.socketPath), apiVersion: '1.44' });
  try {
    await new Docker(client).networks.list();
    assert.deepEqual(fake.requests, ['GET /v1.44/networks']);
    assert.throws(() => new DockerClient({ apiVersion: '1.30' }), { reason: 'api-too-old' });
  } finally {
    await client.close();
    await fake.close();
  }
});
