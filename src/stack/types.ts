import type { Config, ConfigSpec, NamedServiceSpec, Network, NetworkCreateRequest, Secret, SecretSpec, Service } from '../docker/index.js';

/** A secret or config as the converter produces it: data as bytes or base64. */
export type WithData<T> = Omit<T, 'Data'> & { Data?: string | Uint8Array };

/** What a stack should be: the converter's output for one stack. */
export interface DesiredStack {
  stack: string;
  networks: NetworkCreateRequest[];
  secrets: WithData<SecretSpec>[];
  configs: WithData<ConfigSpec>[];
  services: NamedServiceSpec[];
  /**
   * Secrets and configs whose value arrived sealed, by engine name: the
   * digest of the sealed blob in the content store. The journal keeps that
   * blob, never the value, and a rollback opens it again.
   */
  sealedData?: Record<string, string>;
}

/** What the engine holds for a stack, found by its namespace label. */
export interface StackState {
  /** The API version the engine speaks: which defaults it fills in (engine-defaults.ts). */
  apiVersion: string;
  services: Service[];
  networks: Network[];
  secrets: Secret[];
  configs: Config[];
}

export interface FieldChange {
  path: string;
  before: unknown;
  after: unknown;
}

/**
 * One change to the engine (a "change", never a "step": steps are the
 * apply pipeline's, src/apply/pipeline.ts), as a typed union: the planner emits them, the
 * executor runs them through a map from action to function.
 */
export type Change =
  | { action: 'create-network'; name: string; network: NetworkCreateRequest }
  | { action: 'create-secret'; name: string; secret: WithData<SecretSpec> }
  | { action: 'create-config'; name: string; config: WithData<ConfigSpec> }
  | { action: 'create-service'; name: string; spec: NamedServiceSpec }
  | { action: 'update-service'; name: string; id: string; version: number; spec: NamedServiceSpec; changes: FieldChange[] }
  | { action: 'remove-service'; name: string; id: string }
  | { action: 'remove-secret'; name: string; id: string }
  | { action: 'remove-config'; name: string; id: string }
  | { action: 'remove-network'; name: string; id: string };

export type Action = Change['action'];

/** Changes in the order they must run: each phase may run in parallel within itself. */
export interface Plan {
  stack: string;
  /** Networks, secrets and configs the services will need. */
  prepare: Change[];
  /** Service creates, updates and (with prune) removals. */
  services: Change[];
  /** Secrets and configs no service uses any more: removed only after a converged deploy. */
  cleanup: Change[];
  /** Services whose spec already equals the desired one: not touched. */
  unchanged: string[];
}
