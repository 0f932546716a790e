import { accessSync, constants, readdirSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { denied, kindOf, notAFile, notAFolder, unreadable } from '../config/paths.js';

/** File inside the trust dir that lists revoked key ids, one per line. */
export const REVOKED_FILE = 'revoked';

/** The files of a trust dir that decide what a host trusts: the keys and the revocation list. */
export const isTrustFile = (name: string): boolean => name.endsWith('.pub') || name === REVOKED_FILE;

export interface UnsafePath {
  path: string;
  /** A folder above the trust dir, rather than the dir or one of its files. */
  above: boolean;
  /** What is wrong, as a sentence that names the path. */
  problem: string;
}

/**
 * Whoever can write the trust store can make this host run anything. So the
 * trust dir, its keys and revocation list, and every folder above the dir
 * (which could rename it away) must be owned by root or by the user airlock
 * runs as (the agent's own user under systemd, `User=airlock`), and be
 * writable by no one else: no group or other write bit. A folder above
 * with the sticky bit (such as /tmp) is allowed: others may add entries
 * there, but cannot rename or remove the ones they do not own.
 *
 * The one rule: `doctor` reports it, and the trust store refuses to load
 * while it is broken. Returns what breaks it, empty when nothing does.
 */
export async function unsafeTrustPaths(dir: string, uid = process.geteuid?.() ?? 0): Promise<UnsafePath[]> {
  const owners = new Set([0, uid]);
  const ownerText = uid === 0 ? 'root' : `root or uid ${uid} (the user airlock runs as)`;
  const found: UnsafePath[] = [];
  const check = (path: string, st: { uid: number; mode: number }, above: boolean) => {
    if (!owners.has(st.uid)) found.push({ path, above, problem: `${path} is owned by uid ${st.uid}, not ${ownerText}` });
    if (st.mode & 0o022 && !(above && st.mode & 0o1000)) found.push({ path, above, problem: `${path} is writable by group or others (mode ${(st.mode & 0o7777).toString(8)})` });
  };
  const top = resolve(dir);
  check(dir, await stat(top), false);
  for (const name of (await readdir(top)).filter(isTrustFile).sort()) check(join(dir, name), await stat(join(top, name)), false);
  for (let up = dirname(top); ; up = dirname(up)) {
    check(up, await stat(up), true);
    if (dirname(up) === up) break;
  }
  return found;
}

/** What fixes the paths found: the dir and its files, and each folder above it that was named. */
export function trustStoreFix(dir: string, found: UnsafePath[]): string {
  const above = [...new Set(found.filter((f) => f.above).map((f) => f.path))];
  const own = found.some((f) => !f.above) ? [`chown -R root:root ${dir} && chmod -R go-w ${dir}`] : [];
  return [...own, ...above.map((f) => `chown root:root ${f} && chmod go-w ${f}`)].join('; ');
}

/**
 * The trust store's keys (`*.pub`) and revocation list (`revoked`), sorted,
 * once the store is known to be a folder whose every such file can be read:
 * one that cannot be must stop the command, never be skipped (a skipped
 * `revoked` would trust a revoked key). Undefined for a store that is not
 * there, which the loader refuses in its own words.
 */
export function readableTrustFiles(dir: string): string[] | undefined {
  const kind = kindOf(dir, 'trust store');
  if (kind === 'absent') return undefined;
  if (kind !== 'folder') throw notAFolder(dir, 'trust store', 'point --trust (or AIRLOCK_TRUST_DIR) at the folder that holds the public keys (*.pub)');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if (denied(e)) throw unreadable(dir, 'trust store');
    throw e;
  }
  const files = names.filter(isTrustFile).sort();
  for (const name of files) {
    const path = join(dir, name);
    const what = name.endsWith('.pub') ? 'trusted key' : 'revocation list';
    if (kindOf(path, what) === 'folder') {
      throw notAFile(path, `trust store ${dir}: ${what}`, `move ${path} out of the trust store: it holds keys (*.pub) and the list of revoked ids (${REVOKED_FILE}) as files`);
    }
    try {
      accessSync(path, constants.R_OK);
    } catch (e) {
      if (denied(e)) throw unreadable(path, what, `let the user airlock runs as read it (chmod 644 ${path}: it holds no secret), or run as root`);
      throw e;
    }
  }
  return files;
}
