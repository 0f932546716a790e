/**
 * A hostile FTP server on 127.0.0.1, for the attacks a real server will not
 * make: it lists a file at one size and sends another, trickles a byte at a
 * time, or drops the connection mid-transfer. It speaks what basic-ftp needs (USER, PASS, FEAT, TYPE, EPSV, LIST,
 * MDTM, SIZE, REST, RETR, DELE, CWD, QUIT), one passive data connection per
 * transfer, and records every command it was sent. Without modify times
 * (`modifyTimes: false`) it is a server that has neither MLSD nor MDTM.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface FakeFile {
  /** What RETR sends: these bytes, or this many filler bytes ('x'), from the REST offset on. */
  data: Buffer | number;
  /** What LIST and SIZE say; the real length when absent. */
  listed?: number;
  /** MDTM's answer. */
  modify?: Date;
  /** Sends one byte per this many milliseconds instead of all at once. */
  trickleMs?: number;
  /** Drops both connections, without a reply, after sending this many bytes of a RETR. */
  dropAfter?: number;
  /** Once a RETR of this file has sent all of it, the folder holds this instead: an upload that lands right after a download. */
  then?: FakeFile;
}

export interface FakeFtpOptions {
  /** false: FEAT does not offer MDTM and MDTM is not implemented (there is never an MLSD). Default true. */
  modifyTimes?: boolean;
}

export interface FakeFtp {
  port: number;
  /** ftp://127.0.0.1:PORT/drop/ */
  url: string;
  /** The folder's files by name; change them between polls. */
  files: Map<string, FakeFile>;
  /** Every command received, in order (PASS masked). */
  commands: string[];
  /** Data bytes sent by RETR, by file name. */
  sent: Map<string, number>;
  /** What DELE removed, in order: the name and the content it had then. */
  deleted: { name: string; data: Buffer | number }[];
  /** How many RETR of this file were started. */
  retrs(name: string): number;
  stop(): Promise<void>;
}

const FILLER = Buffer.alloc(64 * 1024, 'x');
const lengthOf = (f: FakeFile): number => (typeof f.data === 'number' ? f.data : f.data.length);

