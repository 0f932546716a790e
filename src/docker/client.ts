/**
 * The thin core of the Docker Engine client: a connection pool over a
 * pluggable transport, API version negotiation, typed errors, and bounded
 * retry while the daemon is down or restarting. Endpoint groups (images,
 * swarm, ...) live in their own files and only call `json`/`send`/`stream`.
 */
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { AirlockError } from '../errors/index.js';
import { checkApiVersion, chooseApiVersion, compareApiVersions, isApiVersion, MIN_API_VERSION } from './api-version.js';
import { ConnectFailure, connector, errorCode } from './connector.js';
import { DockerError, engineUnreachable, fromHttpError, type DockerErrorDetails } from './errors.js';
import { encodeQuery, type Query } from './query.js';
import { managerAfter, transience, type Transience } from './transient.js';
import { resolveDockerHost, type Transport } from './transport.js';
import type { VersionInfo } from './types.js';

export interface RetryPolicy {
  /** Give up once this much time has passed since the first attempt. */
  maxElapsedMs: number;
  initialDelayMs: number;
  maxDelayMs: number;
}
export const DEFAULT_RETRY: RetryPolicy = { maxElapsedMs: 30_000, initialDelayMs: 100, maxDelayMs: 2_000 };

export interface RetryEvent {
  attempt: number;
  delayMs: number;
  error: DockerError;
}

export interface DockerClientOptions {
  /** Defaults to DOCKER_HOST, else /var/run/docker.sock. */
  transport?: Transport;
  /** Names the daemon in messages, e.g. `ssh://node3`. */
  endpoint?: string;
  /** Skip negotiation and use this version (still checked against the supported range). */
  apiVersion?: string;
  /** `false` disables retries. */
  retry?: Partial<RetryPolicy> | false;
  onRetry?: (e: RetryEvent) => void;
  /** Parallel connections; a long image load must not block status calls. */
  connections?: number;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
}

export type RequestBody = string | Uint8Array | Readable | AsyncIterable<Uint8Array>;
/** A factory makes a streamed body replayable, so the call can be retried. */
export type BodySource = RequestBody | (() => RequestBody);

export interface CallOptions {
  signal?: AbortSignal;
  retry?: Partial<RetryPolicy> | false;
}

export interface RequestOptions extends CallOptions {
  query?: Query;
  /** Sent as application/json. */
  json?: unknown;
  body?: BodySource;
  headers?: Record<string, string>;
  /** Safe to resend after the connection broke mid-request. Default: GET/HEAD. */
  idempotent?: boolean;
  /** Prefix the path with /v<version>. Default true. */
  versioned?: boolean;
  /** Goes into error messages (the image, service, ... the call is about). */
  subject?: string;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
}

export interface EngineResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
}

export interface PingResult {
  apiVersion: string | undefined;
  osType: string | undefined;
  experimental: boolean;
  /** `inactive`, `pending`, `active/worker`, `active/manager` (API 1.42+ only). */
  swarm: string | undefined;
}

const SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

export class DockerClient {
  readonly endpoint: string;
  private readonly pool: Pool;
  private readonly retryPolicy: RetryPolicy | false;
  private readonly onRetry: ((e: RetryEvent) => void) | undefined;
  private readonly pinned: string | undefined;
  private negotiated: Promise<string> | undefined;
  /** The engine answered a manager-only call: "not a swarm manager" from it now means it is restarting. */
  private servedAsManager = false;

  constructor(opts: DockerClientOptions = {}) {
    let transport = opts.transport;
    let endpoint = opts.endpoint;
    if (!transport) {
      const host = resolveDockerHost();
      transport = host.transport;
      endpoint ??= host.endpoint;
    }
    this.endpoint = endpoint ?? 'docker';
    this.retryPolicy = mergeRetry(DEFAULT_RETRY, opts.retry);
    this.onRetry = opts.onRetry;
    if (opts.apiVersion !== undefined) this.pinned = checkApiVersion(opts.apiVersion);
    this.pool = new Pool('http://docker', {
      connect: connector(transport, opts.connectTimeoutMs ?? 10_000),
      connections: opts.connections ?? 4,
      headersTimeout: opts.headersTimeoutMs ?? 300_000,
      bodyTimeout: opts.bodyTimeoutMs ?? 300_000,
    });
  }

  /** The negotiated API version, e.g. `1.41`. Cached after the first success. */
  async apiVersion(opts: CallOptions = {}): Promise<string> {
    if (this.pinned) return this.pinned;
    return this.withRetry(opts, true, true, () => this.negotiateOnce(opts.signal));
  }

  async ping(opts: CallOptions = {}): Promise<PingResult> {
    const res = await this.request('GET', '/_ping', { ...opts, versioned: false });
    await res.body.text();
    return pingResult(res.headers);
  }

  /** Issues a call and maps HTTP errors to DockerError. The caller must consume `body`. */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<EngineResponse> {
    const idempotent = opts.idempotent ?? (method === 'GET' || method === 'HEAD');
    const replayable = opts.body === undefined || typeof opts.body === 'function' || isBytes(opts.body);
    return this.withRetry(opts, idempotent, replayable, () => this.requestOnce(method, path, opts));
  }

