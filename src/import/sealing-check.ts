/**
 * Sealed secrets at import, before anything is stored: a bundle sealed only
 * to other sites, a sealed file that does not open (damaged, or sealed to
 * none of this host's identities), and, where the host requires it, a
 * secret that arrives in clear are refused, with the refusal journaled as
 * any other. Opening here only proves that apply will open them: the values
 * are dropped at once and written nowhere.
 */
import { posix } from 'node:path';
import { policyError } from '../errors/index.js';
import { sealedFiles, type Manifest } from '../bundle/manifest-format.js';
import { secretFilePaths } from '../bundle/secret-files.js';
import type { HostKeys } from '../seal/host-keys.js';

const label = (m: Manifest) => `${m.name} ${m.version}`;

/** From the signed manifest alone: refused when the bundle is sealed to none of the site keys this host holds. */
export async function checkSealedTo(m: Manifest, keys: HostKeys): Promise<void> {
  if (!m.sealedTo?.length) return;
  const held = (await keys.identities()).map((i) => i.keyId);
  if (held.some((k) => m.sealedTo!.includes(k))) return;
  const holds = held.length > 0 ? `holds site key${held.length === 1 ? '' : 's'} ${held.join(', ')} (from ${keys.describeSources()})` : `holds no site identity (looked in ${keys.describeSources()})`;
  throw policyError(`bundle ${label(m)} is sealed to site key${m.sealedTo.length === 1 ? '' : 's'} ${m.sealedTo.join(', ')}; this host ${holds}`, {
    reason: 'sealed-elsewhere',
    subject: label(m),
    hint: "it was sealed for another site: ask the vendor to seal it to this site's recipient too (`airlock key id NAME.recipient` gives its key id); after a key rotation, keep the old identity beside the new one until no bundle sealed to it is left",
  });
}

/**
 * Once every blob checked out: each sealed file opens with an identity held
 * (else sealed-corrupt or sealed-elsewhere), and with `requireSealed`, no
 * stack's secret is a file carried in clear (unsealed-secret).
 */
export async function checkSealedContent(m: Manifest, readBlob: (digest: string) => Buffer, keys: HostKeys, requireSealed: boolean): Promise<void> {
  for (const f of sealedFiles(m)) await keys.open(readBlob(f.digest), `sealed ${f.label} of bundle ${label(m)}`);
  if (requireSealed) checkNoSecretInClear(m, readBlob);
}

/** Refused (unsealed-secret) when a stack's secret is a file the bundle carries in clear, or one the host's variables choose. */
export function checkNoSecretInClear(m: Manifest, readBlob: (digest: string) => Buffer): void {
  const files = new Map(m.files.map((f) => [posix.normalize(f.path), f]));
  for (const stack of m.stacks) {
    const compose = stack.composeFiles.map((f) => ({ name: f.name, text: readBlob(f.digest).toString('utf8') }));
    for (const path of secretFilePaths(compose)) {
      const f = files.get(posix.normalize(path));
      if (f?.sealed) continue;
      // Not carried: the stack's own error, named when it is applied. A path the host's variables choose could name a plain file.
      if (!f && !path.includes('$')) continue;
      const what = f ? `carries ${path}, a secret of stack ${stack.name}, in clear` : `lets variables choose the file of a secret of stack ${stack.name} (${path}), which no seal vouches for`;
      throw policyError(`bundle ${label(m)} ${what}, and this host requires sealed secrets`, {
        reason: 'unsealed-secret',
        subject: label(m),
        hint: "ask the vendor to build it with --seal-to this site's NAME.recipient; to take a bundle built before sealing, say --allow-unsealed (or secrets.requireSealed: false in the agent config), see docs/sealed-secrets.md",
      });
    }
  }
}
