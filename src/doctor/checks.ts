import { existsSync } from 'node:fs';
import { asAirlockError } from '../errors/index.js';
import { freeSpaceAt, type FreeSpace } from '../store/free-space.js';
import { TrustStore } from '../trust/trust-store.js';
import { DEFAULT_FRESHNESS_WARN_MS, freshnessOf } from '../trust/root/freshness.js';
import type { TrustState } from '../trust/root/trust-state.js';
import { hostKeysOf, type SealingOptions } from '../seal/sealing-options.js';
import { MAX_API_VERSION, imageStoreOf, type Docker, type SystemInfo } from '../docker/index.js';
import { DEFAULT_CERT_WARN_MS, expiryWarning, timeLeft } from '../cluster/certificates.js';
import { localCertificates } from '../cluster/host-certs.js';
import { durationText } from '../units/duration.js';

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
  hint?: string;
}

export interface DoctorInput {
  docker: Docker;
  stateDir: string;
  trustDir: string;
  /** Free space below this fails the check. */
  minFreeBytes?: number;
  /** Where the site identities are, and the sealed-secret policy. */
  sealing?: SealingOptions;
  /** Warn of a swarm certificate this close to its end (default 30 days). */
  certWarnMs?: number;
  /** With a root of trust: warn when the newest timestamp is older than this (default 72h). */
  freshnessWarnMs?: number;
}

const GiB = 1024 ** 3;

/**
 * Checks a host can take bundles: each check is independent, so one failure
 * (say, no engine) still lets the others report.
 */
export async function runChecks(input: DoctorInput): Promise<CheckResult[]> {
  const results = [...(await engineChecks(input.docker, input.certWarnMs ?? DEFAULT_CERT_WARN_MS))];
  results.push(await freeSpace(input.stateDir, input.minFreeBytes ?? 2 * GiB));
  const trust = await trustStore(input.trustDir, input.stateDir);
  results.push(trust.result);
  if (trust.store?.root) results.push(trustFreshness(trust.store.root, input.freshnessWarnMs ?? DEFAULT_FRESHNESS_WARN_MS));
  results.push(await siteKeys(input.stateDir, input.sealing));
  return results;
}

