/**
 * The vendor's side of the root of trust: commands that write the TUF metadata a host takes
 * (docs/trust.md). Root and targets keys stay offline (a ceremony adds signatures with
 * `trust sign`); snapshot and timestamp are signed by the online timestamp keys, as often as
 * the vendor wants hosts to see that nothing was withheld.
 */
import { parseDuration } from '../../units/duration.js';
import { basename, dirname } from 'node:path';
import { Metadata, MetadataKind, type Root, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import { configError, usageError } from '../../errors/index.js';
import type { MetadataFile } from '../../trust/root/metadata-file.js';
import type { TufPublicKey, TufSigner } from '../../trust/root/tuf-keys.js';
import type { SignatureCount } from '../../trust/root/repository.js';
import { jsonOpt, str, stringOpt, type Command } from '../command.js';

const many = { type: 'string' as const, multiple: true };
const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : []);

const DAY_MS = 86_400_000;
const MAX_EXPIRY_MS = 3650 * DAY_MS;
export const DEFAULT_EXPIRY_MS = { root: 365 * DAY_MS, targets: 90 * DAY_MS, timestamp: 7 * DAY_MS } as const;
/** The snapshot outlives the timestamp by this much, so a daily timestamp does not rewrite it. */
const SNAPSHOT_MARGIN_MS = DAY_MS;

/** `--expires 365d` / `12h`: how long from now the metadata is valid, in ms. */
export function parseExpiry(value: unknown, fallback: number): number {
  if (typeof value !== 'string') return fallback;
  // Days, or a duration in the compose grammar (12h, 90m, 30s: short lives are for tests and drills).
  const m = /^([1-9][0-9]*)d$/.exec(value);
  let ms = NaN;
  try {
    ms = m ? Number(m[1]) * DAY_MS : parseDuration(value) / 1e6;
  } catch {
    // refused below
  }
  if (!(ms >= 1000 && ms <= MAX_EXPIRY_MS)) {
    throw usageError(`--expires ${value}: not a lifetime airlock takes`, { reason: 'bad-expiry', hint: 'give days, hours, minutes or seconds from 1s up to 3650d, e.g. --expires 365d or --expires 12h' });
  }
  return ms;
}

function required(values: Record<string, unknown>, name: string, what: string): string {
  const v = str(values[name]);
  if (!v) throw usageError(`--${name} ${what} is required`);
  return v;
}

const lib = async () => ({
  ...(await import('../../trust/root/roles-file.js')),
  ...(await import('../../trust/root/tuf-keys.js')),
  ...(await import('../../trust/root/repository.js')),
  ...(await import('../trust-inputs.js')),
});

/** The --key/--sign private keys as TUF signers, each file's mode checked. */
async function signersOf(paths: string[]): Promise<TufSigner[]> {
  const { signingKeyFile, tufSigner } = await lib();
  return Promise.all(paths.map(async (p) => tufSigner(await signingKeyFile(p), p)));
}

/** Refuses a signing key that `root` does not name for `role`: its signature would count for nothing. */
function checkRoleKeys(root: Metadata<Root> | undefined, role: string, signers: TufSigner[]): void {
  if (!root) return;
  const ids = root.signed.roles[role]?.keyIDs ?? [];
  const stray = signers.find((s) => !ids.includes(s.keyId));
  if (stray) {
    throw usageError(`${stray.source} is not a ${role} key of root v${root.signed.version}: its signature would not count`, {
      reason: `not-a-${role}-key`,
      subject: stray.source,
      hint: `sign with a key root.json names for ${role}, or rotate keys with airlock trust root first`,
    });
  }
}

function signAll(md: Metadata<Root | Targets | Snapshot | Timestamp>, signers: TufSigner[]): void {
  for (const s of signers) md.sign(s.sign, true);
}

const summary = (counts: SignatureCount[], countText: (c: SignatureCount) => string) => counts.map((c) => `  ${countText(c)}`);

// ---- trust root -------------------------------------------------------------------------------

interface RoleKeys {
  keys: TufPublicKey[];
  threshold: number;
}

