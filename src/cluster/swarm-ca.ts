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
  /** Nodes holding a certificate from the new root. */
  done: number;
  /** Nodes waited for (all but those down). */
  of: number;
  /** Hostnames of the nodes not there yet. */
  waiting: string[];
}

export interface RotationResult {
  before: CertificateFacts;
  after: CertificateFacts;
  nodes: number;
  /** Nodes down during the rotation: they were not waited for, and will not be trusted when they come back. */
  down: string[];
  seconds: number;
}

const sameIssuer = (a: TLSInfo | undefined, b: TLSInfo | undefined): boolean =>
  !!a && !!b && a.TrustRoot === b.TrustRoot && a.CertIssuerSubject === b.CertIssuerSubject && a.CertIssuerPublicKey === b.CertIssuerPublicKey;

const nameOf = (n: SwarmNode): string => n.Description?.Hostname || n.ID.slice(0, 12);

/** Where the rotation is: done when the root changed, the swarm says it finished, and every node not down is issued by it. */
export function rotationState(swarm: SwarmInspect, nodes: readonly SwarmNode[], oldRoot: string | undefined): RotationProgress & { finished: boolean; down: string[] } {
  const up = nodes.filter((n) => n.Status.State !== 'down');
  const rotated = swarm.TLSInfo?.TrustRoot !== oldRoot;
  const waiting = up.filter((n) => !rotated || !sameIssuer(n.Description?.TLSInfo, swarm.TLSInfo)).map(nameOf);
  return {
    done: up.length - waiting.length,
    of: up.length,
    waiting,
    down: nodes.filter((n) => n.Status.State === 'down').map(nameOf),
    finished: rotated && swarm.RootRotationInProgress !== true && waiting.length === 0,
  };
}

/** Rotates the root CA and waits until every node that is up holds a certificate from the new one. */
export async function rotateRootCa(docker: Docker, opts: { timeoutMs: number; pollMs?: number; onProgress?: (p: RotationProgress) => void }): Promise<RotationResult> {
  const started = Date.now();
  const before = await updateSpec(docker, (spec) => ({ ...spec, CAConfig: { ...spec.CAConfig, ForceRotate: (spec.CAConfig?.ForceRotate ?? 0) + 1 } }));
  const oldRoot = before.TLSInfo?.TrustRoot;
  const deadline = started + opts.timeoutMs;
  let said = '';
  for (;;) {
    const swarm = await docker.swarm.inspect();
    const state = rotationState(swarm, await docker.nodes.list(), oldRoot);
    const now = `${state.done}/${state.of}`;
    if (now !== said) opts.onProgress?.(state);
    said = now;
    if (state.finished) {
      return {
        before: certificateOf(oldRoot ?? '', 'the old root CA'),
        after: certificateOf(swarm.TLSInfo!.TrustRoot!, 'the new root CA'),
        nodes: state.of,
        down: state.down,
        seconds: Math.round((Date.now() - started) / 100) / 10,
      };
    }
    if (Date.now() > deadline) {
      throw new AirlockError('engine', `the root CA rotation is not finished after ${Math.round(opts.timeoutMs / 1000)} s: ${state.done} of ${state.of} nodes hold a certificate from the new root; waiting for ${state.waiting.join(', ') || 'the swarm to end the rotation'}`, {
        reason: 'ca-rotation-timeout',
        hint: 'the swarm goes on rotating by itself: run airlock cluster status to follow, or this command again with a longer --timeout (it starts another rotation)',
      });
    }
    await sleep(opts.pollMs ?? 500);
  }
}

/** New worker and manager join tokens: the old ones stop working at once. Returns nothing of them (they are secrets). */
export async function rotateJoinTokens(docker: Docker): Promise<void> {
  await updateSpec(docker, (spec) => spec, { rotateWorkerToken: true, rotateManagerToken: true });
}
