/**
 * How the client reaches a daemon. A transport is just "give me a connected
 * duplex stream", so the local unix socket and an SSH-forwarded channel
 * (ssh2 `openssh_forwardOutStreamLocal`) plug in the same way.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { configError } from '../errors/index.js';

/** Returns a connected stream. Rejections are reported as engine-unreachable. */
export type Transport = () => Promise<Duplex>;

export const DEFAULT_SOCKET = '/var/run/docker.sock';

export interface ResolvedHost {
  /** For messages: `unix:///var/run/docker.sock`. */
  endpoint: string;
  transport: Transport;
}

export function unixSocketTransport(path: string): Transport {
  return () =>
    new Promise<Duplex>((resolve, reject) => {
      const sock = net.connect({ path });
      const onError = (e: Error) => reject(e);
      sock.once('error', onError);
      sock.once('connect', () => {
        sock.off('error', onError);
        resolve(sock);
      });
    });
}

type SocketShims = {
  setNoDelay(noDelay?: boolean): unknown;
  setKeepAlive(enable?: boolean, delay?: number): unknown;
  ref(): unknown;
  unref(): unknown;
};

/**
 * undici treats the connection as a net.Socket: it calls ref/unref to let an
 * idle process exit, and its own connector calls setNoDelay/setKeepAlive. A
 * plain Duplex (an ssh2 channel) has none of them, so add no-ops where
 * missing. Real sockets keep their own methods.
 */
export function asSocketLike<T extends Duplex>(stream: T): T & SocketShims {
  const s = stream as T & Partial<SocketShims>;
  const self = () => s;
  s.setNoDelay ??= self;
  s.setKeepAlive ??= self;
  s.ref ??= self;
  s.unref ??= self;
  return s as T & SocketShims;
}

/**
 * Reads DOCKER_HOST. Only unix sockets are spoken directly; remote hosts go
 * through airlock's SSH transport, which hands its own Transport to the client.
 */
export function resolveDockerHost(env: NodeJS.ProcessEnv = process.env): ResolvedHost {
  const host = env['DOCKER_HOST']?.trim();
  if (!host) return { endpoint: `unix://${DEFAULT_SOCKET}`, transport: unixSocketTransport(DEFAULT_SOCKET) };
  if (host.startsWith('unix://')) {
    const path = host.slice('unix://'.length);
    if (!path.startsWith('/')) {
      throw configError(`DOCKER_HOST=${host} is not an absolute socket path`, {
        reason: 'docker-host',
        hint: 'Use unix:///path/to/docker.sock',
      });
    }
    return { endpoint: host, transport: unixSocketTransport(path) };
  }
  throw configError(`DOCKER_HOST=${host} is not supported`, {
    reason: 'docker-host',
    hint: 'Use unix:///path/to/docker.sock; for a remote host use the inventory, which goes over SSH.',
  });
}
