/**
 * The swarm's certificate authority and join tokens, changed through a
 * manager's Engine API: the node certificate lifetime (SwarmSpec.CAConfig.
 * NodeCertExpiry), a new root CA (CAConfig.ForceRotate raised, then waiting
 * until every node holds a certificate from it), new join tokens.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Docker, SwarmInspect, SwarmNode, SwarmSpec, TLSInfo } from '../docker/index.js';
import { AirlockError } from '../errors/index.js';
import { certificateOf, type CertificateFacts } from './certificates.js';

/** The engine refuses a node certificate lifetime under an hour (swarmkit's ca.MinNodeCertExpiration). */
export const MIN_NODE_CERT_EXPIRY_MS = 3600_000;
/** What the engine uses when the spec says nothing: 90 days. */
export const DEFAULT_NODE_CERT_EXPIRY_MS = 2160 * 3600_000;

/** The whole spec goes back with one part changed: swarm update replaces it. */
async function updateSpec(docker: Docker, change: (spec: SwarmSpec) => SwarmSpec, opts: { rotateWorkerToken?: boolean; rotateManagerToken?: boolean } = {}): Promise<SwarmInspect> {
  const before = await docker.swarm.inspect();
  await docker.swarm.update(before.Version.Index, change(before.Spec), opts);
  return before;
}

export interface ExpiryChange {
  /** Milliseconds; the engine's default when the spec said none. */
  before: number;
  after: number;
}

/** Sets the lifetime of the certificates the CA issues from now on (each node renews into it as its own renews). */
export async function setNodeCertExpiry(docker: Docker, ms: number): Promise<ExpiryChange> {
  const before = await updateSpec(docker, (spec) => ({ ...spec, CAConfig: { ...spec.CAConfig, NodeCertExpiry: ms * 1e6 } }));
  const was = before.Spec.CAConfig?.NodeCertExpiry;
  return { before: was ? was / 1e6 : DEFAULT_NODE_CERT_EXPIRY_MS, after: ms };
}

export interface RotationProgress {
  /** Nodes holding a certificate from the new CA key. */
  done: number;
  of: number;
  /** Hostnames of the nodes not there yet. */
  waiting: string[];
}

export interface RotationResult {
  before: CertificateFacts;
  after: CertificateFacts;
  nodes: number;
  seconds: number;
}

const sameIssuer = (a: TLSInfo | undefined, b: TLSInfo | undefined): boolean =>
  !!a && !!b && a.CertIssuerSubject === b.CertIssuerSubject && a.CertIssuerPublicKey === b.CertIssuerPublicKey;

const nameOf = (n: SwarmNode): string => n.Description?.Hostname || n.ID.slice(0, 12);

/**
 * Where a rotation stands. A node is there once its certificate is no longer
 * issued by the old key (first cross-signed by the new one, then under the
 * new root). Done when the swarm trusts a new root, no longer says it is
 * rotating, and every node's issuer is the swarm's.
 */
export function rotationState(swarm: SwarmInspect, nodes: readonly SwarmNode[], old: TLSInfo | undefined): RotationProgress & { finished: boolean } {
  const rotated = swarm.TLSInfo?.TrustRoot !== old?.TrustRoot;
  const renewed = (n: SwarmNode): boolean => {
    const mine = n.Description?.TLSInfo;
    if (rotated) return sameIssuer(mine, swarm.TLSInfo) && mine?.TrustRoot === swarm.TLSInfo?.TrustRoot;
    return !!mine?.CertIssuerPublicKey && !sameIssuer(mine, old);
  };
  const waiting = nodes.filter((n) => !renewed(n)).map(nameOf);
  return { done: nodes.length - waiting.length, of: nodes.length, waiting, finished: rotated && swarm.RootRotationInProgress !== true && waiting.length === 0 };
}

/**
 * Rotates the root CA and waits until every node holds a certificate from the
 * new one. The swarm finishes a rotation only once every node has renewed, so
 * a node that is down would hold it open: refused before anything changes.
 */
export async function rotateRootCa(docker: Docker, opts: { timeoutMs: number; pollMs?: number; onProgress?: (p: RotationProgress) => void }): Promise<RotationResult> {
  const started = Date.now();
  const down = (await docker.nodes.list()).filter((n) => n.Status.State === 'down').map(nameOf);
  if (down.length > 0) {
    throw new AirlockError('engine', `the root CA is not rotated: ${down.join(', ')} ${down.length === 1 ? 'is' : 'are'} down, and the swarm ends a rotation only when every node has renewed`, {
      reason: 'nodes-down',
      hint: 'start the node again (it renews as it rejoins), or remove a node that is gone for good (docker node rm), then rotate',
    });
  }
  const before = await updateSpec(docker, (spec) => ({ ...spec, CAConfig: { ...spec.CAConfig, ForceRotate: (spec.CAConfig?.ForceRotate ?? 0) + 1 } }));
  const deadline = started + opts.timeoutMs;
  let said = '';
  for (;;) {
    const swarm = await docker.swarm.inspect();
    const state = rotationState(swarm, await docker.nodes.list(), before.TLSInfo);
    const now = `${state.done}/${state.of}`;
    if (now !== said) opts.onProgress?.(state);
    said = now;
    if (state.finished) {
      return {
        before: certificateOf(before.TLSInfo?.TrustRoot ?? '', 'the old root CA'),
        after: certificateOf(swarm.TLSInfo!.TrustRoot!, 'the new root CA'),
        nodes: state.of,
        seconds: Math.round((Date.now() - started) / 100) / 10,
      };
    }
    if (Date.now() > deadline) {
      throw new AirlockError('engine', `the root CA rotation is not finished after ${Math.round(opts.timeoutMs / 1000)} s: ${state.done} of ${state.of} nodes renewed; waiting for ${state.waiting.join(', ') || 'the swarm to end the rotation'}`, {
        reason: 'ca-rotation-timeout',
        hint: 'the swarm goes on rotating by itself, and ends once every node has renewed: a node that went down holds it open until it is back or removed (docker node rm)',
      });
    }
    await sleep(opts.pollMs ?? 500);
  }
}

/** New worker and manager join tokens: the old ones stop working at once. Returns nothing of them (they are secrets). */
export async function rotateJoinTokens(docker: Docker): Promise<void> {
  await updateSpec(docker, (spec) => spec, { rotateWorkerToken: true, rotateManagerToken: true });
}
