/**
 * A Debian package's own fields, as `dpkg-deb -f` reads them from its
 * control file: what an engine bundle records for each package it carries.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { configError } from '../errors/index.js';
import type { EnginePackage } from './manifest-format.js';

const run = promisify(execFile);

/** Package, Version and Architecture of the .deb file at `path`. */
export async function debFields(path: string): Promise<EnginePackage> {
  let stdout: string;
  try {
    ({ stdout } = await run('dpkg-deb', ['-f', path, 'Package', 'Version', 'Architecture'], { env: { ...process.env, LC_ALL: 'C' } }));
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') {
      throw configError(`dpkg-deb is not installed here: it reads the fields of the packages an engine bundle carries (${path})`, {
        reason: 'dpkg-deb-missing',
        subject: path,
        hint: 'install dpkg (apt-get install dpkg, or the package that provides dpkg-deb on this system) on the build machine',
      });
    }
    throw configError(`${path} is not a Debian package dpkg-deb can read: ${(err.stderr ?? err.message).trim().split('\n')[0]}`, {
      reason: 'engine-not-a-package',
      subject: path,
      hint: 'packages: takes .deb files only; fetch them again (apt-get download, or apt-get install --download-only)',
    });
  }
  const field = (name: string) => new RegExp(`^${name}: *(.+)$`, 'm').exec(stdout)?.[1]?.trim();
  const [name, version, architecture] = [field('Package'), field('Version'), field('Architecture')];
  if (!name || !version || !architecture) {
    throw configError(`${path}: its control file lacks ${[!name && 'Package', !version && 'Version', !architecture && 'Architecture'].filter(Boolean).join(', ')}`, {
      reason: 'engine-not-a-package',
      subject: path,
      hint: 'packages: takes .deb files as the distribution ships them',
    });
  }
  return { name, version, architecture };
}
