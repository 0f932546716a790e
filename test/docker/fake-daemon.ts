/**
 * A scripted stand-in for dockerd on a temp unix socket, for the behaviours a
 * real daemon will not produce on demand: other API versions, swarm errors,
 * a daemon that comes up late or drops connections.
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

export interface FakeDaemon {
  socketPath: string;
  /** Every request seen, as `METHOD /path?query`. */
  requests: string[];
  listen(): Promise<void>;
  close(): Promise<void>;
}

export function fakeDaemon(handler: Handler, opts: { apiVersion?: string | null } = {}): FakeDaemon {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-fake-dockerd-'));
  const socketPath = join(dir, 'docker.sock');
  const requests: string[] = [];
  const apiVersion = opts.apiVersion === undefined ? '1.41' : opts.apiVersion;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url}`);
      if (apiVersion !== null) res.setHeader('Api-Version', apiVersion);
      if (req.url === '/_ping') {
        res.end('OK');
        return;
      }
      handler(req, res, Buffer.concat(chunks));
    });
  });
  return {
    socketPath,
    requests,
    listen: () => new Promise((resolve) => server.listen(socketPath, () => resolve())),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