async function roleKeysOption(values: Record<string, unknown>, role: string): Promise<RoleKeys> {
  const { readTufPublicKey } = await lib();
  const paths = list(values[`${role}-key`]);
  if (paths.length === 0) throw usageError(`--${role}-key FILE is required (at least one)`);
  const keys: TufPublicKey[] = [];
  for (const p of paths) {
    const k = await readTufPublicKey(p, { sshsig: false });
    if (!keys.some((o) => o.keyId === k.keyId)) keys.push(k);
  }
  const raw = str(values[`${role}-threshold`]) ?? '1';
  const threshold = /^[1-9][0-9]*$/.test(raw) ? Number(raw) : NaN;
  if (!(threshold <= keys.length)) {
    throw usageError(`--${role}-threshold ${raw}: the ${role} role has ${keys.length} distinct key${keys.length === 1 ? '' : 's'}`, {
      reason: 'bad-threshold',
      hint: `give a whole number from 1 to ${keys.length}, or more --${role}-key files`,
    });
  }
  return { keys, threshold };
}

const rootCommand: Command = {
  path: ['trust', 'root'],
  summary: 'write the next root of trust (keys and thresholds of the root, targets, snapshot and timestamp roles)',
  usage:
    'airlock trust root --repo REPO --root-key A.pub [--root-key ...] [--root-threshold N] --targets-key T.pub [...] [--targets-threshold N] --timestamp-key S.pub [...] [--timestamp-threshold N] [--expires 365d] [--sign K.key ...] [--json]',
  details:
    'Writes REPO/V.root.json and REPO/root.json (the same bytes), V the newest root version in REPO + 1\n' +
    '(1 for a new REPO). Keys are Ed25519 public keys: PEM (airlock key generate) or OpenSSH ssh-ed25519 lines.\n' +
    'Thresholds default to 1. The snapshot role gets the timestamp keys and threshold: both are online keys,\n' +
    'used by airlock trust timestamp. --expires defaults to 365d (days d or hours h).\n\n' +
    'Each --sign private key must be a root key of the new root or of the previous one. The thresholds need\n' +
    'not be reached here: carry the file to an offline ceremony and add signatures with airlock trust sign.\n' +
    'A host takes the new root only when both the previous root\'s threshold and its own are met.',
  options: {
    repo: stringOpt(),
    'root-key': many,
    'root-threshold': stringOpt(),
    'targets-key': many,
    'targets-threshold': stringOpt(),
    'timestamp-key': many,
    'timestamp-threshold': stringOpt(),
    expires: stringOpt(),
    sign: many,
    ...jsonOpt,
  },
  args: { min: 0, max: 0 },
  async run({ values, json, out }) {
    const { VendorRepository, SPEC_VERSION, tufTime, versionedRootFile, ROOT_FILE, countSignatures, countText } = await lib();
    const repo = new VendorRepository(required(values, 'repo', 'REPO'));
    const lifetime = parseExpiry(values.expires, DEFAULT_EXPIRY_MS.root);
    const roles = {
      root: await roleKeysOption(values, 'root'),
      targets: await roleKeysOption(values, 'targets'),
      timestamp: await roleKeysOption(values, 'timestamp'),
    };
    const signers = await signersOf(list(values.sign));
    const previous = repo.newestRoot()?.md;
    const version = (previous?.signed.version ?? 0) + 1;

    const keys: Record<string, object> = {};
    for (const r of Object.values(roles)) for (const k of r.keys) keys[k.keyId] = k.json;
    const role = (r: RoleKeys) => ({ keyids: r.keys.map((k) => k.keyId), threshold: r.threshold });
    const md = Metadata.fromJSON(MetadataKind.Root, {
      signed: {
        _type: 'root',
        spec_version: SPEC_VERSION,
        version,
        expires: tufTime(Date.now() + lifetime),
        consistent_snapshot: false,
        keys,
        roles: { root: role(roles.root), targets: role(roles.targets), snapshot: role(roles.timestamp), timestamp: role(roles.timestamp) },
      },
      signatures: [],
    } as never);

    const rootIds = new Set([...md.signed.roles.root!.keyIDs, ...(previous?.signed.roles.root?.keyIDs ?? [])]);
    const stray = signers.find((s) => !rootIds.has(s.keyId));
    if (stray) {
      throw usageError(`${stray.source} is not a root key of root v${version}${previous ? ` or of root v${previous.signed.version}` : ''}: it cannot sign a root`, {
        reason: 'not-a-root-key',
        subject: stray.source,
        hint: 'sign with the private half of a --root-key (or of a key the previous root names for root)',
      });
    }
    signAll(md, signers);

    const paths = await repo.write(md, versionedRootFile(version), ROOT_FILE);
    const counts = [countSignatures(md, 'root', md), ...(previous ? [countSignatures(previous, 'root', md)] : [])];
    const complete = counts.every((c) => c.have >= c.need);
    if (json) {
      out(JSON.stringify({ version, files: paths, expires: md.signed.expires, signatures: counts, complete }));
      return;
    }
    out([`root v${version} written: ${paths.join(', ')}`, ...summary(counts, countText), ...(complete ? [] : [`add signatures with: airlock trust sign ${paths[0]} --key K.key`])].join('\n'));
  },
};