  /** JSON answer; `undefined` for an empty body (204 and friends). */
  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, opts);
    const text = await res.body.text();
    if (text.trim() === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new DockerError('engine', `Docker Engine sent invalid JSON for ${method} ${path}`, {
        reason: 'protocol',
        status: res.status,
        method,
        path,
        cause: e,
      });
    }
  }

  /** For calls whose answer carries nothing we need. */
  async send(method: string, path: string, opts: RequestOptions = {}): Promise<void> {
    const res = await this.request(method, path, opts);
    await res.body.text();
  }

  /** Streamed answer (image export, progress). Destroy it to cancel. */
  async stream(method: string, path: string, opts: RequestOptions = {}): Promise<Readable> {
    return (await this.request(method, path, opts)).body;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  async destroy(): Promise<void> {
    await this.pool.destroy();
  }

  private async negotiateOnce(signal: AbortSignal | undefined): Promise<string> {
    // One negotiation shared by concurrent callers, so it runs without any one
    // caller's signal; each caller stops waiting on its own. Forgotten on
    // failure so the next attempt asks again.
    if (!this.negotiated) {
      const p = this.negotiate();
      this.negotiated = p;
      p.catch(() => {
        if (this.negotiated === p) this.negotiated = undefined;
      });
    }
    return untilAborted(this.negotiated, signal);
  }

  private async negotiate(): Promise<string> {
    const ping = await this.requestOnce('GET', '/_ping', { versioned: false });
    await ping.body.text();
    let daemon = pingResult(ping.headers).apiVersion;
    let version: Partial<VersionInfo> | undefined;
    if (!daemon) {
      version = await this.versionOnce();
      daemon = version.ApiVersion;
    }
    if (!daemon) {
      throw new DockerError('engine', `Docker Engine at ${this.endpoint} did not say which API version it speaks`, {
        reason: 'protocol',
      });
    }
    // Too old: refused now, before any call that changes something, and named by its release.
    if (isApiVersion(daemon) && compareApiVersions(daemon, MIN_API_VERSION) < 0) {
      version ??= await this.versionOnce().catch(() => ({}));
    }
    return chooseApiVersion(daemon, { endpoint: this.endpoint, version: version?.Version });
  }

  /** GET /version without a version prefix: every engine answers it, whatever API it speaks. */
  private async versionOnce(): Promise<Partial<VersionInfo>> {
    const res = await this.requestOnce('GET', '/version', { versioned: false });
    return (await res.body.json()) as Partial<VersionInfo>;
  }

  private async requestOnce(method: string, path: string, opts: RequestOptions): Promise<EngineResponse> {
    const version = opts.versioned === false ? undefined : await (this.pinned ?? this.negotiateOnce(opts.signal));
    const fullPath = (version ? `/v${version}` : '') + path + encodeQuery(opts.query);
    const headers: Record<string, string> = { ...opts.headers };
    let body: string | Uint8Array | Readable | undefined;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['content-type'] ??= 'application/json';
    } else if (opts.body !== undefined) {
      const b = typeof opts.body === 'function' ? opts.body() : opts.body;
      body = typeof b === 'string' || b instanceof Uint8Array || b instanceof Readable ? b : Readable.from(b);
    }
    const res = await this.pool.request({
      method: method as Dispatcher.HttpMethod,
      path: fullPath,
      headers,
      body: body ?? null,
      signal: opts.signal ?? null,
      ...(opts.headersTimeoutMs === undefined ? {} : { headersTimeout: opts.headersTimeoutMs }),
      ...(opts.bodyTimeoutMs === undefined ? {} : { bodyTimeout: opts.bodyTimeoutMs }),
    });
    if (res.statusCode >= 400) {
      const text = await readLimited(res.body, 64 * 1024);
      throw fromHttpError(res.statusCode, daemonMessage(text, res.statusCode), {
        method,
        path: fullPath,
        ...(opts.subject === undefined ? {} : { subject: opts.subject }),
      });
    }
    const manager = managerAfter(method, path);
    if (manager !== undefined) this.servedAsManager = manager;
    return { status: res.statusCode, headers: res.headers, body: res.body };
  }

  private async withRetry<T>(
    opts: CallOptions,
    idempotent: boolean,
    replayable: boolean,
    attemptOnce: () => Promise<T>,
  ): Promise<T> {
    const policy = opts.retry === undefined ? this.retryPolicy : mergeRetry(this.retryPolicy || DEFAULT_RETRY, opts.retry);
    const signal = opts.signal;
    const started = Date.now();
    let delay = policy ? policy.initialDelayMs : 0;
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      try {
        return await attemptOnce();
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        const { error, retryable, transient } = this.classify(e, idempotent);
        if (transient === 'maybe-done' && !idempotent && error instanceof DockerError) throw this.notResent(error);
        if (!policy || !retryable || !replayable || !(error instanceof DockerError)) throw error;
        if (Date.now() - started + delay > policy.maxElapsedMs) throw this.gaveUp(error, Date.now() - started);
        this.onRetry?.({ attempt, delayMs: delay, error });
        try {
          await sleep(delay, undefined, signal ? { signal } : {});
        } catch (sleepErr) {
          throw signal?.aborted ? signal.reason : sleepErr;
        }
        delay = Math.min(delay * 2, policy.maxDelayMs);
      }
    }
  }

  /**
   * Whether a failed call may go again. Safe to resend, whatever the call:
   * one whose connection failed (nothing was sent) or that the daemon
   * refused before acting (`not-done`). Only a call that is safe to repeat
   * (GET, HEAD, or one marked idempotent) goes again after a connection
   * broke mid-call or an answer after which the daemon may have acted
   * (`maybe-done`): resent then, a service update that worked would fail
   * "out of sequence" and a create as a conflict. The caller starts again
   * from what the engine runs instead (transient.ts says which answer is which).
   */
  private classify(e: unknown, idempotent: boolean): { error: Error; retryable: boolean; transient?: Transience | undefined } {
    if (e instanceof DockerError && e.status !== undefined) {
      const t = transience(e.status, e.daemonMessage ?? '', this.servedAsManager);
      return { error: e, retryable: t === 'not-done' || (t === 'maybe-done' && idempotent), transient: t };
    }
    if (e instanceof AirlockError) return { error: e, retryable: false };
    if (e instanceof ConnectFailure) {
      // A transport that throws a typed error (e.g. SSH auth) means it: no retry.
      if (e.original instanceof AirlockError) return { error: e.original, retryable: false };
      return { error: engineUnreachable(this.endpoint, e.original, e.code), retryable: e.code !== 'EACCES' };
    }
    const code = errorCode(e);
    if (code !== undefined && SOCKET_CODES.has(code)) {
      // The request may have reached the daemon; only resend what is safe to repeat.
      return { error: engineUnreachable(this.endpoint, e, code), retryable: idempotent };
    }
    if (code !== undefined && TIMEOUT_CODES.has(code)) {
      const msg = `Docker Engine at ${this.endpoint} did not answer in time (${code})`;
      return { error: new DockerError('engine', msg, { reason: 'timeout', code, cause: e }), retryable: false };
    }
    return { error: e instanceof Error ? e : new Error(String(e)), retryable: false };
  }

  /** A call that is not safe to repeat, met by an engine going down: said as such, and not sent again. */
  private notResent(e: DockerError): DockerError {
    return new DockerError('engine', `Docker Engine at ${this.endpoint} stopped or restarted during ${e.method} ${e.path} and may have done it, so it was not sent again (HTTP ${e.status}: ${e.daemonMessage})`, {
      ...this.detailsOf(e),
      hint: "check 'systemctl status docker'; once the engine is up, run the command again: it starts from what the engine runs then",
    });
  }

  /** The error of the last try, said as what it is: the engine stayed away, or stayed not ready, longer than the retry budget. */
  private gaveUp(e: DockerError, elapsedMs: number): DockerError {
    const seconds = `${(elapsedMs / 1000).toFixed(1)} s`;
    const details = this.detailsOf(e);
    if (e.status === undefined) return new DockerError('engine', `${e.message}, still after ${seconds} of retries`, { ...details, ...(e.hint === undefined ? {} : { hint: e.hint }) });
    return new DockerError('engine', `Docker Engine at ${this.endpoint} is stopping, restarting or not ready: it still answered "${e.daemonMessage}" after ${seconds} of retries (${e.method} ${e.path}: HTTP ${e.status})`, {
      ...details,
      hint: "check 'systemctl status docker' and 'docker info'; run the command again once the engine is up",
    });
  }

  /** What a wrapping error keeps of the one it wraps: callers branch on reason and status. */
  private detailsOf(e: DockerError): DockerErrorDetails {
    return {
      reason: e.reason,
      ...(e.status === undefined ? {} : { status: e.status }),
      ...(e.daemonMessage === undefined ? {} : { daemonMessage: e.daemonMessage }),
      ...(e.method === undefined ? {} : { method: e.method }),
      ...(e.path === undefined ? {} : { path: e.path }),
      ...(e.code === undefined ? {} : { code: e.code }),
      subject: e.subject ?? this.endpoint,
      cause: e,
    };
  }
}

function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function mergeRetry(base: RetryPolicy, over: Partial<RetryPolicy> | false | undefined): RetryPolicy | false {
  if (over === false) return false;
  return { ...base, ...over };
}

function pingResult(h: IncomingHttpHeaders): PingResult {
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
  return {
    apiVersion: one(h['api-version']),
    osType: one(h['ostype']),
    experimental: one(h['docker-experimental']) === 'true',
    swarm: one(h['swarm']),
  };
}

function daemonMessage(text: string, status: number): string {
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // Not JSON: some errors (and proxies) answer plain text.
  }
  return text.trim() || `HTTP ${status}`;
}

async function readLimited(body: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const b = Buffer.from(chunk as Uint8Array);
    chunks.push(b);
    size += b.length;
    if (size >= limit) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

function isBytes(b: BodySource): boolean {
  return typeof b === 'string' || b instanceof Uint8Array;
}
