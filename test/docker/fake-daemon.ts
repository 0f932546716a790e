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

export function fakeDaemon(handler: Handler, opts: { apiVersion?: string | null; headers?: Record<string, string> } = {}): FakeDaemon {
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
      for (const [k, v] of Object.entries(opts.headers ?? {})) res.setHeader(k, v);
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

/**
 * Docker Engine 19.03.15 (API 1.40), as far as airlock meets it: every answer
 * carries the headers its version middleware sets, /version has the fields
 * of API 1.40's SystemVersion, and a call for a newer API than 1.40 is
 * refused as that engine refuses it (400 "client version ... is too new").
 */
export function docker1903(): FakeDaemon {
  return fakeDaemon(
    (req, res) => {
      const asked = /^\/v(\d+\.\d+)\//.exec(req.url ?? '')?.[1];
      if (asked && Number(asked.split('.')[1]) > 40 && asked.startsWith('1.')) {
        return sendJson(res, 400, { message: `client version ${asked} is too new. Maximum supported API version is 1.40` });
      }
      if (req.url === '/version' || req.url === '/v1.40/version') return sendJson(res, 200, DOCKER_1903_VERSION);
      sendJson(res, 404, { message: 'page not found' });
    },
    { apiVersion: '1.40', headers: { Server: 'Docker/19.03.15 (linux)', OSType: 'linux', 'Docker-Experimental': 'false' } },
  );
}

export const DOCKER_1903_VERSION = {
  Platform: { Name: 'Docker Engine - Community' },
  Components: [
    { Name: 'Engine', Version: '19.03.15', Details: { ApiVersion: '1.40', Arch: 'amd64', BuildTime: 'Sat Jan 30 03:15:20 2021', Experimental: 'false', GitCommit: '99e3ed8919', GoVersion: 'go1.13.15', KernelVersion: '6.1.0-18-amd64', MinAPIVersion: '1.12', Os: 'linux' } },
    { Name: 'containerd', Version: '1.4.3', Details: { GitCommit: '269548fa27e0089a8b8278fc4fc781d7f65a939b' } },
  ],
  Version: '19.03.15',
  ApiVersion: '1.40',
  MinAPIVersion: '1.12',
  GitCommit: '99e3ed8919',
  GoVersion: 'go1.13.15',
  Os: 'linux',
  Arch: 'amd64',
  KernelVersion: '6.1.0-18-amd64',
  BuildTime: '2021-01-30T03:15:20.000000000+00:00',
};
