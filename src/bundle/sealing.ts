/**
 * What `bundle build` seals, and to whom (docs/sealed-secrets.md): every file
 * behind a stack's `secrets:` and every file or env file the definition marks
 * `sensitive`, to every site recipient of `seal_to:` / `--seal-to`. age is
 * loaded only when there is someone to seal to, so a bundle without sealed
 * files pays nothing for it.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { configError } from '../errors/index.js';
import type { SiteRecipient } from '../seal/site-keys.js';
import type { BundleDefinition } from './definition.js';
import { secretFiles, type SecretFile } from './secret-files.js';

export interface Sealing {
  /** Each recipient once; [] when the bundle is sealed to no site. */
  recipients: SiteRecipient[];
  /** Whether the `files:` entry with this dest is sealed. */
  sealsFile: (dest: string) => boolean;
  /** Whether this env file of this stack is sealed. */
  sealsEnvFile: (stack: string, name: string) => boolean;
  /** Secret files carried in clear, because the bundle is sealed to no site: the build warns of them. */
  inClear: SecretFile[];
}

const secretLabel = (s: SecretFile) => `${s.compose}: secrets.${s.secret}.file "${s.file}"`;

/**
 * Reads the recipients and finds each stack's secret files. Refused when
 * sealing: a secret whose `file:` the build cannot resolve (it holds `$`, or
 * lies outside the bundle), and one that no `files:` entry (nor the stack's
 * env files) carries, since it would travel nowhere, or in clear.
 */
export async function planSealing(def: BundleDefinition): Promise<Sealing> {
  const recipients = def.sealTo.length === 0 ? [] : (await import('../seal/site-keys.js')).readRecipients(def.sealTo);
  const files = new Set(def.files.filter((f) => f.sensitive).map((f) => f.dest));
  const envFiles = new Set(def.stacks.flatMap((s) => s.envFiles.filter((e) => e.sensitive).map((e) => `${s.name}\0${e.name}`)));
  const carried = new Set(def.files.map((f) => f.dest));
  const inClear: SecretFile[] = [];
  for (const stack of def.stacks) {
    const texts = await Promise.all(stack.compose.map(async (f) => ({ name: f.name, text: await readFile(f.path, 'utf8') })));
    for (const s of secretFiles(texts)) {
      if (recipients.length === 0) {
        inClear.push(s);
        continue;
      }
      if (s.path === null) {
        throw configError(`${secretLabel(s)} ${s.file.includes('$') ? 'holds a variable, so the build cannot tell which file to seal' : 'lies outside the bundle'}`, {
          reason: 'secret-file-unresolved',
          subject: s.compose,
          hint: `write the path of the secret's file relative to the bundle root (as its files: dest in ${def.file}), without variables`,
        });
      }
      // The host reads extra files before a stack's own env files by the same path (src/apply/bundle-files.ts).
      if (carried.has(s.path)) files.add(s.path);
      else if (stack.envFiles.some((e) => e.name === s.path)) envFiles.add(`${stack.name}\0${s.path}`);
      else {
        throw configError(`${secretLabel(s)} of stack ${stack.name} names ${s.path}, which no files: entry of ${def.file} carries`, {
          reason: 'secret-not-in-bundle',
          subject: s.compose,
          hint: `add it under files: with dest: ${s.path} (the path is relative to the bundle root, not to the compose file)`,
        });
      }
    }
  }
  return { recipients, sealsFile: (dest) => files.has(dest), sealsEnvFile: (stack, name) => envFiles.has(`${stack}\0${name}`), inClear };
}

/** The warning a build sealed to no site gives when secrets travel in clear; undefined when none do. */
export function inClearWarning(sealing: Sealing): string | undefined {
  if (sealing.inClear.length === 0) return undefined;
  const files = [...new Set(sealing.inClear.map((s) => s.path ?? s.file))];
  return (
    `the bundle carries ${files.length} secret file${files.length === 1 ? '' : 's'} in clear (${files.join(', ')}): it is sealed to no site, so whoever holds the bundle can read ` +
    `${files.length === 1 ? 'it' : 'them'}, and hosts that require sealed secrets will refuse it; seal with --seal-to SITE.recipient or seal_to: in the definition`
  );
}

/**
 * Seals source files in memory. It keeps the SHA-256 of each plaintext (in
 * memory only, never in the manifest) to refuse a bundle that would carry the
 * same bytes in clear elsewhere.
 */
export class Sealer {
  private readonly plaintexts = new Map<string, string>();

  constructor(private readonly recipients: readonly SiteRecipient[]) {}

  /** The sealed bytes of `path`; `label` names it should the same bytes be carried in clear. */
  async seal(path: string, label: string): Promise<Uint8Array> {
    const { seal } = await import('../seal/seal.js');
    const plaintext = await readFile(path);
    try {
      this.plaintexts.set(createHash('sha256').update(plaintext).digest('hex'), label);
      return await seal(plaintext, this.recipients.map((r) => r.recipient));
    } finally {
      plaintext.fill(0);
    }
  }

  /** Refuses when a blob carried in clear holds what some sealed file holds. */
  checkNoneInClear(blobs: readonly { digest: string; kind: string }[], labelOf: (digest: string) => string | undefined): void {
    for (const b of blobs) {
      const sealed = this.plaintexts.get(b.digest.slice('sha256:'.length));
      if (sealed === undefined) continue;
      const plain = labelOf(b.digest) ?? `a ${b.kind} blob`;
      throw configError(`${plain} holds the same bytes as the sealed ${sealed}: the bundle would carry the secret in clear`, {
        reason: 'secret-in-clear',
        subject: plain,
        hint: `mark ${plain} sensitive: true in the definition so it is sealed too, or remove it`,
      });
    }
  }
}
