// A dockerd of an engine row (scripts/engines) in a network namespace of its own, for a caller
// that needs one engine for a while: scripts/run-tests.mjs --engine, scripts/record-engine.
import { existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/** A dockerd of the row: its own netns; a single-node swarm unless `swarm: false` (its `host` and `stop`). */
export async function startSharedEngine(row, { swarm = true } = {}) {
  // Its own folder and network namespace per run: a run of another row, or of the same row from
  // another worktree, at the same time never shares them (nor 127.0.0.1:2377 in the namespace).
  const dir = resolve(`/tmp/airlock-engine-${row}-${process.pid}`);
  const netns = `airlock-eng-${process.pid}`;
  const sock = join(dir, 'docker.sock');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  if (!existsSync(`/var/run/netns/${netns}`)) spawnSync('ip', ['netns', 'add', netns], { stdio: 'inherit' });
  spawnSync('nsenter', [`--net=/var/run/netns/${netns}`, 'ip', 'link', 'set', 'lo', 'up'], { stdio: 'inherit' });
  const log = openSync(join(dir, 'dockerd.log'), 'a');
  const child = spawn('nsenter', [`--net=/var/run/netns/${netns}`, resolve(import.meta.dirname, '../engines'), 'run', row, dir, '--', '--bridge', 'none', '--iptables=false', '--ip6tables=false'], {
    stdio: ['ignore', log, log],
    detached: true,
  });
  const stop = async () => {
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {
      return;
    }
    for (let i = 0; i < 100 && child.exitCode === null; i++) await sleep(200);
    spawnSync('ip', ['netns', 'del', netns]);
    rmSync(dir, { recursive: true, force: true });
  };
  const call = (method, path, body) =>
    new Promise((res, rej) => {
      const req = request({ socketPath: sock, method, path, headers: { 'content-type': 'application/json' } }, (r) => {
        let text = '';
        r.on('data', (d) => (text += d));
        r.on('end', () => res({ status: r.statusCode, text }));
      });
      req.on('error', rej);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null || i > 240) throw new Error(`the ${row} engine did not start (log: ${dir}/dockerd.log)`);
      if ((await call('GET', '/_ping').catch(() => ({ status: 0 }))).status === 200) break;
      await sleep(250);
    }
    const init = swarm ? await call('POST', '/swarm/init', { ListenAddr: '127.0.0.1:2377', AdvertiseAddr: '127.0.0.1' }) : { status: 200 };
    if (init.status !== 200) throw new Error(`swarm init on the ${row} engine: ${init.status} ${init.text}`);
  } catch (e) {
    // A failed start leaves no dockerd behind.
    await stop();
    throw e;
  }
  return { host: `unix://${sock}`, stop };
}
