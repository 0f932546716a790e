import { test } from 'node:test';
import assert from 'node:assert/strict';
import { convert, compose, service } from './fixtures.js';

const NS = 'com.docker.stack.namespace';

test('the smallest service: the spec docker stack deploy sends for image-only', () => {
  const out = convert(compose({ services: [service('web', { image: 'nginx' })] }));
  assert.deepEqual(out.services, [
    {
      Name: 'shop_web',
      Labels: { [NS]: 'shop', 'com.docker.stack.image': 'nginx' },
      TaskTemplate: {
        ContainerSpec: {
          Image: 'nginx:latest',
          Labels: { [NS]: 'shop' },
          Privileges: { CredentialSpec: null, SELinuxContext: null },
        },
        Resources: {},
        Placement: {},
        Networks: [{ Target: 'shop_default', Aliases: ['web'] }],
        ForceUpdate: 0,
      },
      Mode: { Replicated: {} },
      EndpointSpec: {},
    },
  ]);
  assert.deepEqual(out.notices, []);
});

test('labels: deploy.labels on the service, labels on the container; the stack labels win', () => {
  const out = convert(
    compose({
      services: [
        service('web', {
          image: 'acme/web:2',
          labels: { role: 'frontend', [NS]: 'other' },
          deploy: { labels: { 'traefik.enable': 'true', 'com.docker.stack.image': 'spoofed' } },
        }),
      ],
    }),
  );
  const s = out.services[0]!;
  assert.deepEqual(s.Labels, { 'traefik.enable': 'true', [NS]: 'shop', 'com.docker.stack.image': 'acme/web:2' });
  assert.deepEqual(s.TaskTemplate?.ContainerSpec?.Labels, { role: 'frontend', [NS]: 'shop' });
});

test('services keep the model order; names are <stack>_<service>', () => {
  const out = convert(compose({ services: [service('web'), service('api'), service('db')] }), '1.41', 'prod');
  assert.deepEqual(out.services.map((s) => s.Name), ['prod_web', 'prod_api', 'prod_db']);
});

test('a service without an image is an error', () => {
  const { image: _omit, ...noImage } = service('web');
  const out = convert(compose({ services: [noImage] }));
  assert.deepEqual(out.notices.map((n) => [n.level, n.path]), [['error', 'services.web.image']]);
  assert.equal(out.services[0]!.Labels?.['com.docker.stack.image'], '');
});

test('an invalid stack name is an error', () => {
  const out = convert(compose({ services: [service('web')] }), '1.41', 'bad name');
  assert.deepEqual(out.notices.map((n) => [n.level, n.path]), [['error', 'stack']]);
});

test('notices name the compose file when the stack came from one file', () => {
  const out = convert(compose({ services: [service('web', { restart: 'sometimes' })] }));
  assert.equal(out.notices[0]!.file, '/srv/app/compose.yml');
  const merged = convert(compose({ files: ['/a.yml', '/b.yml'], services: [service('web', { restart: 'sometimes' })] }));
  assert.equal(merged.notices[0]!.file, undefined);
});

test('the result is plain JSON: no undefined values anywhere', () => {
  const out = convert(
    compose({
      services: [service('web', { healthcheck: { test: ['CMD', 'true'] }, deploy: { update_config: {}, resources: { limits: {} } } })],
    }),
  );
  const walk = (v: unknown, path: string): void => {
    if (v === undefined) assert.fail(`undefined at ${path}`);
    if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
  };
  walk(out, 'out');
});
