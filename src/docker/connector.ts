/**
 * The pool's connector over a pluggable transport (the local socket, or a
 * socket forwarded through SSH), with a connect timeout; a failure to
 * connect is marked so the client knows nothing was sent.
 */
import type { Socket } from 'node:net';
import type { buildConnector } from 'undici';
import { asSocketLike, type Transport } from './transport.js';

/** Marks a failure of the transport itself: nothing was sent, so any call may be retried. */
export class ConnectFailure extends Error {
  constructor(
    readonly original: unknown,
    readonly code: string | undefined,
  ) {
    super(original instanceof Error ? original.message : String(original));
  }
}

export function connector(transport: Transport, timeoutMs: number): buildConnector.connector {
  return (_opts, callback) => {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      callback(new ConnectFailure(new Error(`connect timed out after ${timeoutMs} ms`), 'ETIMEDOUT'), null);
    }, timeoutMs);
    timer.unref();
    transport().then(
      (stream) => {
        clearTimeout(timer);
        if (settled) {
          stream.destroy();
          return;
        }
        settled = true;
        callback(null, asSocketLike(stream) as unknown as Socket);
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        callback(new ConnectFailure(err, errorCode(err)), null);
      },
    );
  };
}

export function errorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
