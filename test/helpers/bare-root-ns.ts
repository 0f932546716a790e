/**
 * A throwaway host for the engine's real tests: an overlay of the bare root
 * (scripts/engines bare-root: Debian 13, no engine) in mount, network and pid
 * namespaces of its own, chrooted, so that installing and starting an engine
 * there touches nothing of the machine. The process run there sees the real
 * host paths (/opt/airlock/engine, /etc/docker, /var/run/docker.sock); the
 * checkout and the packaged Node are bound in at their own paths, the test's
 * folder too, and /var/lib/docker is a real file system (overlay2 will not
 * run on an overlay). When the process ends, the pid namespace ends with it:
 * every daemon started there is killed, whatever the test did.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { REPO } from './fixtures.js';

let bareRoot: string | undefined;
/** The bare root (made once, ~35 s, cached by scripts/engines). */
export function bareRootPath(): string {
  if (bareRoot) return bareRoot;
  const r = spawnSync(join(REPO, 'scripts/engines'), ['bare-root'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/engines bare-root failed: ${r.stderr}`);
  bareRoot = r.stdout.trim();
  return bareRoot;
}

const SETUP = `
set -e
W=$1 BARE=$2 SHARED=$3 CHECKOUT=$4 RUNTIME=$5; shift 5
root=$W/merged
mkdir -p $W/upper $W/work $root $W/docker-data
mount -t overlay overlay -o lowerdir=$BARE,upperdir=$W/upper,workdir=$W/work $root
mount -t proc proc $root/proc
mount --rbind /sys $root/sys
mount --rbind /dev $root/dev
mount -t tmpfs tmpfs $root/run
mkdir -p $root/var/lib/docker && mount --bind $W/docker-data $root/var/lib/docker
for d in "$CHECKOUT" "$RUNTIME" $SHARED; do mkdir -p $root$d; mount --rbind $d $root$d; done
ip link set lo up
exec chroot $root /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
`;

export interface NsRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `argv` in a fresh throwaway bare host whose scratch space is `dir`
 * (upper layer, docker data), with the folder `shared` bound in at its own path.
 */
export async function runInBareHost(dir: string, shared: string, argv: string[], opts: { timeoutMs?: number } = {}): Promise<NsRun> {
  await mkdir(dir, { recursive: true });
  const child = spawn('unshare', ['--mount', '--net', '--pid', '--fork', '--kill-child', '--propagation', 'private', '--', '/bin/sh', '-c', SETUP, 'sh', dir, bareRootPath(), shared, REPO, dirname(dirname(process.execPath)), ...argv], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  clearTimeout(timer);
  return { status, stdout, stderr };
}

/** The Node runtime the tests run on, which the bare host has bound in at the same path. */
export const nodeInBareHost = (): string => process.execPath;

