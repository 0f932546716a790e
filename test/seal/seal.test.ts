import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Encrypter, armor } from 'age-encryption';
import { seal, unseal, unsealWithIdentity } from '../../src/seal/seal.js';
import { generateSiteIdentity, type SiteIdentity } from '../../src/seal/site-keys.js';

const text = (s: string) => new TextEncoder().encode(s);
const sites = (n: number) => Promise.all(Array.from({ length: n }, () => generateSiteIdentity()));

test('a sealed value opens with the identity it was sealed to, and holds no plaintext', async () => {
  const [a] = await sites(1);
  const value = text('pin=271828\n');
  const sealed = await seal(value, [a!.recipient]);
  assert.equal(new TextDecoder().decode(sealed.subarray(0, 22)), 'age-encryption.org/v1\n');
  assert.equal(Buffer.from(sealed).includes(Buffer.from('271828')), false);
  assert.deepEqual(await unseal(sealed, [a!]), value);
  // Sealing is randomised: the same value sealed twice gives different files.
  assert.notDeepEqual(await seal(value, [a!.recipient]), sealed);
  // An empty value is a value too.
  assert.deepEqual(await unseal(await seal(new Uint8Array(), [a!.recipient]), [a!]), new Uint8Array());
});

test('sealed to three sites, each opens it alone and a fourth is refused, naming the key ids it holds', async () => {
  const [a, b, c, d] = await sites(4);
  const value = text('s3cret');
  const sealed = await seal(value, [a!, b!, c!].map((s) => s.recipient));
  for (const s of [a!, b!, c!]) {
    const opened = await unsealWithIdentity(sealed, [s]);
    assert.deepEqual(opened.plaintext, value);
    assert.equal(opened.openedBy.keyId, s.keyId);
  }
  await assert.rejects(unseal(sealed, [d!], 'secrets/db_password'), (e: { kind: string; reason: string; subject: string; message: string; hint: string }) => {
    assert.equal(e.kind, 'policy');
    assert.equal(e.reason, 'sealed-elsewhere');
    assert.equal(e.subject, 'secrets/db_password');
    assert.equal(e.message, `secrets/db_password is sealed to 3 site recipients, none of the 1 identity this host holds (key ids ${d!.keyId})`);
    assert.match(e.hint, /seal it to this site's recipient too/);
    return true;
  });
});

test('with several identities held (rotation), the one it is sealed to opens it; with two, the lower key id', async () => {
  const [old, current, other] = await sites(3);
  const toNew = await seal(text('v2'), [current!.recipient]);
  assert.equal((await unsealWithIdentity(toNew, [old!, current!])).openedBy.keyId, current!.keyId);
  const toBoth = await seal(text('v1'), [old!.recipient, current!.recipient]);
  const lower = [old!, current!].sort((x, y) => x.keyId.localeCompare(y.keyId))[0]!;
  for (const held of [[old!, current!], [current!, old!]] as SiteIdentity[][]) {
    assert.equal((await unsealWithIdentity(toBoth, held)).openedBy.keyId, lower.keyId, 'every host picks the same, whatever order it lists them in');
  }
  await assert.rejects(unseal(toNew, [old!, other!]), { reason: 'sealed-elsewhere', message: new RegExp(`none of the 2 identities this host holds \\(key ids ${old!.keyId}, ${other!.keyId}\\)`) });
});

test('a changed or cut sealed file fails authentication: sealed-corrupt, not sealed-elsewhere', async () => {
  const [a] = await sites(1);
  const sealed = await seal(text('x'.repeat(100_000)), [a!.recipient]);
  const refusedAsCorrupt = async (bytes: Uint8Array, what: string) =>
    assert.rejects(unseal(bytes, [a!], 'blob'), (e: { kind: string; reason: string; message: string }) => {
      assert.equal(e.kind, 'integrity', what);
      assert.equal(e.reason, 'sealed-corrupt', what);
      assert.match(e.message, /^blob is damaged or was changed after sealing: it fails age's authentication/);
      return true;
    });
  const payloadFlip = Uint8Array.from(sealed);
  payloadFlip[sealed.length - 40]! ^= 1;
  await refusedAsCorrupt(payloadFlip, 'a payload byte flipped');
  await refusedAsCorrupt(sealed.subarray(0, sealed.length - 70_000), 'cut short');
  const headerEnd = Buffer.from(sealed).indexOf('\n--- ') + 5;
  const macFlip = Uint8Array.from(sealed);
  macFlip[headerEnd + 2] = macFlip[headerEnd + 2] === 65 ? 66 : 65;
  await refusedAsCorrupt(macFlip, 'the header MAC changed');
  const bareHeader = sealed.subarray(0, headerEnd);
  await refusedAsCorrupt(bareHeader, 'the header alone');
});

test('what is not age binary is refused as not-sealed: plaintext, armored age', async () => {
  const [a] = await sites(1);
  await assert.rejects(unseal(text('hunter2\n'), [a!], 'secrets/x'), { kind: 'integrity', reason: 'not-sealed', message: 'secrets/x is not an age-sealed file' });
  const e = new Encrypter();
  e.addRecipient(a!.recipient);
  const armored = text(armor.encode(await e.encrypt('hunter2')));
  await assert.rejects(unseal(armored, [a!], 'secrets/x'), { reason: 'not-sealed', message: /it is ASCII-armored/ });
});

test('a file sealed with a passphrase is not for any site', async () => {
  const [a] = await sites(1);
  const e = new Encrypter();
  e.setPassphrase('correct horse battery staple');
  e.setScryptWorkFactor(10);
  await assert.rejects(unseal(await e.encrypt('v'), [a!]), { reason: 'sealed-elsewhere', message: /sealed to 0 site recipients and scrypt, none of the 1 identity/ });
});

test('sealing to nobody or to a malformed recipient is refused', async () => {
  await assert.rejects(seal(text('v'), []), { kind: 'config', reason: 'no-recipients' });
  await assert.rejects(seal(text('v'), ['age1nope']), { kind: 'config', message: /cannot seal to "age1nope": it is not an age recipient/ });
});

test('a changed stanza: for this host it reads as sealed-elsewhere, for another site the header MAC fails', async () => {
  const [a, b] = await sites(2);
  const sealed = await seal(text('v'), [a!.recipient, b!.recipient]);
  // The header: "age-encryption.org/v1", then per recipient "-> X25519 SHARE" and a body line, in the order given.
  const lines = Buffer.from(sealed).toString('latin1').split('\n');
  const firstBody = lines.findIndex((l) => l.startsWith('-> X25519')) + 1;
  const changed = (line: number) => {
    const copy = [...lines];
    copy[line] = (copy[line]![0] === 'A' ? 'B' : 'A') + copy[line]!.slice(1);
    return Uint8Array.from(Buffer.from(copy.join('\n'), 'latin1'));
  };
  const aChanged = changed(firstBody);
  await assert.rejects(unseal(aChanged, [a!]), { reason: 'sealed-elsewhere' });
  await assert.rejects(unseal(aChanged, [b!]), { reason: 'sealed-corrupt' });
  assert.deepEqual(await unseal(sealed, [b!]), text('v'));
});
