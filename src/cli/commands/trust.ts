/**
 * The host's side of a root of trust: install the vendor's root, take new trust metadata, and
 * show what the host trusts and how fresh its word from the vendor is (docs/trust.md).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { trustError, usageError } from '../../errors/index.js';
import { updateTrust } from '../../import/trust-update.js';
import { stateDirFrom } from '../../store/state-dir.js';
import type { HeldMetadata } from '../../trust/root/accept.js';
import { freshnessOf } from '../../trust/root/freshness.js';
import { labelOf, readMetadataFile, type MetadataFile } from '../../trust/root/metadata-file.js';
import { releaseRolesOf } from '../../trust/root/release-roles.js';
import { checkSelfSigned, ROOT_FILE, TrustState } from '../../trust/root/trust-state.js';
import { writeWhole } from '../../store/durable.js';
import { trustDirFrom } from '../../trust/trust-store.js';
import { freshnessWarnOption } from '../duration-option.js';
import { boolOpt, jsonOpt, str, stringOpt, type Command } from '../command.js';

const dirs = (values: Record<string, unknown>) => ({ trustDir: trustDirFrom(str(values.trust)), stateDir: stateDirFrom(str(values.state)) });


/** A root to install: a root, signed by its own threshold, not expired. */
function checkInstallable(path: string): MetadataFile {
  const f = readMetadataFile(path);
  if (f.meta.kind !== 'root') throw usageError(`${path} holds ${f.meta.kind} metadata; trust install takes a root (root.json or N.root.json)`);
  const root = f as HeldMetadata['root'];
  checkSelfSigned(root);
  if (root.meta.md.signed.isExpired(new Date())) throw trustError(`${path}: root v${root.meta.md.signed.version} expired at ${root.meta.md.signed.expires}`, { reason: 'metadata-expired', subject: path });
  return f;
}

function statusOf(trustDir: string, stateDir: string, warnMs: number) {
  if (!TrustState.installedIn(trustDir)) return { mode: 'simple' as const, trustDir };
  const state = TrustState.load(trustDir, stateDir);
  const h = state.held;
  const meta = (f: MetadataFile | undefined) => (f ? { version: f.meta.md.signed.version, expires: f.meta.md.signed.expires, file: f.source } : null);
  const releaseKeys = h.targets ? [...releaseRolesOf(h.targets.meta.md, h.targets.source).keys] : [];
  const roles = Object.values(h.targets?.meta.md.signed.delegations?.roles ?? {}).map((r) => ({
    name: r.name,
    paths: r.paths ?? [],
    threshold: r.threshold,
    keys: releaseKeys.filter(([, k]) => k.roles.includes(r.name)).map(([id, k]) => ({ keyId: id, type: k.key.type, ...(k.name ? { name: k.name } : {}) })),
  }));
  const rootRoles = Object.fromEntries(Object.entries(h.root.meta.md.signed.roles).map(([name, r]) => [name, { threshold: r.threshold, keys: r.keyIDs.length }]));
  const freshness = freshnessOf(state, warnMs);
  const ts = state.freshness();
  return {
    mode: 'root' as const,
    trustDir,
    stateDir: state.dir,
    root: { ...meta(h.root)!, roles: rootRoles },
    targets: meta(h.targets),
    snapshot: meta(h.snapshot),
    timestamp: meta(h.timestamp),
    releaseRoles: roles,
    freshness: { status: freshness.status, says: freshness.says, ...(ts ? { bundles: ts.bundles } : {}) },
  };
}

