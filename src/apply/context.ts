import type { Engine } from '../docker/engine.js';
import type { Journal } from '../journal/journal.js';
import type { ApplyStep, DeploymentRecords } from '../journal/deployments.js';
import type { ContentStore } from '../store/content-store.js';
import type { HostKeys } from '../seal/host-keys.js';
import type { ServiceProgress } from '../stack/converge.js';
import type { Change } from '../stack/types.js';
import type { DeploymentRecorder } from './recorder.js';

/** What the pipeline needs to run steps: the engine, where it records, and the caller's progress hooks. */
export interface PipelineContext {
  docker: Engine;
  recorder: DeploymentRecorder;
  /** Convergence (health gate) timeout. */
  timeoutMs: number;
  /** How long services must run steadily to count as converged; default stableWindowMs() (src/stack/converge.ts). */
  stableMs?: number;
  /** How often convergence looks at the tasks. */
  pollMs?: number;
  signal?: AbortSignal;
  onChange?: (step: Change, phase: 'start' | 'done') => void;
  onProgress?: (status: ServiceProgress[]) => void;
  /** Journal steps as they begin, for progress output. */
  onApplyStep?: (deploymentId: number, step: ApplyStep) => void;
}

/** A pipeline context with the host's journal, content store and site keys: every command but `stack deploy`. */
export interface ApplyContext extends PipelineContext {
  journal: Journal;
  deployments: DeploymentRecords;
  store: ContentStore;
  /** Opens sealed values and names secrets (src/seal/host-keys.ts). */
  keys: HostKeys;
}
