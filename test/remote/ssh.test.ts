/** known_hosts matching and the bounded per-host runner, without a network. */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AirlockError } from '../../src/errors/index.js';
import { parseInventory } from '../../src/remote/inventory.js';
import { forEachHost } from '../../src/remote/for-each-host.js';
import { appendKnownHost, fingerprint, hostMatches, keyType, parseKnownHosts } from '../../src/remote/known-hosts.js';

const dir = await mkdtemp(join(tmpdir(), 'airlock-ssh-'));
after(() => rm(dir, { recursive: true, force: true }));

const blob = (type: string, body = randomBytes(32)) => {
  const t = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(t.length);
  return Buffer.concat([len, t, body]);
};

test('known_hosts: plain, port, wildcard, negated and hashed host fields', () => {
  assert.ok(hostMatches('10.0.0.1', '10.0.0.1'));
  assert.ok(hostMatches('node1,10.0.0.1', '10.0.0.1'));
  assert.ok(!hostMatches('10.0.0.1', '10.0.0.12'));
  assert.ok(!hostMatches('10.0.0.1', '[10.0.0.1]:2222'), 'another port is another host');
  assert.ok(hostMatches('[10.0.0.1]:2222', '[10.0.0.1]:2222'));
  assert.ok(hostMatches('10.0.0.*', '10.0.0.7'));
  assert.ok(!hostMatches('10.0.0.*,!10.0.0.7', '10.0.0.7'));
  assert.ok(hostMatches('Node1', 'node1'));
  const salt = randomBytes(20);
  const hash = createHmac('sha1', salt).update('10.0.0.9').digest('base64');
  assert.ok(hostMatches(`|1|${salt.toString('base64')}|${hash}`, '10.0.0.9'));
  assert.ok(!hostMatches(`|1|${salt.toString('base64')}|${hash}`, '10.0.0.8'));
});

test('known_hosts: markers, comments and bad lines', () => {
  const k = blob('ssh-ed25519');
  const entries = parseKnownHosts(`# comment\n\n10.0.0.1 ssh-ed25519 ${k.toString('base64')} c\n@revoked 10.0.0.2 ssh-ed25519 ${k.toString('base64')}\n@other x y z\nbroken\n`);
  assert.deepEqual(
    entries.map((e) => [e.marker, e.hosts, e.type, e.line]),
    [
      [undefined, '10.0.0.1', 'ssh-ed25519', 3],
      ['@revoked', '10.0.0.2', 'ssh-ed25519', 4],
    ],
  );
  assert.equal(keyType(k), 'ssh-ed25519');
  assert.match(fingerprint(k), /^SHA256:[A-Za-z0-9+/]{43}$/);
});

test('appendKnownHost: creates the file 0600, adds a newline where one is missing, serialises writers', async () => {
  const file = join(dir, 'sub/known_hosts');
  await Promise.all(['a', 'b', 'c'].map((h) => appendKnownHost(file, `${h} ssh-ed25519 AAAA`)));
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.deepEqual((await readFile(file, 'utf8')).split('\n').sort(), ['', 'a ssh-ed25519 AAAA', 'b ssh-ed25519 AAAA', 'c ssh-ed25519 AAAA']);
  const other = join(dir, 'kh2');
  await writeFile(other, 'x ssh-ed25519 AAAA');
  await appendKnownHost(other, 'y ssh-ed25519 BBBB');
  assert.equal(await readFile(other, 'utf8'), 'x ssh-ed25519 AAAA\ny ssh-ed25519 BBBB\n');
});

test('forEachHost: at most N at a time, results in inventory order, one failure does not stop the rest', async () => {
  const names = Array.from({ length: 20 }, (_, i) => `h${i + 1}`);
  const inv = parseInventory(
    'hosts.yml',
    `defaults: { user: root, key: /k }\nhosts:\n${names.map((n, i) => `  ${n}: { address: 10.0.1.${i + 1}, roles: [${i === 0 ? 'manager' : 'worker'}] }`).join('\n')}\n`,
  );
  let running = 0;
  let peak = 0;
  const results = await forEachHost(inv.hosts, 3, async (h, i) => {
    running++;
    peak = Math.max(peak, running);
    await sleep(5 + ((i * 7) % 11));
    running--;
    if (h.name === 'h5') throw new AirlockError('remote', 'h5 (10.0.1.5): connection refused', { reason: 'connection-refused' });
    if (h.name === 'h6') throw new Error('boom');
    return h.address;
  });
  assert.equal(peak, 3);
  assert.deepEqual(results.map((r) => r.host.name), names);
  assert.deepEqual(results.filter((r) => !r.ok).map((r) => [r.host.name, !r.ok && r.error.exitCode]), [['h5', 17], ['h6', 1]]);
  assert.equal(results[0]?.ok && results[0].value, '10.0.1.1');
  const defaulted: number[] = [];
  let now = 0;
  await forEachHost(inv.hosts, undefined, async () => {
    defaulted.push(++now);
    await sleep(5);
    now--;
  });
  assert.equal(Math.max(...defaulted), 8, 'the default is 8');
});