// ---- trust sign -------------------------------------------------------------------------------

const signCommand: Command = {
  path: ['trust', 'sign'],
  summary: 'add signatures to a trust metadata file in place (root, targets, snapshot or timestamp)',
  usage: 'airlock trust sign FILE --key K.key [--key ...] [--json]',
  details:
    'Signs FILE with each --key (Ed25519 PEM private key), keeping the signatures it holds; a key that\n' +
    'signed it before replaces its own signature. The file is rewritten whole (temp file and rename).\n' +
    'For REPO/N.root.json, REPO/root.json is rewritten too when it holds the same version (and the other\n' +
    'way round). Prints how many signatures each threshold that applies needs and holds.',
  options: { key: many, ...jsonOpt },
  args: { min: 1, max: 1 },
  async run({ positionals, values, json, out }) {
    const { VendorRepository, readKind, versionOfRootFileName, versionedRootFile, ROOT_FILE, countSignatures, countText } = await lib();
    const { readMetadataFile } = await import('../../trust/root/metadata-file.js');
    const file = positionals[0]!;
    const keyPaths = list(values.key);
    if (keyPaths.length === 0) throw usageError('--key K.key is required (at least one)');
    const held: MetadataFile = readMetadataFile(file);
    const signers = await signersOf(keyPaths);
    const md = held.meta.md;
    signAll(md, signers);

    const repo = new VendorRepository(dirname(file));
    const name = basename(file);
    const names = [name];
    const counts: SignatureCount[] = [];
    if (held.meta.kind === 'root') {
      const v = md.signed.version;
      const twin = versionOfRootFileName(name) === v ? ROOT_FILE : name === ROOT_FILE ? versionedRootFile(v) : undefined;
      if (twin && repo.read(twin, 'root')?.md.signed.version === v) names.push(twin);
      const root = md as Metadata<Root>;
      counts.push(countSignatures(root, 'root', md));
      const previous = v > 1 ? repo.rootVersion(v - 1)?.md : undefined;
      if (previous) counts.push(countSignatures(previous, 'root', md));
    } else {
      const rootPath = repo.path(ROOT_FILE);
      const root = (() => {
        try {
          return readKind(rootPath, 'root').md;
        } catch {
          return undefined; // a file signed away from its repository: no threshold to say
        }
      })();
      if (root) counts.push(countSignatures(root, held.meta.kind, md));
    }
    const paths = await repo.write(md, ...names);
    if (json) {
      out(JSON.stringify({ kind: held.meta.kind, version: md.signed.version, files: paths, signedBy: Object.keys(md.signatures), signatures: counts }));
      return;
    }
    out([`${held.meta.kind} v${md.signed.version} signed by ${signers.length} key${signers.length === 1 ? '' : 's'}: ${paths.join(', ')}`, ...summary(counts, countText)].join('\n'));
  },
};

// ---- trust targets ----------------------------------------------------------------------------


