import { dirname } from 'node:path';
import { usageError } from '../../errors/index.js';
import { makeDirs } from '../../store/make-dirs.js';
import { generateKeyPair, keyIdOf } from '../../trust/keys.js';
import { publicKeyFile } from '../trust-inputs.js';
import { jsonOpt, stringOpt, type Command } from '../command.js';

export const keyCommands: Command[] = [
  {
    path: ['key', 'generate'],
    summary: 'make an Ed25519 signing key pair',
    usage: 'airlock key generate --out DIR/NAME [--json]',
    details: 'Writes NAME.key (PKCS#8 PEM, mode 0600; keep it on the vendor side) and NAME.pub (SPKI PEM;\ncopy it into each host\'s trust store). Prints the key id.',
    options: { out: stringOpt('o'), ...jsonOpt },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const base = values.out as string | undefined;
      if (!base) throw usageError('--out DIR/NAME is required');
      // Made here, by a walk that ends: generateKeyPair's recursive mkdir spins for ever under /proc.
      makeDirs(dirname(base), { context: `--out ${base}` });
      const pair = await generateKeyPair(base);
      out(json ? JSON.stringify(pair) : `key id ${pair.keyId}\nprivate key: ${pair.privatePath}\npublic key:  ${pair.publicPath}`);
    },
  },
  {
    path: ['key', 'id'],
    summary: "print a key's id",
    usage: 'airlock key id FILE [--json]',
    details: 'FILE is a public (.pub) or private (.key) key; both give the same id.',
    options: { ...jsonOpt },
    args: { min: 1, max: 1 },
    async run({ positionals, json, out }) {
      const keyId = keyIdOf(await publicKeyFile(positionals[0]!));
      out(json ? JSON.stringify({ keyId }) : keyId);
    },
  },
];
