/**
 * The keys a host opens sealed values with and names secrets by: the site
 * identities it holds (read once, and only when a value is sealed or a name
 * is needed, so that bundles without secrets never load age), and the
 * names key (src/seal/names.ts). Nothing here writes a value anywhere.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { link, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { checkPrivateKeyFile, kindOf } from '../config/paths.js';
import { configError } from '../errors/index.js';
import { writeWhole } from '../store/durable.js';
import { namesKeyPathIn } from '../store/state-dir.js';
import { IDENTITY_SUFFIX } from './key-files.js';
import { keyedNameSuffix, namesKey } from './names.js';
import type { SiteIdentity } from './site-keys.js';

/** Where a host keeps its site identities unless told otherwise (the package makes it, root-only). */
export const DEFAULT_SITE_KEYS_DIR = '/etc/airlock/site-keys';

/**
 * The credential id under which systemd's LoadCredential= hands the agent
 * the folder of identities: each file arrives as `site-identity_NAME`. The
 * bare id is the unit's SetCredential= fallback (an empty value when the
 * folder is missing), never an identity.
 */
export const IDENTITY_CREDENTIAL = 'site-identity';

export interface HostKeySources {
  /** Identity files or folders the host was given (--identity, the agent config, systemd credentials): each must exist. */
  given: readonly string[];
  /** Read when nothing is given, and only if it exists and holds identities. */
  fallback?: string;
  /** Where a host without any identity keeps its own names key. */
  stateDir: string;
}

/**
 * The identity paths of a command: `--identity` flags, else AIRLOCK_SITE_KEYS
 * (paths separated by `:`), else none given (the default folder is then
 * read if it holds identities).
 */
export function identityPathsFrom(flags: readonly string[], env: NodeJS.ProcessEnv = process.env): string[] {
  if (flags.length > 0) return [...flags];
  return (env.AIRLOCK_SITE_KEYS ?? '').split(':').filter((p) => p !== '');
}

/** The identities systemd handed a service through LoadCredential=: every `site-identity_NAME` in $CREDENTIALS_DIRECTORY. */
export function credentialIdentities(env: NodeJS.ProcessEnv = process.env): string[] {
  const dir = env.CREDENTIALS_DIRECTORY;
  if (!dir || !existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${IDENTITY_CREDENTIAL}_`))
    .sort()
    .map((f) => join(dir, f));
}

export interface Opened {
  plaintext: Uint8Array;
  /** The names key of the identity that opened it. */
  namesKey: Buffer;
}

const lowestKeyId = (ids: readonly SiteIdentity[]): SiteIdentity => [...ids].sort((a, b) => (a.keyId < b.keyId ? -1 : 1))[0]!;

export class HostKeys {
  private held: Promise<SiteIdentity[]> | undefined;
  private plainKey: Promise<Buffer> | undefined;

  constructor(private readonly sources: HostKeySources) {}

  /** The identities held; refused as readIdentities refuses (missing, open to others, not an identity). */
  identities(): Promise<SiteIdentity[]> {
    this.held ??= this.readHeld();
    return this.held;
  }

  /** Where the identities come from, for messages. */
  describeSources(): string {
    if (this.sources.given.length > 0) return this.sources.given.join(', ');
    return this.sources.fallback ?? 'nowhere';
  }

  private async readHeld(): Promise<SiteIdentity[]> {
    const paths = this.sources.given.length > 0 ? this.sources.given : this.fallbackWithIdentities();
    // age is loaded only when there is an identity to read.
    if (paths.length === 0) return [];
    return (await import('./site-keys.js')).readIdentities(paths);
  }

  /** The fallback folder, when it holds identities. The package makes it empty: none there means none held, not a refusal. */
  private fallbackWithIdentities(): string[] {
    const folder = this.sources.fallback;
    if (folder === undefined || kindOf(folder, 'site identity folder') !== 'folder') return [];
    return readdirSync(folder).some((f) => f.endsWith(IDENTITY_SUFFIX)) ? [folder] : [];
  }

  /** Opens a sealed value in memory; refused as unsealWithIdentity refuses (sealed-elsewhere, sealed-corrupt, not-sealed). */
  async open(sealed: Uint8Array, subject: string): Promise<Opened> {
    const { unsealWithIdentity } = await import('./seal.js');
    const u = await unsealWithIdentity(sealed, await this.identities(), subject);
    return { plaintext: u.plaintext, namesKey: namesKey(u.openedBy) };
  }

  /**
   * The names key for values that arrived in clear: the site's (from its
   * identity with the lowest key id, so every host of the site agrees),
   * else this host's own, made once and kept in the state dir.
   */
  plainNamesKey(): Promise<Buffer> {
    this.plainKey ??= this.identities().then((ids) => (ids.length > 0 ? namesKey(lowestKeyId(ids)) : hostNamesKey(this.sources.stateDir)));
    return this.plainKey;
  }

  /** Names for values that all arrived in clear (`stack deploy` of local files). */
  async plainNames(): Promise<(name: string, value: Uint8Array) => string> {
    const key = await this.plainNamesKey();
    return (name, value) => keyedNameSuffix(name, value, key);
  }
}

const NAMES_KEY_BYTES = 32;

/**
 * This host's own names key (hex in STATE/names.key, 0600), made on first
 * use. Linked into place, so two processes that make one at once end up
 * with the same key.
 */
export async function hostNamesKey(stateDir: string): Promise<Buffer> {
  const path = namesKeyPathIn(stateDir);
  if (!existsSync(path)) {
    await mkdir(stateDir, { recursive: true });
    const tmp = `${path}.${randomBytes(6).toString('hex')}.new`;
    await writeWhole(tmp, randomBytes(NAMES_KEY_BYTES).toString('hex') + '\n', 0o600);
    try {
      await link(tmp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      await rm(tmp, { force: true });
    }
  }
  checkPrivateKeyFile(path, 'names key');
  const key = Buffer.from(readFileSync(path, 'utf8').trim(), 'hex');
  if (key.length !== NAMES_KEY_BYTES) {
    throw configError(`names key ${path} is not ${NAMES_KEY_BYTES} bytes of hex`, {
      reason: 'bad-names-key',
      subject: path,
      hint: 'it was damaged: remove it, and the next apply makes a new one (secrets are then renamed once)',
    });
  }
  return key;
}
