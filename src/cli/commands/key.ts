import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { usageError } from '../../errors/index.js';
import { makeDirs } from '../../store/make-dirs.js';
import { generateKeyPair, keyIdOf } from '../../trust/keys.js';
import { isSshPublicKeyText } from '../../trust/ssh-keys.js';
import { sshKeyId } from '../../trust/ssh-verifier.js';
import { publicKeyFile } from '../trust-inputs.js';
import { jsonOpt, str, stringOpt, type Command } from '../command.js';

const KINDS = ['signing', 'site'] as const;

/** An age key file (site identity or recipients) rather than a PEM signing key: its first key line says. */
function isAgeKeyFile(path: string): boolean {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return false; // the PEM reader names what is wrong with the file
  }
  return text.split('\n').some((l) => /^\s*(age1|AGE-SECRET-KEY-)/.test(l));
}

/** An OpenSSH public key line's text (authorized_keys form), or undefined for any other file. */
function sshPublicKeyText(path: string): string | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    return isSshPublicKeyText(text) ? text : undefined;
  } catch {
    return undefined;
  }
}

/** Loaded when a site key is asked for: age and its curves cost ~50 ms to load, which signing keys need not pay. */
const siteKeys = () => import('../../seal/site-keys.js');

/** The site key ids of a NAME.recipient or NAME.identity file, one per key in it. */
async function siteKeyIds(path: string): Promise<string[]> {
  const { readIdentityFile, readRecipientFile } = await siteKeys();
  const keys = readFileSync(path, 'utf8').includes('AGE-SECRET-KEY-') ? await readIdentityFile(path) : readRecipientFile(path);
  return keys.map((k) => k.keyId);
}

export const keyCommands: Command[] = [
  {
    path: ['key', 'generate'],
    summary: 'make a signing key pair, or a site key for sealed secrets',
    usage: 'airlock key generate --out DIR/NAME [--kind signing|site] [--json]',
    details:
      "--kind signing (the default): writes NAME.key (Ed25519, PKCS#8 PEM, mode 0600; keep it on the vendor side)\nand NAME.pub (SPKI PEM; copy it into each host's trust store). Prints the key id.\n\n" +
      "--kind site: writes NAME.identity (an age X25519 identity, mode 0600; it stays on the site's hosts, root-only)\nand NAME.recipient (age1…; give it to the vendor, who seals secrets to it). Prints the recipient and its key id.\nSee docs/sealed-secrets.md.",
    options: { out: stringOpt('o'), kind: stringOpt(), ...jsonOpt },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const base = str(values.out);
      if (!base) throw usageError('--out DIR/NAME is required');
      const kind = str(values.kind) ?? 'signing';
      if (!(KINDS as readonly string[]).includes(kind)) throw usageError(`--kind must be ${KINDS.join(' or ')}, not "${kind}"`);
      // Made here, by a walk that ends: generateKeyPair's recursive mkdir spins for ever under /proc.
      makeDirs(dirname(base), { context: `--out ${base}` });
      if (kind === 'site') {
        const site = await (await siteKeys()).writeSiteKeyPair(base);
        out(
          json
            ? JSON.stringify({ kind, ...site })
            : `site key id ${site.keyId}\nrecipient: ${site.recipient}\nidentity:  ${site.identityPath} (keep it on the site's hosts, root-only)\nrecipient file: ${site.recipientPath} (give it to the vendor)`,
        );
        return;
      }
      const pair = await generateKeyPair(base);
      out(json ? JSON.stringify(pair) : `key id ${pair.keyId}\nprivate key: ${pair.privatePath}\npublic key:  ${pair.publicPath}`);
    },
  },
  {
    path: ['key', 'id'],
    summary: "print a key's id",
    usage: 'airlock key id FILE [--json]',
    details:
      'FILE is a public (.pub) or private (.key) signing key; both give the same id. An OpenSSH public key\n' +
        '(ssh-ed25519 or sk-ssh-ed25519 line) gives the id its SSH signatures carry. A site key file\n(NAME.recipient, or NAME.identity, which must be mode 0600) gives the id of each site key in it.',
    options: { ...jsonOpt },
    args: { min: 1, max: 1 },
    async run({ positionals, json, out }) {
      const path = positionals[0]!;
      if (isAgeKeyFile(path)) {
        const keyIds = await siteKeyIds(path);
        out(json ? JSON.stringify({ keyIds }) : keyIds.join('\n'));
        return;
      }
      const ssh = sshPublicKeyText(path);
      const keyId = ssh !== undefined ? sshKeyId(ssh, path) : keyIdOf(await publicKeyFile(path));
      out(json ? JSON.stringify({ keyId }) : keyId);
    },
  },
];