const targetsCommand: Command = {
  path: ['trust', 'targets'],
  summary: 'write the next targets metadata: the release roles (who signs which bundles, how many of them)',
  usage: 'airlock trust targets --repo REPO --roles roles.yml --key T.key [--key ...] [--expires 90d] [--json]',
  details:
    'roles.yml:\n' +
    '  roles:\n' +
    '    - name: stacks\n' +
    '      paths: ["stacks/*"]     # bundle paths <kind>/<name>, kind stacks or engine\n' +
    '      threshold: 2\n' +
    '      keys: {alice: keys/alice.pub, bob: keys/bob.pub, carol: keys/carol.pub}\n\n' +
    'Key files (relative to roles.yml) are PEM or OpenSSH public keys (ssh-ed25519, sk-ssh-ed25519).\n' +
    'The first role whose paths match a bundle decides. Writes REPO/targets.json, version + 1, signed by each\n' +
    '--key (targets keys of REPO/root.json). --expires defaults to 90d. Then run airlock trust timestamp.',
  options: { repo: stringOpt(), roles: stringOpt(), key: many, expires: stringOpt(), ...jsonOpt },
  args: { min: 0, max: 0 },
  async run({ values, json, out }) {
    const { VendorRepository, SPEC_VERSION, tufTime, countSignatures, countText, readRolesFile } = await lib();
    const { releaseRolesOf, KEY_NAME_FIELD } = await import('../../trust/root/release-roles.js');
    const repo = new VendorRepository(required(values, 'repo', 'REPO'));
    const rolesPath = required(values, 'roles', 'roles.yml');
    const lifetime = parseExpiry(values.expires, DEFAULT_EXPIRY_MS.targets);
    const keyPaths = list(values.key);
    if (keyPaths.length === 0) throw usageError('--key T.key is required (at least one targets key)');
    const specs = await readRolesFile(rolesPath);
    const signers = await signersOf(keyPaths);
    const root = repo.newestRoot()?.md;
    checkRoleKeys(root, 'targets', signers);

    const keys: Record<string, object> = {};
    for (const s of specs) for (const k of s.keys) keys[k.key.keyId] ??= { ...k.key.json, [KEY_NAME_FIELD]: k.name };
    const version = (repo.read('targets.json', 'targets')?.md.signed.version ?? 0) + 1;
    const md = Metadata.fromJSON(MetadataKind.Targets, {
      signed: {
        _type: 'targets',
        spec_version: SPEC_VERSION,
        version,
        expires: tufTime(Date.now() + lifetime),
        targets: {},
        delegations: {
          keys,
          roles: specs.map((s) => ({ name: s.name, keyids: s.keys.map((k) => k.key.keyId), threshold: s.threshold, paths: s.paths, terminating: true })),
        },
      },
      signatures: [],
    } as never);
    signAll(md, signers);
    // What a host would refuse is refused here, before anything is written.
    releaseRolesOf(md, repo.path('targets.json'));
    const [path] = await repo.write(md, 'targets.json');
    const counts = root ? [countSignatures(root, 'targets', md)] : [];
    if (json) {
      out(JSON.stringify({ version, file: path, expires: md.signed.expires, roles: specs.map((s) => ({ name: s.name, paths: s.paths, threshold: s.threshold, keys: s.keys.map((k) => k.name) })), signatures: counts }));
      return;
    }
    out(
      [
        `targets v${version} written: ${path}`,
        ...specs.map((s) => `  role ${s.name} (${s.paths.join(', ')}): ${s.threshold} of ${s.keys.map((k) => k.name).join(', ')}`),
        ...summary(counts, countText),
        'then: airlock trust timestamp --repo REPO --key S.key',
      ].join('\n'),
    );
  },
};

// ---- trust timestamp --------------------------------------------------------------------------

/** --bundle NAME=VERSION, the version semver. */
async function bundleOptions(values: string[]): Promise<Record<string, string>> {
  const semver = (await import('semver')).default;
  const bundles: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    const name = eq < 0 ? '' : v.slice(0, eq);
    const version = v.slice(eq + 1);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) || semver.valid(version) === null || semver.clean(version) !== version) {
      throw usageError(`--bundle ${v}: give NAME=VERSION, a bundle name and its semantic version, e.g. --bundle demo=1.4.0`, { reason: 'bad-bundle-version' });
    }
    bundles[name] = version;
  }
  return bundles;
}

