import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { FileObjectConfig } from '../../../src/compose/model.js';
import { bindObjectIds, convertStack } from '../../../src/compose/convert/index.js';
import { FILES, convert, compose, service } from './fixtures.js';

const obj = (over: Partial<FileObjectConfig> = {}): FileObjectConfig => ({ external: false, labels: {}, ...over });
const hash10 = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 10);
const PW = '/srv/app/db_password.txt';
const CONF = '/srv/app/nginx.conf';

test('a secret is named <stack>_<name>-<10 hex of sha256(content)>, labelled, data base64', () => {
  const out = convert(compose({ services: [service('db')], secrets: { db_password: obj({ file: PW, labels: { owner: 'dba' } }) } }));
  assert.deepEqual(out.secrets, [
    {
      Name: `shop_db_password-${hash10(FILES[PW]!)}`,
      Labels: { owner: 'dba', 'com.docker.stack.namespace': 'shop', 'com.docker.stack.airlock.logical-name': 'db_password' },
      Data: Buffer.from(FILES[PW]!).toString('base64'),
    },
  ]);
  assert.deepEqual(out.notices, []);
});

test('a config the same way, with its template driver', () => {
  const out = convert(compose({ services: [service('web')], configs: { nginx: obj({ file: CONF, template_driver: 'golang' }) } }));
  assert.deepEqual(out.configs, [
    {
      Name: `shop_nginx-${hash10(FILES[CONF]!)}`,
      Labels: { 'com.docker.stack.namespace': 'shop', 'com.docker.stack.airlock.logical-name': 'nginx' },
      Data: Buffer.from(FILES[CONF]!).toString('base64'),
      Templating: { Name: 'golang' },
    },
  ]);
});

test('an explicit name: is kept, with a warning that new content needs a new name', () => {
  const out = convert(compose({ services: [service('db')], secrets: { pw: obj({ file: PW, name: 'db_pw_v3' }) } }));
  assert.equal(out.secrets[0]!.Name, 'db_pw_v3');
  assert.deepEqual(out.notices.map((n) => [n.level, n.path]), [['warning', 'secrets.pw.name']]);
  assert.doesNotMatch(out.notices[0]!.message, /hunter2/);
});

test('external secrets and configs are not created, only referred to by name (or key)', () => {
  const out = convert(
    compose({
      services: [service('web', { secrets: [{ source: 'tls' }], configs: [{ source: 'ca' }] })],
      secrets: { tls: obj({ external: true, name: 'corp_tls_2024' }) },
      configs: { ca: obj({ external: true }) },
    }),
  );
  assert.deepEqual([out.secrets, out.configs], [[], []]);
  assert.deepEqual(out.external, { networks: [], secrets: ['corp_tls_2024'], configs: ['ca'] });
  const c = out.services[0]!.TaskTemplate!.ContainerSpec!;
  assert.equal(c.Secrets![0]!.SecretName, 'corp_tls_2024');
  assert.equal(c.Configs![0]!.ConfigName, 'ca');
});

test('service references: target defaults to the compose name, uid/gid "0", mode 0444; given values kept', () => {
  const out = convert(
    compose({
      services: [
        service('db', {
          secrets: [{ source: 'pw' }, { source: 'pw', target: '/etc/db/pw', uid: '999', gid: '998', mode: 0o400 }],
          configs: [{ source: 'nginx', target: '/etc/nginx/nginx.conf', mode: 0o440 }],
        }),
      ],
      secrets: { pw: obj({ file: PW }) },
      configs: { nginx: obj({ file: CONF }) },
    }),
  );
  const c = out.services[0]!.TaskTemplate!.ContainerSpec!;
  const pwName = `shop_pw-${hash10(FILES[PW]!)}`;
  assert.deepEqual(c.Secrets, [
    { File: { Name: 'pw', UID: '0', GID: '0', Mode: 0o444 }, SecretID: '', SecretName: pwName },
    { File: { Name: '/etc/db/pw', UID: '999', GID: '998', Mode: 0o400 }, SecretID: '', SecretName: pwName },
  ]);
  assert.deepEqual(c.Configs, [
    { File: { Name: '/etc/nginx/nginx.conf', UID: '0', GID: '0', Mode: 0o440 }, ConfigID: '', ConfigName: `shop_nginx-${hash10(FILES[CONF]!)}` },
  ]);
});