function statusText(s: ReturnType<typeof statusOf>): string {
  if (s.mode === 'simple') return `simple mode: ${s.trustDir} holds no root.json; bundles are checked against the *.pub keys there`;
  const line = (kind: string, m: { version: number; expires: string } | null) => `${kind.padEnd(10)} ${m ? `v${m.version}, expires ${m.expires}` : 'none held'}`;
  const lines = [
    `root of trust: ${s.trustDir}/${ROOT_FILE}; metadata held in ${s.stateDir}`,
    `${line('root', s.root)} (${Object.entries(s.root.roles).map(([n, r]) => `${n} ${r.threshold} of ${r.keys}`).join(', ')})`,
    line('targets', s.targets),
    line('snapshot', s.snapshot),
    line('timestamp', s.timestamp),
    'release roles:',
    ...s.releaseRoles.map((r) => `  ${r.name} (${r.paths.join(', ')}): ${r.threshold} of ${r.keys.map((k) => (k.name ? `${k.name} ${k.keyId}` : k.keyId)).join(', ')}`),
    `freshness: ${s.freshness.status}: ${s.freshness.says}`,
  ];
  if (s.freshness.bundles) lines.push(`current: ${Object.entries(s.freshness.bundles).map(([n, v]) => `${n} ${v}`).join(', ') || 'none'}`);
  return lines.join('\n');
}

export const trustCommands: Command[] = [
  {
    path: ['trust', 'install'],
    summary: "install the vendor's root of trust on this host",
    usage: 'airlock trust install ROOT.json [--trust DIR] [--force] [--json]',
    details:
      "Copies ROOT.json (the vendor's root: N.root.json or root.json, carried in on the installation medium) to\nTRUST_DIR/root.json, after checking it is a root signed by its own threshold and not expired. From then on\nthe host takes release keys from the vendor's trust metadata only (docs/trust.md), not from *.pub files.\nAn installed root is replaced only with --force; later roots arrive as metadata (airlock trust update).",
    options: { trust: stringOpt(), force: boolOpt(), ...jsonOpt },
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out }) {
      const { trustDir } = dirs(values);
      const f = checkInstallable(positionals[0]!);
      const target = join(trustDir, ROOT_FILE);
      const same = existsSync(target) && readFileSync(target).equals(f.bytes);
      if (existsSync(target) && !same && values.force !== true) {
        throw usageError(`${target} holds a root already`, { reason: 'root-installed', subject: target, hint: 'later roots arrive as trust metadata (airlock trust update, or the inbox); replace the installed one only with --force' });
      }
      if (!same) await writeWhole(target, f.bytes);
      const root = f.meta.md.signed as { version: number; expires: string };
      out(json ? JSON.stringify({ installed: target, version: root.version, expires: root.expires, changed: !same }) : `${same ? 'already installed' : 'installed'}: ${labelOf(f)} at ${target} (expires ${root.expires})`);
    },
  },
  {
    path: ['trust', 'update'],
    summary: 'take new trust metadata (roots, targets, snapshot, timestamp)',
    usage: 'airlock trust update FILE... [--trust DIR] [--state DIR] [--json]',
    details:
      "Checks the files as one batch, in TUF's order (every new root along the chain, then targets, snapshot and\ntimestamp, each by its role's threshold; nothing expired; no version going back; a timestamp not issued in\nthe future), then keeps them in STATE/trust/, apart from the journal. All or nothing; journaled either way.\nThe agent does the same with such files in its inbox.",
    options: { trust: stringOpt(), state: stringOpt(), ...jsonOpt },
    args: { min: 1, max: 64 },
    async run({ positionals, values, json, out }) {
      const { trustDir, stateDir } = dirs(values);
      const r = await updateTrust(trustDir, stateDir, positionals);
      out(json ? JSON.stringify(r) : `${r.taken.length > 0 ? `took ${r.taken.join(', ')}` : 'nothing new: already held'}${r.unchanged.length > 0 ? ` (unchanged: ${r.unchanged.join(', ')})` : ''}`);
    },
  },
  {
    path: ['trust', 'status'],
    summary: 'what this host trusts, and how fresh its timestamp is',
    usage: 'airlock trust status [--trust DIR] [--state DIR] [--warn-age 72h] [--json]',
    details: 'The mode (simple: trusted.d keys; root: the vendor metadata), the versions and expiries held, the release\nroles with their thresholds and keys, and the newest timestamp: stale when older than --warn-age (a freeze).',
    options: { trust: stringOpt(), state: stringOpt(), 'warn-age': stringOpt(), ...jsonOpt },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const { trustDir, stateDir } = dirs(values);
      const s = statusOf(trustDir, stateDir, freshnessWarnOption('warn-age', values['warn-age']));
      out(json ? JSON.stringify(s) : statusText(s));
    },
  },
];
