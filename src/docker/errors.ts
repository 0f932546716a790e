/**
 * Typed errors for the Docker Engine client. They are AirlockErrors (kind
 * 'engine', or 'notFound' for 404) so the CLI maps them to stable exit codes,
 * and they keep the HTTP status and the daemon's own message so callers can
 * branch on `reason` instead of parsing text.
 */
import { AirlockError, type ErrorDetails } from '../errors/index.js';

export type DockerErrorReason =
  | 'engine-unreachable' // socket missing/refused, daemon down or restarting
  | 'not-found' // 404
  | 'conflict' // 409: name taken, object in use
  | 'out-of-sequence' // stale `version` on a swarm object update: re-read and retry
  | 'not-swarm-manager' // 503: this node is not (or no longer) a manager
  | 'bad-request' // 400: the daemon refused the request as invalid
  | 'unavailable' // other 503
  | 'engine-error' // any other HTTP error
  | 'api-too-old' // daemon speaks < 1.41
  | 'stream-error' // an {"error": ...} object inside a progress stream
  | 'protocol' // the daemon answered something we cannot parse
  | 'timeout'; // no answer within the configured time

export interface DockerErrorDetails extends ErrorDetails {
  reason?: DockerErrorReason;
  status?: number;
  /** The daemon's `message` (or a stream's `error`), verbatim. */
  daemonMessage?: string;
  method?: string;
  path?: string;
  /** errno-style code of a transport failure (ENOENT, ECONNREFUSED, ...). */
  code?: string;
}

export class DockerError extends AirlockError {
  declare readonly reason: DockerErrorReason;
  readonly status: number | undefined;
  readonly daemonMessage: string | undefined;
  readonly method: string | undefined;
  readonly path: string | undefined;
  readonly code: string | undefined;

  constructor(kind: 'engine' | 'notFound', message: string, d: DockerErrorDetails = {}) {
    super(kind, message, { ...d, reason: d.reason ?? 'engine-error' });
    this.name = 'DockerError';
    this.status = d.status;
    this.daemonMessage = d.daemonMessage;
    this.method = d.method;
    this.path = d.path;
    this.code = d.code;
  }

  get outOfSequence(): boolean {
    return this.reason === 'out-of-sequence';
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), ...(this.status === undefined ? {} : { status: this.status }) };
  }
}

/** A distinct class so `catch (e) { if (e instanceof OutOfSequenceError) reread() }` reads naturally. */
export class OutOfSequenceError extends DockerError {
  constructor(message: string, d: DockerErrorDetails = {}) {
    super('engine', message, { ...d, reason: 'out-of-sequence' });
    this.name = 'OutOfSequenceError';
  }
}

export function isDockerError(e: unknown, reason?: DockerErrorReason): e is DockerError {
  return e instanceof DockerError && (reason === undefined || e.reason === reason);
}
export const isNotFound = (e: unknown): e is DockerError => isDockerError(e, 'not-found');
export const isConflict = (e: unknown): e is DockerError => isDockerError(e, 'conflict');
export const isOutOfSequence = (e: unknown): e is OutOfSequenceError => e instanceof OutOfSequenceError;
export const isEngineUnreachable = (e: unknown): e is DockerError => isDockerError(e, 'engine-unreachable');

const OUT_OF_SEQUENCE = /update out of sequence/i;
const NOT_MANAGER = /not a swarm manager|not part of a swarm/i;

/** Maps an HTTP error answer to a typed error. The message decides where status alone is ambiguous. */
export function fromHttpError(
  status: number,
  daemonMessage: string,
  req: { method: string; path: string; subject?: string },
): DockerError {
  const d: DockerErrorDetails = { status, daemonMessage, method: req.method, path: req.path };
  if (req.subject !== undefined) d.subject = req.subject;
  const text = `${daemonMessage} (${req.method} ${req.path}: HTTP ${status})`;
  // Swarm reports a stale version as 500 (20.10) or 400/409 on newer releases; the text is stable.
  if (OUT_OF_SEQUENCE.test(daemonMessage)) {
    return new OutOfSequenceError(text, { ...d, hint: 'The object changed since it was read: read it again and retry.' });
  }
  if (status === 404) return new DockerError('notFound', text, { ...d, reason: 'not-found' });
  if (status === 409) return new DockerError('engine', text, { ...d, reason: 'conflict' });
  if (status === 503 && NOT_MANAGER.test(daemonMessage)) {
    return new DockerError('engine', text, {
      ...d,
      reason: 'not-swarm-manager',
      hint: 'Run this against a swarm manager, or create the swarm first (airlock cluster up).',
    });
  }
  if (status === 503) return new DockerError('engine', text, { ...d, reason: 'unavailable' });
  if (status === 400) return new DockerError('engine', text, { ...d, reason: 'bad-request' });
  return new DockerError('engine', text, { ...d, reason: 'engine-error' });
}

export function engineUnreachable(endpoint: string, cause: unknown, code?: string): DockerError {
  const why = code ?? (cause instanceof Error ? cause.message : String(cause));
  const hint =
    code === 'EACCES'
      ? `No permission to open ${endpoint}: run as root or as a member of the docker group.`
      : 'Is dockerd running? Check `systemctl status docker`, or DOCKER_HOST.';
  return new DockerError('engine', `Docker Engine not reachable at ${endpoint} (${why})`, {
    reason: 'engine-unreachable',
    subject: endpoint,
    hint,
    cause,
    ...(code === undefined ? {} : { code }),
  });
}