// docker sorts references by name: "s_a" before "s_a-b". The content names ("s_a-<hex>", "s_a-b-<hex>")
// could sort either way, so airlock sorts by the name docker would have given.
test('references are sorted by the name docker would give, not by the content name', () => {
  // sha256('beta') starts with f: "s_a-f44e…" sorts after "s_a-b-…" by content name.
  const data: Record<string, string> = { '/x/a': 'beta', '/x/ab': 'two' };
  const out = convertStack({
    stack: 's',
    apiVersion: '1.41',
    fileData: (p) => Buffer.from(data[p]!),
    config: compose({
      services: [service('web', { secrets: [{ source: 'a-b' }, { source: 'a' }] })],
      secrets: { a: obj({ file: '/x/a' }), 'a-b': obj({ file: '/x/ab' }) },
    }),
  });
  const names = out.services[0]!.TaskTemplate!.ContainerSpec!.Secrets!.map((s) => s.SecretName);
  assert.deepEqual(names, [`s_a-${hash10('beta')}`, `s_a-b-${hash10('two')}`]);
});

test('errors: undefined reference, missing file, unreadable file; no secret data in any message', () => {
  const out = convert(
    compose({
      services: [service('web', { secrets: [{ source: 'ghost' }, { source: 'nofile' }] })],
      secrets: { nofile: obj(), gone: obj({ file: '/srv/app/gone.txt' }) },
    }),
  );
  assert.deepEqual(out.notices.map((n) => [n.level, n.path]), [
    ['error', 'secrets.gone.file'],
    ['error', 'secrets.nofile'],
    ['error', 'services.web.secrets[0]'],
  ]);
  assert.match(out.notices[0]!.message, /ENOENT/);
});

test('a name over Swarm\'s 64 characters is an error', () => {
  const out = convert(compose({ services: [service('db')], secrets: { ['p'.repeat(50)]: obj({ file: PW }) } }));
  assert.deepEqual(out.notices.map((n) => [n.level, n.path]), [['error', `secrets.${'p'.repeat(50)}`]]);
  assert.deepEqual(out.secrets, []);
});

test('bindObjectIds fills SecretID/ConfigID by name and names what is missing', () => {
  const out = convert(
    compose({
      services: [service('db', { secrets: [{ source: 'pw' }], configs: [{ source: 'nginx' }] })],
      secrets: { pw: obj({ file: PW }) },
      configs: { nginx: obj({ file: CONF }) },
    }),
  );
  const spec = out.services[0]!;
  const secretName = out.secrets[0]!.Name;
  const bound = bindObjectIds(spec, { secrets: new Map([[secretName, 'sid1']]), configs: new Map() });
  assert.equal(bound.spec.TaskTemplate!.ContainerSpec!.Secrets![0]!.SecretID, 'sid1');
  assert.deepEqual(bound.missing, [`config ${out.configs[0]!.Name}`]);
  assert.equal(spec.TaskTemplate!.ContainerSpec!.Secrets![0]!.SecretID, '', 'the input is not changed');
});

test('two references with the same target are an error, as docker refuses them', () => {
  const out = convert(
    compose({
      services: [service('web', { secrets: [{ source: 'pw' }, { source: 'other', target: 'pw' }], configs: [{ source: 'nginx', target: '/a' }, { source: 'nginx', target: '/a' }] })],
      secrets: { pw: obj({ file: PW }), other: obj({ file: PW }) },
      configs: { nginx: obj({ file: CONF }) },
    }),
  );
  assert.deepEqual(out.notices.map((n) => [n.level, n.path]), [
    ['error', 'services.web.secrets[1]'],
    ['error', 'services.web.configs[1]'],
  ]);
});