const timestampCommand: Command = {
  path: ['trust', 'timestamp'],
  summary: 'sign a fresh timestamp (and the snapshot when targets changed): the current version of each bundle',
  usage: 'airlock trust timestamp --repo REPO --key S.key [--key ...] [--bundle NAME=VERSION ...] [--expires 7d] [--json]',
  details:
    'Writes REPO/timestamp.json, version + 1, naming the snapshot and, in its x-airlock field, when it was\n' +
    'issued and the current version of each bundle: the previous timestamp\'s, with each --bundle replacing\n' +
    'its name\'s version. Hosts refuse older releases of those names, and see a freeze by the timestamp\'s age:\n' +
    'run it again (nothing new is fine) well before it expires (--expires, default 7d).\n' +
    'REPO/snapshot.json is written first when it is missing, names another targets version than\n' +
    'REPO/targets.json, or would expire before the new timestamp (it lives a day longer than it).\n' +
    'Both are signed by each --key: the online timestamp keys of REPO/root.json.',
  options: { repo: stringOpt(), key: many, bundle: many, expires: stringOpt(), ...jsonOpt },
  args: { min: 0, max: 0 },
  async run({ values, json, out }) {
    const { VendorRepository, SPEC_VERSION, tufTime, countSignatures, countText } = await lib();
    const { airlockTimestampFields, TIMESTAMP_FIELD } = await import('../../trust/root/timestamp-fields.js');
    const repo = new VendorRepository(required(values, 'repo', 'REPO'));
    const lifetime = parseExpiry(values.expires, DEFAULT_EXPIRY_MS.timestamp);
    const given = await bundleOptions(list(values.bundle));
    const keyPaths = list(values.key);
    if (keyPaths.length === 0) throw usageError('--key S.key is required (at least one timestamp key)');
    const signers = await signersOf(keyPaths);
    const root = repo.newestRoot()?.md;
    checkRoleKeys(root, 'timestamp', signers);
    checkRoleKeys(root, 'snapshot', signers);
    const targets = repo.read('targets.json', 'targets');
    if (!targets) {
      throw configError(`${repo.path('targets.json')} is missing: the snapshot names the targets version`, {
        reason: 'no-targets',
        subject: repo.path('targets.json'),
        hint: 'write it first: airlock trust targets --repo REPO --roles roles.yml --key T.key',
      });
    }
    const now = Date.now();
    const expires = tufTime(now + lifetime);
    const written: string[] = [];

    let snapshot = repo.read('snapshot.json', 'snapshot')?.md;
    const targetsVersion = targets.md.signed.version;
    // Written again when the targets moved, when it would expire first, or when a root rotated the keys that signed it.
    const snapshotStale = (s: NonNullable<typeof snapshot>) => {
      const c = root ? countSignatures(root, 'snapshot', s) : undefined;
      return s.signed.meta['targets.json']?.version !== targetsVersion || Date.parse(s.signed.expires) < Date.parse(expires) || (c !== undefined && c.have < c.need);
    };
    if (!snapshot || snapshotStale(snapshot)) {
      snapshot = Metadata.fromJSON(MetadataKind.Snapshot, {
        signed: {
          _type: 'snapshot',
          spec_version: SPEC_VERSION,
          version: (snapshot?.signed.version ?? 0) + 1,
          expires: tufTime(now + lifetime + SNAPSHOT_MARGIN_MS),
          meta: { 'targets.json': { version: targetsVersion } },
        },
        signatures: [],
      } as never);
      signAll(snapshot, signers);
      written.push(...(await repo.write(snapshot, 'snapshot.json')));
    }

    const previous = repo.read('timestamp.json', 'timestamp');
    const bundles = { ...(previous ? airlockTimestampFields({ source: previous.file.source, meta: { md: previous.md } }).bundles : {}), ...given };
    const issued = tufTime(now);
    const md = Metadata.fromJSON(MetadataKind.Timestamp, {
      signed: {
        _type: 'timestamp',
        spec_version: SPEC_VERSION,
        version: (previous?.md.signed.version ?? 0) + 1,
        expires,
        meta: { 'snapshot.json': { version: snapshot.signed.version } },
        [TIMESTAMP_FIELD]: { issued, bundles },
      },
      signatures: [],
    } as never);
    signAll(md, signers);
    written.push(...(await repo.write(md, 'timestamp.json')));
    const counts = root ? [countSignatures(root, 'timestamp', md)] : [];
    const result = { timestamp: md.signed.version, snapshot: snapshot.signed.version, targets: targetsVersion, issued, expires, bundles, files: written, signatures: counts };
    if (json) {
      out(JSON.stringify(result));
      return;
    }
    const names = Object.entries(bundles).map(([n, v]) => `${n} ${v}`);
    out(
      [
        `timestamp v${result.timestamp} (snapshot v${result.snapshot}, targets v${targetsVersion}) issued ${issued}, expires ${expires}`,
        `written: ${written.join(', ')}`,
        `bundles: ${names.length > 0 ? names.join(', ') : 'none named'}`,
        ...summary(counts, countText),
      ].join('\n'),
    );
  },
};

export const trustVendorCommands: Command[] = [rootCommand, signCommand, targetsCommand, timestampCommand];
