/**
 * `airlock bundle sign`: one more signature on a built bundle, by an airlock
 * PEM key or an OpenSSH key (a private key file, or the public key of a key
 * ssh-agent holds, hardware-backed ones included).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { signatureError, usageError } from '../../errors/index.js';
import { addSignatures, ed25519Signer, sshSigner, type ManifestSigner } from '../../bundle/add-signature.js';
import { checkNotAFolder, checkPrivateKeyFile } from '../../config/paths.js';
import { isOpenSshPrivateKeyText, isSshPublicKeyText, parseSshPublicKey } from '../../trust/ssh-keys.js';
import { signingKeyFile } from '../trust-inputs.js';
import { jsonOpt, type Command } from '../command.js';

const run = promisify(execFile);

async function textOf(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined; // the PEM loader says what is wrong with the file (not found, unreadable)
  }
}

/** The public half of an OpenSSH private key: KEY.pub beside it, else what `ssh-keygen -y` derives (asking for a passphrase if it has one). */
async function sshPublicKeyText(keyFile: string): Promise<{ text: string; source: string }> {
  const beside = await textOf(`${keyFile}.pub`);
  if (beside !== undefined) return { text: beside, source: `${keyFile}.pub` };
  try {
    const { stdout } = await run('ssh-keygen', ['-y', '-f', keyFile], { encoding: 'utf8' });
    return { text: stdout, source: `ssh-keygen -y -f ${keyFile}` };
  } catch (e) {
    throw signatureError(`cannot read the public key of ${keyFile} with ssh-keygen -y: ${((e as { stderr?: string }).stderr ?? (e as Error).message).trim()}`, {
      reason: 'ssh-sign-failed',
      subject: keyFile,
      hint: `put the public key beside it as ${keyFile}.pub, or check the passphrase`,
    });
  }
}

/** The signer a --key file names: an OpenSSH private key, an OpenSSH public key (signed through ssh-agent), or a PEM Ed25519 key. */
async function signerFor(path: string): Promise<ManifestSigner> {
  checkNotAFolder(path, 'signing key', 'give the key file itself');
  const text = await textOf(path);
  if (text !== undefined && isOpenSshPrivateKeyText(text)) {
    checkPrivateKeyFile(path, 'signing key');
    const pub = await sshPublicKeyText(path);
    return sshSigner(path, parseSshPublicKey(pub.text, pub.source));
  }
  if (text !== undefined && isSshPublicKeyText(text)) return sshSigner(path, parseSshPublicKey(text, path));
  return ed25519Signer(await signingKeyFile(path), path);
}

export const bundleSignCommands: Command[] = [
  {
    path: ['bundle', 'sign'],
    summary: 'add a signature to a built bundle',
    usage: 'airlock bundle sign BUNDLE --key KEY [--key KEY ...] [--json]',
    details:
      'Adds one signature per --key to manifest.sig; the signatures already there stay (a key that signed before\n' +
      'has its signature replaced). No other byte of the bundle changes. KEY is an airlock signing key (NAME.key),\n' +
      'an OpenSSH private key (signed with ssh-keygen -Y sign -n airlock; its public key is KEY.pub, or ssh-keygen -y),\n' +
      "or an OpenSSH public key (.pub) whose private key ssh-agent holds, as for hardware-backed sk-ssh-ed25519 keys.\n" +
      'Sign before splitting: the parts of a split bundle are not signed again.',
    options: { key: { type: 'string' as const, multiple: true }, ...jsonOpt },
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out }) {
      const bundle = positionals[0]!;
      const keys = Array.isArray(values.key) ? values.key : [];
      if (keys.length === 0) throw usageError('--key KEY is required: the key that adds its signature', { hint: 'give --key once per key that signs' });
      const signers: ManifestSigner[] = [];
      for (const key of keys) signers.push(await signerFor(key));
      const { records } = await addSignatures(bundle, signers);
      const signersOut = records.map((r) => ({ keyId: r.keyId, algorithm: r.algorithm }));
      out(json ? JSON.stringify({ bundle, signers: signersOut }) : [`${bundle} is signed by:`, ...signersOut.map((s) => `  ${s.keyId} (${s.algorithm})`)].join('\n'));
    },
  },
];
