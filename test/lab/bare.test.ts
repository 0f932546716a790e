/**
 * scripts/lab up N --bare: hosts with no engine, each on its own root
 * filesystem (an overlay of the bare Debian root). What is installed in one
 * host changes only that host's upper dir: never the machine, another host or
 * the shared lower root. The checkout's airlock runs inside, and `down` stops
 * what was started inside and leaves nothing mounted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client } from 'ssh2';
import { CLI, REPO, cliArgv } from '../helpers/fixtures.js';
import { type BareLabHost, type Lab, labScript, run, sshExec, startBareLab } from '../helpers/lab.js';

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** `dev:ino` as `stat -c %d:%i` prints it. */
async function identity(path: string): Promise<string> {
  const s = await stat(path);
  return `${s.dev}:${s.ino}`;
}

describe('scripts/lab up --bare', { timeout: 120_000 }, () => {
  let base: string;
  let dir: string;
  let lab: Lab<BareLabHost> | undefined;
  let h1: BareLabHost;
  let h2: BareLabHost;
  let c1: Client;
  let c2: Client;
  let lowerRoot: string;
  let machineGroups: string;
  // Unique names, so that nothing the machine already has can make an assertion pass.
  const tag = `airlock-bare-${process.pid}`;

  before(async () => {
    base = await mkdtemp('/tmp/airlock-lab-test-');
    dir = join(base, 'bare');
    lowerRoot = (await run([join(REPO, 'scripts/engines'), 'bare-root'], { timeoutMs: 300_000 })).stdout.trim();
    machineGroups = await readFile('/etc/group', 'utf8');
    lab = await startBareLab(dir, 2);
    [h1, h2] = [lab.host('h1'), lab.host('h2')];
    c1 = await lab.ssh(h1);
    c2 = await lab.ssh(h2);
  });

  after(async () => {
    c1?.end();
    c2?.end();
    await lab?.stop();
    await rm(base, { recursive: true, force: true });
  });

  test('each host answers over ssh on its own root, with no engine', async () => {
    assert.equal(lab!.facts.bare, true);
    for (const [h, c] of [
      [h1, c1],
      [h2, c2],
    ] as const) {
      const out = await sshExec(
        c,
        'hostname; stat -c %d:%i /; command -v dockerd || echo no-dockerd; ' +
          'if [ -e /var/run/docker.sock ]; then echo docker.sock; else echo no-docker.sock; fi; cat /etc/debian_version',
      );
      const [name, root, dockerd, sock, debian] = out.trim().split('\n');
      assert.equal(name, h.name);
      assert.equal(root, await identity(h.root), "the ssh session's / is the host's overlay root");
      assert.equal(dockerd, 'no-dockerd');
      assert.equal(sock, 'no-docker.sock');
      assert.match(debian ?? '', /^13\./);
      await assert.rejects(lab!.docker(h).system.ping(), 'no engine answers on the host socket');
      // nsenter (lab exec) lands in the same root.
      assert.equal((await lab!.exec(h, ['stat', '-c', '%d:%i', '/'])).stdout.trim(), await identity(h.root));
    }
    const status = await labScript(['status', '--dir', dir], { allowFail: true });
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.match(status.stdout, /^h1 .*engine none +sshd ok/m);
    assert.match(status.stdout, /^h2 .*engine none +sshd ok/m);
  });

  test("dpkg works in a host, and what is installed lands in that host's upper dir only", async () => {
    assert.match(await sshExec(c1, 'dpkg -l openssh-server | tail -n 1'), /^ii +openssh-server /);
    const paths = [`/usr/local/bin/${tag}`, `/opt/${tag}/bin/x`, `/etc/systemd/system/${tag}.service`];
    for (const p of paths) {
      await sshExec(c1, `mkdir -p "$(dirname ${p})" && echo h1 > ${p}`);
      assert.equal((await sshExec(c1, `cat ${p}`)).trim(), 'h1');
      assert.equal(readFileSync(join(h1.upperDir, p), 'utf8').trim(), 'h1', `${p} is in h1's upper dir`);
      assert.equal(existsSync(p), false, `${p} is not on the machine`);
      assert.equal(existsSync(join(lowerRoot, p)), false, `${p} is not in the shared lower root`);
      assert.equal(existsSync(join(h2.root, p)), false, `${p} is not in h2's root`);
      assert.equal((await sshExec(c2, `[ -e ${p} ] && echo present || echo absent`)).trim(), 'absent', `h2 has no ${p}`);
    }
  });

  test("groupadd docker in a host changes that host's /etc/group only", async () => {
    assert.equal((await sshExec(c1, 'getent group docker || echo none')).trim(), 'none', 'the bare root has no docker group');
    assert.match(await sshExec(c1, 'groupadd --system docker && getent group docker'), /^docker:x:\d+:/);
    assert.match(readFileSync(join(h1.upperDir, 'etc/group'), 'utf8'), /^docker:x:/m);
    assert.equal(await readFile('/etc/group', 'utf8'), machineGroups, "the machine's /etc/group is unchanged");
    assert.doesNotMatch(readFileSync(join(lowerRoot, 'etc/group'), 'utf8'), /^docker:/m);
    assert.equal((await sshExec(c2, 'getent group docker || echo none')).trim(), 'none', 'h2 has no docker group');
  });

  test("the checkout's airlock runs inside a host, on the packaged runtime", async () => {
    const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
    assert.ok(CLI.startsWith(REPO));
    const out = await sshExec(c1, [join(REPO, '.runtime/node'), ...cliArgv(['--version'])].join(' '));
    assert.equal(out.trim(), version);
  });

  test('down stops what was started inside a host and leaves nothing mounted', async () => {
    const pid = Number((await sshExec(c1, 'setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!')).trim());
    assert.ok(alive(pid), `the process started over ssh runs (${pid})`);
    assert.equal(readlinkSync(`/proc/${pid}/ns/mnt`), readlinkSync(h1.mountNs), "it runs in h1's mount namespace");
    assert.ok(
      readFileSync('/proc/self/mounts', 'utf8').includes(` ${h1.root} overlay `),
      "h1's root is an overlay mounted on the machine while the lab is up",
    );
    c1.end();
    c2.end();

    await lab!.stop();

    assert.equal(alive(pid), false, 'down stopped the process started inside h1');
    const mounts = (await run(['findmnt', '-rn', '-o', 'TARGET'])).stdout.split('\n');
    assert.deepEqual(
      mounts.filter((m) => m.startsWith(dir)),
      [],
      'findmnt shows nothing under the lab folder',
    );
    assert.equal(existsSync(dir), false, 'the lab folder is removed');
    assert.equal(existsSync(join(lowerRoot, 'etc/debian_version')), true, 'the shared lower root is left in place');
    lab = undefined;
  });
});
