import { test } from 'node:test';
import assert from 'node:assert/strict';
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
  isEngineUnreachable,
  isNotFound,
  isOutOfSequence,
  labelFilter,
  resolveDockerHost,
  unixSocketTransport,
} from '../../src/docker/index.js';
import { AirlockError } from '../../src/errors/index.js';
import { fakeDaemon, sendJson, type Handler } from './fake-daemon.js';

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

test('a daemon older than 1.41 is a clear error', async () => {
  await withDaemon(
    (_req, res) => sendJson(res, 200, {}),
    async (docker) => {
      await assert.rejects(docker.system.info(), (e: unknown) => {
        assert.ok(e instanceof DockerError);
        assert.equal(e.reason, 'api-too-old');
        assert.equal(e.exitCode, 15);
        assert.match(e.message, /1\.40 is older than 1\.41/);
        return true;
      });
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
