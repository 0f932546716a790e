/**
 * A node's certificate and the root it trusts, read from the files its engine
 * keeps below DockerRootDir: on this host from the disk, on an inventory host
 * over the SSH session's SFTP.
 */
import { readFile } from 'node:fs/promises';
import type { Docker } from '../docker/index.js';
import { AirlockError } from '../errors/index.js';
import { hostLabel } from '../remote/inventory.js';
import { sftpReadFile } from '../remote/sftp-calls.js';
import { certificateOf, nodeCertPath, rootCaPath, type CertificateFacts } from './certificates.js';
import type { HostConnection } from './connect.js';

export interface HostCertificates {
  node: CertificateFacts;
  ca: CertificateFacts;
}

const unreadable = (where: string, path: string, e: unknown) =>
  new AirlockError('config', `${where}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
    reason: 'certificate-unreadable',
    subject: path,
    hint: "the engine keeps the node's swarm certificate there; reading it needs root",
  });

async function readBoth(dockerRootDir: string, where: string, read: (path: string) => Promise<Buffer>): Promise<HostCertificates> {
  const one = async (path: string) => certificateOf(await read(path).catch((e: unknown) => Promise.reject(unreadable(where, path, e))), `${where}: ${path}`);
  return { node: await one(nodeCertPath(dockerRootDir)), ca: await one(rootCaPath(dockerRootDir)) };
}

/** This host's: the engine says where its data root is. */
export async function localCertificates(docker: Docker): Promise<HostCertificates> {
  const info = await docker.system.info({ retry: false });
  return readBoth(info.DockerRootDir, 'this host', (path) => readFile(path));
}

/** An inventory host's, over its SSH session. */
export async function hostCertificates(c: HostConnection): Promise<HostCertificates> {
  const info = await c.docker.system.info();
  const sftp = await c.session.sftp();
  try {
    return await readBoth(info.DockerRootDir, hostLabel(c.host), (path) => sftpReadFile(sftp, path));
  } finally {
    sftp.end();
  }
}