function mdtm(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

export async function startFakeFtp(files: Record<string, FakeFile> = {}, opts: FakeFtpOptions = {}): Promise<FakeFtp> {
  const modifyTimes = opts.modifyTimes ?? true;
  const state = { files: new Map(Object.entries(files)), commands: [] as string[], sent: new Map<string, number>(), deleted: [] as { name: string; data: Buffer | number }[] };
  const sockets = new Set<Socket>();
  const servers = new Set<Server>();
  const timers = new Set<NodeJS.Timeout>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  };

  const control = createServer((sock) => {
    track(sock);
    let buffer = '';
    let restAt = 0;
    let data: Promise<Socket> | undefined;
    const reply = (line: string) => void (sock.writable && sock.write(`${line}\r\n`));

    /** EPSV: a listener for one data connection. */
    const passive = async (): Promise<number> => {
      const srv = createServer();
      servers.add(srv);
      data = new Promise<Socket>((resolve) =>
        srv.once('connection', (d) => {
          track(d);
          srv.close();
          servers.delete(srv);
          resolve(d);
        }),
      );
      srv.listen(0, '127.0.0.1');
      await once(srv, 'listening');
      return (srv.address() as AddressInfo).port;
    };

    /** Sends `bytes` over the data connection, at once or a byte at a time; then 226. */
    const transfer = async (name: string, bytes: Buffer | number, offset: number, trickleMs?: number, dropAfter?: number) => {
      if (!data) return reply('425 use EPSV first');
      const d = await data;
      data = undefined;
      reply('150 here it comes');
      const length = typeof bytes === 'number' ? bytes : bytes.length;
      const total = dropAfter === undefined ? length : Math.min(length, offset + dropAfter);
      const slice = (from: number, n: number) => (typeof bytes === 'number' ? FILLER.subarray(0, n) : bytes.subarray(from, from + n));
      const count = (n: number) => state.sent.set(name, (state.sent.get(name) ?? 0) + n);
      let at = offset;
      if (trickleMs !== undefined) {
        await new Promise<void>((resolve) => {
          const tick = () => {
            if (at >= total || d.destroyed) return resolve();
            d.write(slice(at, 1));
            count(1);
            at++;
            const t = setTimeout(() => {
              timers.delete(t);
              tick();
            }, trickleMs);
            timers.add(t);
          };
          d.once('close', () => resolve());
          tick();
        });
      } else {
        while (at < total && !d.destroyed) {
          const chunk = slice(at, Math.min(FILLER.length, total - at));
          at += chunk.length;
          count(chunk.length);
          if (!d.write(chunk)) await Promise.race([once(d, 'drain'), once(d, 'close')]);
        }
      }
      if (d.destroyed) return reply('426 connection closed; transfer aborted');
      if (total < length) {
        // What was sent arrives; then the server is gone, without a reply.
        d.end();
        await once(d, 'close').catch(() => undefined);
        return void sock.destroy();
      }
      d.end();
      await once(d, 'close').catch(() => undefined);
      reply('226 done');
    };

    const handle = async (line: string) => {
      const [verb = '', ...rest] = line.split(' ');
      const arg = rest.join(' ');
      const cmd = verb.toUpperCase();
      state.commands.push(cmd === 'PASS' ? 'PASS ***' : line);
      const file = state.files.get(arg);
      switch (cmd) {
        case 'USER':
          return reply('331 password please');
        case 'PASS':
          return reply('230 logged in');
        case 'FEAT':
          return reply(`211-Features:\r\n${modifyTimes ? ' MDTM\r\n' : ''} SIZE\r\n REST STREAM\r\n EPSV\r\n211 End`);
        case 'TYPE':
        case 'STRU':
        case 'OPTS':
          return reply('200 ok');
        case 'PWD':
          return reply('257 "/drop"');
        case 'CWD':
          return reply('250 ok');
        case 'EPSV':
          return reply(`229 Entering Extended Passive Mode (|||${await passive()}|)`);
        case 'PASV':
          return reply('502 use EPSV');
        case 'LIST': {
          const lines = [...state.files].map(([n, f]) => `-rw-r--r--    1 ftp      ftp      ${String(f.listed ?? lengthOf(f)).padStart(10)} Jan 01  2026 ${n}\r\n`);
          return transfer('', Buffer.from(lines.join('')), 0);
        }
        case 'MDTM':
          if (!modifyTimes) return reply('502 not implemented');
          return file ? reply(`213 ${mdtm(file.modify ?? new Date('2026-01-01T00:00:00Z'))}`) : reply('550 no such file');
        case 'SIZE':
          return file ? reply(`213 ${file.listed ?? lengthOf(file)}`) : reply('550 no such file');
        case 'REST':
          restAt = Number(arg);
          return reply(`350 restarting at ${restAt}`);
        case 'RETR': {
          if (!file) return reply('550 no such file');
          const offset = restAt;
          restAt = 0;
          const sent = state.sent.get(arg) ?? 0;
          await transfer(arg, file.data, offset, file.trickleMs, file.dropAfter);
          const whole = (state.sent.get(arg) ?? 0) - sent === lengthOf(file) - offset;
          if (file.then && whole && state.files.get(arg) === file) state.files.set(arg, file.then);
          return;
        }
        case 'DELE':
          if (!file) return reply('550 no such file');
          state.files.delete(arg);
          state.deleted.push({ name: arg, data: file.data });
          return reply('250 deleted');
        case 'QUIT':
          reply('221 bye');
          return void sock.end();
        default:
          return reply('502 not implemented');
      }
    };

    // One command at a time, in order, as a real server does.
    let chain = Promise.resolve();
    sock.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        chain = chain.then(() => handle(line)).catch(() => undefined);
      }
    });
    reply('220 fake ftp');
  });
  servers.add(control);
  control.listen(0, '127.0.0.1');
  await once(control, 'listening');
  const port = (control.address() as AddressInfo).port;

  return {
    port,
    url: `ftp://127.0.0.1:${port}/drop/`,
    files: state.files,
    commands: state.commands,
    sent: state.sent,
    deleted: state.deleted,
    retrs: (name) => state.commands.filter((c) => c === `RETR ${name}`).length,
    async stop() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await Promise.all([...servers].map((s) => new Promise((r) => s.close(r))));
    },
  };
}