async function engineChecks(docker: Docker, certWarnMs: number): Promise<CheckResult[]> {
  let api: string;
  try {
    api = await docker.client.apiVersion({ retry: false });
  } catch (e) {
    const err = asAirlockError(e);
    return [{ name: 'engine', status: 'fail', detail: err.message, hint: err.hint ?? 'start dockerd, or set DOCKER_HOST=unix:///path/to/docker.sock' }];
  }
  const info = await docker.system.info({ retry: false });
  const results: CheckResult[] = [
    { name: 'engine', status: 'pass', detail: `Docker ${info.ServerVersion} at ${docker.endpoint}` },
    {
      name: 'api version',
      status: 'pass',
      detail: `using ${api}${api === MAX_API_VERSION ? '' : ` (the engine's highest; airlock speaks up to ${MAX_API_VERSION})`}`,
    },
    imageStore(info),
  ];
  const swarm = info.Swarm;
  if (swarm.LocalNodeState === 'active') {
    results.push({ name: 'swarm', status: 'pass', detail: `active, ${swarm.ControlAvailable ? 'manager' : 'worker'} (node ${swarm.NodeID})` });
    results.push(await swarmCertificates(docker, certWarnMs));
  } else {
    results.push({
      name: 'swarm',
      status: 'warn',
      detail: swarm.LocalNodeState,
      hint: "stacks need a swarm: 'airlock cluster up' from the jump box, or the agent's first-boot join",
    });
  }
  return results;
}

/** This node's swarm certificate and the root CA it trusts: when they end, warned within the margin. */
async function swarmCertificates(docker: Docker, marginMs: number): Promise<CheckResult> {
  const name = 'certificates';
  try {
    const { node, ca } = await localCertificates(docker);
    const warnings = [expiryWarning('the node certificate', node.notAfter, marginMs), expiryWarning('the swarm root CA', ca.notAfter, marginMs)].filter((w) => w !== null);
    const detail = `node certificate expires ${node.notAfter} (${timeLeft(node.notAfter)}), root CA ${ca.notAfter} (${timeLeft(ca.notAfter)})`;
    if (warnings.length === 0) return { name, status: 'pass', detail: `${detail}; warned within ${durationText(marginMs)}` };
    return {
      name,
      status: 'warn',
      detail: `${warnings.join('; ')}`,
      hint: 'a running node renews its certificate by itself; rotate the root CA with airlock cluster certs --rotate; a node left off past its certificate cannot rejoin (docs/operations.md)',
    };
  } catch (e) {
    const err = asAirlockError(e);
    return { name, status: 'warn', detail: err.message, ...(err.hint ? { hint: err.hint } : {}) };
  }
}

/** Which image store, and on the classic store whether its driver is the one Docker supports best. */
function imageStore(info: SystemInfo): CheckResult {
  if (imageStoreOf(info) === 'containerd') return { name: 'image store', status: 'pass', detail: `containerd (snapshotter ${info.Driver}); images are named by manifest digest` };
  return info.Driver === 'overlay2'
    ? { name: 'image store', status: 'pass', detail: 'classic, storage driver overlay2' }
    : { name: 'image store', status: 'warn', detail: `classic, storage driver ${info.Driver}`, hint: 'overlay2 is the driver Docker supports best; vfs copies every layer in full' };
}

async function freeSpace(stateDir: string, min: number): Promise<CheckResult> {
  let space: FreeSpace;
  try {
    space = await freeSpaceAt(stateDir);
  } catch {
    return { name: 'free space', status: 'fail', detail: `cannot read ${stateDir}` };
  }
  const detail = `${(space.free / GiB).toFixed(1)} GiB free at ${space.dir}`;
  return space.free >= min
    ? { name: 'free space', status: 'pass', detail }
    : { name: 'free space', status: 'fail', detail, hint: `airlock wants ${(min / GiB).toFixed(0)} GiB free for bundles; run 'airlock prune' or grow the disk` };
}

/**
 * Anyone who can write the trust store can make this host run anything.
 * Judged by loading it as import and apply do, so doctor fails exactly what
 * they would refuse: an owner or mode that lets others write
 * (src/trust/permissions.ts), a key that does not parse, a revocation list
 * with a line that is not a key id.
 */
async function trustStore(dir: string, stateDir: string): Promise<{ result: CheckResult; store?: TrustStore }> {
  const name = 'trust store';
  if (!existsSync(dir)) return { result: { name, status: 'fail', detail: `${dir} does not exist`, hint: 'create it (root:root, 0755) and put the vendor public keys (*.pub) in it, or the vendor root (airlock trust install)' } };
  let store: TrustStore;
  try {
    store = await TrustStore.load(dir, { stateDir });
  } catch (e) {
    const err = asAirlockError(e);
    return { result: { name, status: 'fail', detail: err.message, ...(err.hint ? { hint: err.hint } : {}) } };
  }
  if (store.root) {
    // What a bundle would meet: expired or incomplete metadata fails here as it would refuse there.
    try {
      const roles = store.root.releaseRoles();
      const h = store.root.held;
      return { store, result: { name, status: 'pass', detail: `root of trust v${h.root.meta.md.signed.version} (${dir}); targets v${h.targets!.meta.md.signed.version}: ${roles.keys.size} release key${roles.keys.size === 1 ? '' : 's'}; metadata in ${store.root.dir}` } };
    } catch (e) {
      const err = asAirlockError(e);
      return { store, result: { name, status: 'fail', detail: err.message, ...(err.hint ? { hint: err.hint } : {}) } };
    }
  }
  const keys = store.trustedIds.length;
  const revoked = store.revokedIds.length > 0 ? `, ${store.revokedIds.length} revoked` : '';
  if (keys === 0) return { store, result: { name, status: 'fail', detail: `${dir} holds no trusted *.pub key${revoked}`, hint: 'copy the vendor public key there' } };
  return { store, result: { name, status: 'pass', detail: `${keys} trusted key${keys === 1 ? '' : 's'}${revoked} in ${dir}; it and the folders above it are writable only by root or airlock's own user` } };
}

/** The newest timestamp's age: a freeze of the channel shows here before the timestamp expires. */
function trustFreshness(state: TrustState, warnMs: number): CheckResult {
  const f = freshnessOf(state, warnMs);
  const name = 'trust freshness';
  if (f.status === 'fresh') return { name, status: 'pass', detail: f.says };
  return {
    name,
    status: f.status === 'expired' ? 'fail' : 'warn',
    detail: f.says,
    hint: f.status === 'none' ? 'ask the vendor for a timestamp (airlock trust timestamp) and send it through the inbox' : 'ask the vendor for a current timestamp; if one was sent, look for what holds the channel back',
  };
}

/**
 * The site identities that open sealed secrets, read as import and apply
 * read them: a file open to others or not an identity fails here as it
 * would refuse there. None held is fine for a site that does not seal, and
 * a warning where the policy requires sealed secrets (every bundle with a
 * secret would then be refused).
 */
async function siteKeys(stateDir: string, sealing: SealingOptions | undefined): Promise<CheckResult> {
  const name = 'site keys';
  const keys = hostKeysOf(stateDir, sealing);
  const policy = sealing?.requireSealed ? 'secrets must arrive sealed' : 'secrets may arrive in clear';
  try {
    const held = await keys.identities();
    if (held.length === 0) {
      const detail = `no site identity held (looked in ${keys.describeSources()}); ${policy}`;
      return sealing?.requireSealed
        ? { name, status: 'warn', detail, hint: 'every bundle with a secret will be refused: put the site identity (NAME.identity, 0600) there, see docs/sealed-secrets.md' }
        : { name, status: 'pass', detail };
    }
    return { name, status: 'pass', detail: `${held.length} site identit${held.length === 1 ? 'y' : 'ies'} (key id${held.length === 1 ? '' : 's'} ${held.map((i) => i.keyId).join(', ')}) from ${keys.describeSources()}; ${policy}` };
  } catch (e) {
    const err = asAirlockError(e);
    return { name, status: 'fail', detail: err.message, ...(err.hint ? { hint: err.hint } : {}) };
  }
}
