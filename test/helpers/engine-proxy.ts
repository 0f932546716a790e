/**
 * A unix-socket proxy in front of a real dockerd, for fault tests: every
 * request is forwarded as it is, except that for a while `GET /info` says
 * the node is not in a swarm (Swarm.LocalNodeState "inactive"), as a
 * dockerd that is stopping says for several seconds before it goes; and
 * for a while, calls to chosen paths are answered 503 as a stopping
 * manager answers them.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rm } from 'node:fs/promises';

const INFO = /^(\/v[\d.]+)?\/info(\?|$)/;

export class EngineProxy {
  private server: Server | undefined;
  private inactiveUntil = 0;
  private failing: { until: number; path: RegExp; message: string } | undefined;
  private failingNext: { count: number; path: RegExp; message: string } | undefined;
  /** How many `GET /info` answers were changed to "inactive". */
  faked = 0;

  constructor(
    readonly socket: string,
    private readonly upstream: string,
  ) {}

  get dockerHost(): string {
    return `unix://${this.socket}`;
  }

  async start(): Promise<void> {
    await rm(this.socket, { force: true });
    this.server = createServer((req, res) => this.forward(req, res));
    await new Promise<void>((res, rej) => {
      this.server!.once('error', rej);
      this.server!.listen(this.socket, () => res());
    });
  }

  /** From now on, for `ms`, the node says it is in no swarm. */
  sayInactiveFor(ms: number): void {
    this.inactiveUntil = Date.now() + ms;
  }

  /** From now on, for `ms`, requests whose path matches `path` are answered 503 with `message`, never forwarded. */
  failFor(ms: number, path: RegExp, message: string): void {
    this.failing = { until: Date.now() + ms, path, message };
  }

  /** The next `count` requests whose path matches `path` are answered 500 with `message` (an error no client retries), never forwarded. */
  failNext(count: number, path: RegExp, message: string): void {
    this.failingNext = { count, path, message };
  }

  /** How many requests were answered 503. */
  failed = 0;

  get sayingInactive(): boolean {
    return Date.now() < this.inactiveUntil;
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    const next = this.failingNext;
    if (next && next.count > 0 && next.path.test(req.url ?? '')) {
      next.count--;
      req.resume();
      const body = Buffer.from(JSON.stringify({ message: next.message }));
      res.writeHead(500, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
      return;
    }
    const fail = this.failing;
    if (fail && Date.now() < fail.until && fail.path.test(req.url ?? '')) {
      this.failed++;
      req.resume();
      const body = Buffer.from(JSON.stringify({ message: fail.message }));
      res.writeHead(503, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
      return;
    }
    const fake = req.method === 'GET' && INFO.test(req.url ?? '') && this.sayingInactive;
    const up = request({ socketPath: this.upstream, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      if (!fake || answer.statusCode !== 200) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('end', () => {
        const info = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { Swarm: Record<string, unknown> };
        info.Swarm = { ...info.Swarm, LocalNodeState: 'inactive', ControlAvailable: false, NodeID: '', Cluster: null };
        const body = Buffer.from(JSON.stringify(info));
        this.faked++;
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
        res.end(body);
      });
    });
    up.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: `engine proxy: ${e.message}` }));
    });
    req.pipe(up);
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((res) => server.close(() => res()));
    await rm(this.socket, { force: true });
  }
}
