/**
 * Sealing a secret to site recipients and opening it with the identities a
 * host holds, in age's binary format (what `age -r` writes and `age -d`
 * reads). Everything is in memory: this module never writes plaintext, or
 * anything else, to disk.
 */
import { Decrypter, Encrypter, type Identity } from 'age-encryption';
import { AirlockError, configError, integrityError, policyError } from '../errors/index.js';
import type { SiteIdentity } from './site-keys.js';

const MAGIC = 'age-encryption.org/v1\n';
const ARMOR = '-----BEGIN AGE ENCRYPTED FILE-----';

/** Encrypts `plaintext` so that any one of `recipients` (age1…) can open it. */
export async function seal(plaintext: Uint8Array, recipients: readonly string[]): Promise<Uint8Array> {
  if (recipients.length === 0) {
    throw configError('nothing to seal to: no site recipient was given', { reason: 'no-recipients', hint: 'give each site\'s NAME.recipient file' });
  }
  const e = new Encrypter();
  for (const r of recipients) {
    try {
      e.addRecipient(r);
    } catch (cause) {
      throw configError(`cannot seal to ${JSON.stringify(r)}: it is not an age recipient (age1…)`, { reason: 'bad-recipient-file', hint: 'give each site\'s NAME.recipient file', cause });
    }
  }
  return e.encrypt(plaintext);
}

export interface Unsealed {
  plaintext: Uint8Array;
  /** The identity that opened it: with several that could, the lowest key id, so every host picks the same. */
  openedBy: SiteIdentity;
}

/** The header's stanza types (`X25519`, `scrypt`, …), read from its text; [] when it has none to read. */
function stanzaTypes(sealed: Uint8Array): string[] {
  const text = new TextDecoder().decode(sealed.subarray(0, Math.min(sealed.length, 64 * 1024)));
  const end = text.indexOf('\n--- ');
  return (end < 0 ? text : text.slice(0, end))
    .split('\n')
    .filter((l) => l.startsWith('-> '))
    .map((l) => l.split(' ')[1] ?? '');
}

function notSealed(sealed: Uint8Array, subject: string): AirlockError | undefined {
  const head = new TextDecoder().decode(sealed.subarray(0, ARMOR.length));
  if (head.startsWith(MAGIC)) return undefined;
  const armored = head === ARMOR;
  return integrityError(`${subject} is not ${armored ? 'in age\'s binary format: it is ASCII-armored' : 'an age-sealed file'}`, {
    reason: 'not-sealed',
    subject,
    hint: armored ? 'airlock seals in age\'s binary format; make it again without `age -a` (or with `airlock bundle build --seal-to`)' : 'the blob was replaced or damaged: build the bundle again',
  });
}

function sealedElsewhere(sealed: Uint8Array, identities: readonly SiteIdentity[], subject: string): AirlockError {
  const types = stanzaTypes(sealed);
  const x25519 = types.filter((t) => t === 'X25519').length;
  const others = types.filter((t) => t !== 'X25519');
  const to = `${x25519} site recipient${x25519 === 1 ? '' : 's'}${others.length > 0 ? ` and ${others.join(', ')}` : ''}`;
  const ids = identities.map((i) => i.keyId).join(', ');
  return policyError(`${subject} is sealed to ${to}, none of the ${identities.length} identit${identities.length === 1 ? 'y' : 'ies'} this host holds (key ids ${ids || 'none'})`, {
    reason: 'sealed-elsewhere',
    subject,
    hint: 'it was sealed for another site: ask the vendor to seal it to this site\'s recipient too (`airlock key id` on your NAME.recipient gives its key id); after a key rotation, keep the old identity beside the new one until no bundle sealed to it is left',
  });
}

/**
 * Tries one identity; `undefined` when it is not among the file's
 * recipients. A marker identity after it tells "not for this identity" (the
 * marker is asked) from a damaged file (any other failure) without reading
 * age's error messages.
 */
async function tryIdentity(sealed: Uint8Array, id: SiteIdentity): Promise<Uint8Array | undefined> {
  let noneMatched = false;
  const marker: Identity = {
    unwrapFileKey: () => {
      noneMatched = true;
      return null;
    },
  };
  const d = new Decrypter();
  d.addIdentity(id.identity);
  d.addIdentity(marker);
  try {
    return await d.decrypt(sealed);
  } catch (e) {
    if (noneMatched) return undefined;
    throw e;
  }
}

/**
 * Opens `sealed` with the first identity (by key id) it is sealed to. Refused:
 * a file that is not age's binary format (`not-sealed`), one sealed to none
 * of `identities` (`sealed-elsewhere`, naming the key ids held), one whose
 * header or payload fails authentication or is cut short (`sealed-corrupt`).
 * `subject` names the blob in messages.
 */
export async function unsealWithIdentity(sealed: Uint8Array, identities: readonly SiteIdentity[], subject = 'sealed blob'): Promise<Unsealed> {
  const wrong = notSealed(sealed, subject);
  if (wrong) throw wrong;
  const ordered = [...identities].sort((a, b) => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0));
  for (const id of ordered) {
    let plaintext: Uint8Array | undefined;
    try {
      plaintext = await tryIdentity(sealed, id);
    } catch (e) {
      throw integrityError(`${subject} is damaged or was changed after sealing: it fails age's authentication (${(e as Error).message})`, {
        reason: 'sealed-corrupt',
        subject,
        hint: 'the sealed blob was changed or cut short after sealing: build and send the bundle again',
        cause: e,
      });
    }
    if (plaintext !== undefined) return { plaintext, openedBy: id };
  }
  throw sealedElsewhere(sealed, identities, subject);
}

/** The plaintext of `sealed`, in memory; refusals as unsealWithIdentity's. */
export async function unseal(sealed: Uint8Array, identities: readonly SiteIdentity[], subject?: string): Promise<Uint8Array> {
  return (await unsealWithIdentity(sealed, identities, subject)).plaintext;
}
