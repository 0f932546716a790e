import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkConfig } from '../../../src/compose/model.js';
import { convert, compose, service } from './fixtures.js';

const net = (over: Partial<NetworkConfig> = {}): NetworkConfig => ({ driver_opts: {}, external: false, labels: {}, ...over });
const NS = { 'com.docker.stack.namespace': 'shop' };

test('a service naming no network gets <stack>_default: overlay, stack label, service name as alias', () => {
  const out = convert(compose({ services: [service('web')] }));
  assert.deepEqual(out.networks, [{ Name: 'shop_default', CheckDuplicate: true, Driver: 'overlay', Internal: false, Attachable: false, Labels: NS }]);
  assert.deepEqual(out.services[0]!.TaskTemplate?.Networks, [{ Target: 'shop_default', Aliases: ['web'] }]);
});

test('only networks some service uses are created; default only when a service names none', () => {
  const out = convert(
    compose({
      services: [service('web', { networks: { front: null } })],
      networks: { front: net(), unused: net() },
    }),
  );
  assert.deepEqual(out.networks.map((n) => n.Name), ['shop_front']);
});

test('driver, driver_opts, internal, attachable, labels, ipam', () => {
  const out = convert(
    compose({
      services: [service('web', { networks: { back: null } })],
      networks: {
        back: net({
          driver: 'overlay',
          driver_opts: { 'com.docker.network.driver.mtu': '1400', encrypted: '' },
          internal: true,
          attachable: true,
          labels: { tier: 'back', 'com.docker.stack.namespace': 'spoofed' },
          ipam: { driver: 'default', config: [{ subnet: '10.77.0.0/24', gateway: '10.77.0.1', ip_range: '10.77.0.0/25', aux_addresses: { h: '10.77.0.5' } }] },
        }),
      },
    }),
  );
  assert.deepEqual(out.networks, [
    {
      Name: 'shop_back',
      CheckDuplicate: true,
      Driver: 'overlay',
      Internal: true,
      Attachable: true,
      IPAM: { Driver: 'default', Config: [{ Subnet: '10.77.0.0/24', Gateway: '10.77.0.1', IPRange: '10.77.0.0/25', AuxiliaryAddresses: { h: '10.77.0.5' } }] },
      Options: { 'com.docker.network.driver.mtu': '1400', encrypted: '' },
      Labels: { tier: 'back', 'com.docker.stack.namespace': 'shop' },
    },
  ]);
});

test('ipam with only a driver, and ipam with nothing (no IPAM sent, as docker)', () => {
  const out = convert(
    compose({
      services: [service('web', { networks: { a: null, b: null } })],
      networks: { a: net({ ipam: { driver: 'custom', config: [] } }), b: net({ ipam: { config: [] } }) },
    }),
  );
  assert.deepEqual(out.networks.map((n) => n.IPAM), [{ Driver: 'custom' }, undefined]);
});

test('name: is used as written (no prefix), for the network and the attachment', () => {
  const out = convert(compose({ services: [service('web', { networks: { n: null } })], networks: { n: net({ name: 'corp-shared' }) } }));
  assert.equal(out.networks[0]!.Name, 'corp-shared');
  assert.deepEqual(out.services[0]!.TaskTemplate?.Networks, [{ Target: 'corp-shared', Aliases: ['web'] }]);
});

test('external networks are not created; attachments use their name (or key); they are listed for the deployer', () => {
  const out = convert(
    compose({
      services: [service('web', { networks: { ext: null, legacy: null } })],
      networks: { ext: net({ external: true, name: 'proxy' }), legacy: net({ external: true }) },
    }),
  );
  assert.deepEqual(out.networks, []);
  assert.deepEqual(out.external.networks, ['legacy', 'proxy']);
  assert.deepEqual(out.services[0]!.TaskTemplate?.Networks, [
    { Target: 'legacy', Aliases: ['web'] },
    { Target: 'proxy', Aliases: ['web'] },
  ]);
});

test('attachments: sorted by target, written aliases first then the service name', () => {
  const out = convert(
    compose({
      services: [service('api', { networks: { zeta: { aliases: ['z1', 'z2'] }, alpha: null } })],
      networks: { zeta: net(), alpha: net() },
    }),
  );
  assert.deepEqual(out.services[0]!.TaskTemplate?.Networks, [
    { Target: 'shop_alpha', Aliases: ['api'] },
    { Target: 'shop_zeta', Aliases: ['z1', 'z2', 'api'] },
  ]);
});

test('no alias on networks that are not user-defined (host, bridge, none)', () => {
  const out = convert(compose({ services: [service('web', { networks: { h: null } })], networks: { h: net({ external: true, name: 'host' }) } }));
  assert.deepEqual(out.services[0]!.TaskTemplate?.Networks, [{ Target: 'host' }]);
});

test('an undefined network is an error; a fixed address is a warning (Swarm ignores it)', () => {
  const out = convert(
    compose({
      services: [service('web', { networks: { nope: null, n: { aliases: [], ipv4_address: '10.0.0.9' } } })],
      networks: { n: net() },
    }),
  );
  assert.deepEqual(out.notices.map((n) => [n.level, n.path]), [
    ['error', 'services.web.networks.nope'],
    ['warning', 'services.web.networks.n.ipv4_address'],
  ]);
});
