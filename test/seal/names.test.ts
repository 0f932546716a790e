import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { keyedNameSuffix, namesKey } from '../../src/seal/names.js';
import { generateSiteIdentity } from '../../src/seal/site-keys.js';

const text = (s: string) => new TextEncoder().encode(s);

test('the keyed suffix: 10 hex digits, the same for the same identity and value, new for a new value', async () => {
  const site = await generateSiteIdentity();
  // Another host of the site reads the same identity (a copy of the object stands for it).
  const otherHost = { ...site, source: '/run/credentials/airlock-agent.service/site' };
  const s = keyedNameSuffix('app_dbpass', text('123456'), namesKey(site));
  assert.match(s, /^[0-9a-f]{10}$/);
  assert.equal(keyedNameSuffix('app_dbpass', text('123456'), namesKey(otherHost)), s);
  assert.notEqual(keyedNameSuffix('app_dbpass', text('123457'), namesKey(site)), s);
});

test('the suffix differs across identities and names, and is not the unsalted SHA-256 prefix', async () => {
  const [a, b] = [await generateSiteIdentity(), await generateSiteIdentity()];
  const value = text('123456');
  const sa = keyedNameSuffix('app_dbpass', value, namesKey(a));
  assert.notEqual(keyedNameSuffix('app_dbpass', value, namesKey(b)), sa);
  assert.notEqual(keyedNameSuffix('app_apipin', value, namesKey(a)), sa, 'two objects with one value do not share a suffix');
  assert.notEqual(sa, createHash('sha256').update(value).digest('hex').slice(0, 10));
});

test('without the key, a search of all 6-digit PINs finds nothing; with it, the one value', async () => {
  const site = await generateSiteIdentity();
  const key = namesKey(site);
  const shown = keyedNameSuffix('app_dbpass', text('271828'), key);
  // What an onlooker can compute: the unsalted hash of each guess (as today's names allow).
  let unkeyedHits = 0;
  for (let pin = 0; pin < 1_000_000; pin++) {
    if (createHash('sha256').update(String(pin).padStart(6, '0')).digest('hex').startsWith(shown)) unkeyedHits++;
  }
  assert.equal(unkeyedHits, 0);
  assert.equal(keyedNameSuffix('app_dbpass', text('271828'), key), shown);
  assert.equal(namesKey(site).length, 32);
});
