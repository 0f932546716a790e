/**
 * The SSH private key a host's inventory entry names: read, and refused with
 * a hint when it is missing, a public key, encrypted or not a key.
 */
import { readFile } from 'node:fs/promises';
import ssh2 from 'ssh2';
import { configError } from '../errors/index.js';
import { hostLabel, type InventoryHost } from './inventory.js';

export async function readPrivateKey(host: InventoryHost): Promise<Buffer> {
  let privateKey: Buffer;
  try {
    privateKey = await readFile(host.keyFile);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    throw configError(`${hostLabel(host)}: cannot read the SSH key ${host.keyFile}: ${why}`, {
      reason: 'ssh-key',
      subject: host.name,
      hint: 'fix key: in hosts.yml (relative paths are relative to the inventory file)',
    });
  }
  const parsed = ssh2.utils.parseKey(privateKey);
  if (!(parsed instanceof Error) && !parsed.isPrivateKey()) {
    throw configError(`${hostLabel(host)}: ${host.keyFile} is a public key; key: must name the private key`, {
      reason: 'ssh-key',
      subject: host.name,
      hint: `use ${host.keyFile.replace(/\.pub$/, '')} (without .pub)`,
    });
  }
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase/i.test(parsed.message);
    throw configError(`${hostLabel(host)}: ${host.keyFile} is not a usable SSH private key: ${parsed.message}`, {
      reason: 'ssh-key',
      subject: host.name,
      hint: encrypted ? 'airlock needs an unencrypted key file (keep it root-only on the jump box)' : 'give the private key (OpenSSH or PEM format), not the .pub file',
    });
  }
  return privateKey;
}
