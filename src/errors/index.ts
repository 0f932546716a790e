/**
 * The typed errors every layer throws. Each carries the exit code the CLI
 * returns, a one-line message for the operator and a hint that says what to
 * do. The CLI is the one place that turns them into output.
 *
 * Exit codes are part of the contract (docs/exit-codes.md): scripts on jump
 * boxes branch on them, so a code never changes meaning.
 */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  config: 3,
  notFound: 4,
  signature: 10,
  integrity: 11,
  unsafeEntry: 12,
  policy: 13,
  resources: 14,
  engine: 15,
  busy: 16,
  remote: 17,
  /** The host is not fit for the Docker Engine to install: a preflight check failed (docs/engine-install.md). */
  preflight: 18,
  /** An engine's package set that the host's package manager cannot install as it is (a dependency missing). */
  dependency: 19,
  /** A rolling maintenance stopped at a host: its step failed and its node is left drained (docs/remote.md). */
  maintenance: 20,
  /** Trust metadata (root of trust, delegations, timestamp) that cannot be accepted, or that this host holds no longer valid (docs/trust.md). */
  trust: 21,
  /** The operator pressed Ctrl-C (128 + SIGINT): what could stop stopped, the rest was reported. */
  interrupted: 130,
  /** Not an error: the reader of stdout or stderr went away (128 + SIGPIPE). */
  outputClosed: 141,
} as const;
export type ExitCodeName = keyof typeof ExitCode;

export interface ErrorDetails {
  hint?: string;
  /** Machine-readable reason, stable across releases (e.g. `hash-mismatch`). */
  reason?: string;
  /** The file, bundle entry or key the error is about. */
  subject?: string;
  cause?: unknown;
}

export class AirlockError extends Error {
  readonly hint: string | undefined;
  readonly reason: string;
  readonly subject: string | undefined;

  constructor(
    readonly kind: ExitCodeName,
    message: string,
    details: ErrorDetails = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'AirlockError';
    this.hint = details.hint;
    this.reason = details.reason ?? kind;
    this.subject = details.subject;
  }

  get exitCode(): number {
    return ExitCode[this.kind];
  }

  toJSON(): Record<string, unknown> {
    return {
      error: this.kind,
      reason: this.reason,
      message: this.message,
      ...(this.subject === undefined ? {} : { subject: this.subject }),
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      exitCode: this.exitCode,
    };
  }
}

/** Shorthands, so call sites read as the class of failure they report. */
export const usageError = (message: string, d?: ErrorDetails) => new AirlockError('usage', message, d);
export const configError = (message: string, d?: ErrorDetails) => new AirlockError('config', message, d);
export const notFound = (message: string, d?: ErrorDetails) => new AirlockError('notFound', message, d);
export const signatureError = (message: string, d?: ErrorDetails) => new AirlockError('signature', message, d);
export const integrityError = (message: string, d?: ErrorDetails) => new AirlockError('integrity', message, d);
export const unsafeEntry = (message: string, d?: ErrorDetails) => new AirlockError('unsafeEntry', message, d);
export const policyError = (message: string, d?: ErrorDetails) => new AirlockError('policy', message, d);
export const trustError = (message: string, d?: ErrorDetails) => new AirlockError('trust', message, d);
export const resourceError = (message: string, d?: ErrorDetails) => new AirlockError('resources', message, d);

/**
 * The classes of failure that are the bundle's fault, not the host's: the
 * bundle will never import as it is (the journal says `refused`, the agent
 * quarantines it). Every other class is the host's (no engine, no disk),
 * and trying again later may work.
 */
const REFUSAL_KINDS: ReadonlySet<ExitCodeName> = new Set<ExitCodeName>(['signature', 'integrity', 'unsafeEntry', 'policy']);

export const isRefusal = (e: AirlockError): boolean => REFUSAL_KINDS.has(e.kind);

export function isAirlockError(e: unknown): e is AirlockError {
  return e instanceof AirlockError;
}

/** Wraps anything thrown into an AirlockError, keeping typed ones as they are. */
export function asAirlockError(e: unknown): AirlockError {
  if (e instanceof AirlockError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new AirlockError('internal', message, { cause: e, reason: 'internal' });
}
