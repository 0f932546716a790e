/**
 * Engine install on bare hosts from the jump box (issue 20, "Measured"):
 * `airlock cluster up --engine BUNDLE --inventory hosts.yml` on 3 bare lab
 * hosts (scripts/lab up 3 --bare: their own Debian 13 root, sshd, no
 * engine), against the same done by hand the way an operator scripts it:
 * scp the packages, dpkg -i them, start the engine, swarm init/join, all
 * over ssh in one bash script. Target: airlock ≤ 1.2 × the script.
 *
 *   .runtime/node dist/bench/engine-install.js [--runs 3] [--forms deb,static] [--doc docs/benchmarks.md]
 *
 * Every run starts a new lab (not timed) and alternates airlock and the
 * script, so that drift in the machine's load hits both alike. Both sides are
 * timed as whole processes from the jump box; every line either prints is
 * stamped, which splits the time into phases.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { canonicalDaemonJson, daemonConfig } from '../src/engine/daemon-config.js';
import { PREFER_OFFLINE } from '../src/engine/units.js';
import { engineFixtures } from '../test/helpers/engine-bundle-fixtures.js';
import { airlockCommand, buildEngineBundle, writeHostEngineConfig } from '../test/helpers/engine-hosts.js';
import { CLI, makeSigner, type Signer } from '../test/helpers/fixtures.js';
import { startBareLab, type BareLabHost, type Lab } from '../test/helpers/lab.js';
import { writeGeneratedBlock } from './lib/doc.js';
import { capture } from './lib/proc.js';
import { fmtRatio, fmtSec, mdTable, median } from './lib/stats.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, forms: { type: 'string', default: 'deb,static' }, doc: { type: 'string' }, keep: { type: 'boolean', default: false } } });
const runs = Number(values.runs);
const forms = values.forms.split(',') as Form[];
type Form = 'deb' | 'static';
const TARGET = 1.2;

/** A line of a timed command's output, with when it came (ms since the command started). */
interface Stamped {
  at: number;
  line: string;
}

interface Run {
  wallMs: number;
  lines: Stamped[];
  /** Phase name → ms spent, from the stamped lines (and, for airlock, the hosts' logs). */
  phases: Record<string, number>;
}

/** Runs a command to completion; stamps every stdout and stderr line as it arrives. */
function stampedRun(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ wallMs: number; lines: Stamped[]; code: number }> {
  const started = process.hrtime.bigint();
  const now = () => Number(process.hrtime.bigint() - started) / 1e6;
  const lines: Stamped[] = [];
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream.on('data', (d: Buffer) => {
      const parts = (rest + d.toString()).split('\n');
      rest = parts.pop()!;
      for (const line of parts) lines.push({ at: now(), line });
    });
    stream.on('end', () => rest && lines.push({ at: now(), line: rest }));
  }
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ wallMs: now(), lines, code: code ?? -1 }));
  });
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The operator's script: per host (in parallel, as airlock does), scp the
 * payload and one ssh that installs and starts the engine and waits for its
 * socket; then swarm init on h1, the worker token, joins, the inventory's
 * labels. Each phase prints a mark the bench stamps.
 */
function manualScript(lab: Lab<BareLabHost>, form: Form, payload: string): string {
  const ssh = `ssh -i ${q(lab.keyFile)} -o UserKnownHostsFile=${q(lab.knownHostsFile)} -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR`;
  const scp = ssh.replace(/^ssh/, 'scp -q');
  const install =
    form === 'deb'
      ? // policy-rc.d: the packages must not start anything themselves (as airlock does).
        `printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
DEBIAN_FRONTEND=noninteractive dpkg -i /root/engine/*.deb >/root/engine/dpkg.log
rm -f /usr/sbin/policy-rc.d
install -m 755 /root/engine/docker /usr/local/bin/docker`
      : `tar xzf /root/engine/docker.tgz -C /usr/local/bin --strip-components=1`;
  const onHost = `set -e
echo "mark install $(hostname)"
${install}
mkdir -p /etc/docker && cp /root/engine/daemon.json /etc/docker/daemon.json
echo "mark start $(hostname)"
export ${PREFER_OFFLINE}
setsid containerd </dev/null >/var/log/containerd.log 2>&1 &
until [ -S /run/containerd/containerd.sock ]; do sleep 0.05; done
setsid dockerd --containerd /run/containerd/containerd.sock </dev/null >/var/log/dockerd.log 2>&1 &
until docker version >/dev/null 2>&1; do sleep 0.05; done
echo "mark ready $(hostname)"`;
  const [h1, ...others] = lab.hosts as [BareLabHost, ...BareLabHost[]];
  const perHost = lab.hosts
    .map(
      (h) => `(
  echo "mark copy ${h.name}"
  ${ssh} root@${h.address} mkdir -p /root/engine
  ${scp} ${payload}/* ${payload}/daemon-${h.name}.json root@${h.address}:/root/engine/
  ${ssh} root@${h.address} 'cp /root/engine/daemon-${h.name}.json /root/engine/daemon.json && bash -s' <<'EOF'
${onHost}
EOF
) &`,
    )
    .join('\n');
  const labels = others.map((h) => Object.entries(h.labels).map(([k, v]) => `docker node update --label-add ${k}=${v} ${h.name}`).join('; ')).filter(Boolean);
  return `#!/bin/bash
set -euo pipefail
${perHost}
wait
echo "mark swarm"
${ssh} root@${h1.address} docker swarm init --advertise-addr ${h1.address} --listen-addr 0.0.0.0:2377 >/dev/null
token=$(${ssh} root@${h1.address} docker swarm join-token -q worker)
${others.map((h) => `${ssh} root@${h.address} docker swarm join --token "$token" --advertise-addr ${h.address} ${h1.address}:2377 >/dev/null &`).join('\n')}
wait
${labels.length ? `${ssh} root@${h1.address} '${labels.join('; ')}' >/dev/null` : ''}
echo "mark done"
`;
}

/** Phases of the script: copy (scp), install (dpkg or tar), start (until docker answers), swarm; per host the slowest. */
function manualPhases(lines: Stamped[], wallMs: number): Record<string, number> {
  const at = (re: RegExp) => lines.filter((l) => re.test(l.line)).map((l) => l.at);
  const span = (from: string, to: string) => {
    const a = at(new RegExp(`^mark ${from} (h\\d+)`));
    const b = at(new RegExp(`^mark ${to} (h\\d+)`));
    return Math.max(...b) - Math.min(...a);
  };
  const swarm = at(/^mark swarm/)[0] ?? NaN;
  return { copy: span('copy', 'install'), install: span('install', 'start'), start: span('start', 'ready'), swarm: wallMs - swarm };
}

/**
 * Phases of airlock's run, from its progress lines (`hN: engine PHASE …`,
 * stamped on the jump box): connect and engine status, upload, the host's
 * `airlock engine install` (split further by the host's logs), swarm (after
 * the last install until the end).
 */
async function airlockPhases(lab: Lab<BareLabHost>, lines: Stamped[], wallMs: number, startedAt: number): Promise<Record<string, number>> {
  const first = (host: string, re: RegExp) => lines.find((l) => l.line.startsWith(`${host}: `) && re.test(l.line))?.at ?? NaN;
  const per = await Promise.all(
    lab.hosts.map(async (h) => {
      const upload = first(h.name, /: engine upload /);
      const sent = first(h.name, /: engine upload 100%/);
      const install = first(h.name, /: engine engine preflight/);
      const done = first(h.name, /: engine done /);
      // The host's own clock: when apt ran (history.log) and when airlock started containerd.
      const logs = await hostMarks(h, startedAt);
      return { connect: upload, upload: install - upload, transfer: sent - upload, checked: install - sent, install: done - install, beforeStart: logs.containerd - install, apt: logs.aptEnd - logs.aptStart, start: done - logs.containerd, done };
    }),
  );
  const worst = (k: keyof (typeof per)[number]) => Math.max(...per.map((p) => p[k]));
  const lastInstall = worst('done');
  return {
    'connect + status': worst('connect'),
    upload: worst('upload'),
    '· transfer (0 to 100 %)': worst('transfer'),
    "· after 100 % (the host's sha256sum of the file, rename)": worst('checked'),
    'install (all)': worst('install'),
    '· until airlock starts containerd (import and verify, preflight, install)': worst('beforeStart'),
    ...(Number.isNaN(worst('apt')) ? {} : { '· · of which apt-get install (whole seconds, apt history.log)': worst('apt') }),
    '· start to ready (containerd, dockerd, /_ping, version)': worst('start'),
    swarm: wallMs - lastInstall,
  };
}

/** From a bare host's root: apt's Start-Date/End-Date (whole seconds; NaN for the static form) and airlock's "starts containerd at" mark, in ms since `startedAt`. */
async function hostMarks(h: BareLabHost, startedAt: number): Promise<{ aptStart: number; aptEnd: number; containerd: number }> {
  const text = async (p: string) => readFile(join(h.root, p), 'utf8').catch(() => '');
  const history = await text('var/log/apt/history.log');
  const date = (key: string) => {
    const m = new RegExp(`^${key}: (\\S+)\\s+(\\S+)`, 'm').exec(history);
    return m ? Date.parse(`${m[1]}T${m[2]}Z`) - startedAt : NaN;
  };
  const c = /airlock starts containerd at (\S+)/.exec(await text('var/log/airlock/engine/containerd.log'));
  return { aptStart: date('Start-Date'), aptEnd: date('End-Date'), containerd: c ? Date.parse(c[1]!) - startedAt : NaN };
}

interface Inputs {
  bundle: string;
  /** The script's payload folder: the packages (and the docker CLI) or the archive, plus a daemon.json per host (written each run). */
  payload: string;
}

async function prepare(dir: string, form: Form, signer: Signer): Promise<Inputs> {
  const f = engineFixtures();
  if (typeof f === 'string') throw new Error(f);
  const payload = join(dir, `payload-${form}`);
  await mkdir(payload, { recursive: true });
  if (form === 'deb') {
    const debs = f['deb-26'].path;
    for (const name of await readdir(debs)) await copyFile(join(debs, name), join(payload, name));
    // Debian 13's docker.io has no CLI of its own (docker-cli is another package): the one of the static archive.
    capture('tar', ['xzf', f['static-26'].path, '-C', payload, '--strip-components=1', 'docker/docker']);
    const bundle = await buildEngineBundle(dir, signer, { name: 'engine-deb', version: '26.1.5', engine: { version: f['deb-26'].version, packages: debs } });
    return { bundle, payload };
  }
  await copyFile(f['static-26'].path, join(payload, 'docker.tgz'));
  const bundle = await buildEngineBundle(dir, signer, { name: 'engine-static', version: '26.1.5', engine: { version: f['static-26'].version, static: f['static-26'].path } });
  return { bundle, payload };
}

async function withLab<T>(dir: string, use: (lab: Lab<BareLabHost>) => Promise<T>): Promise<T> {
  const lab = await startBareLab(await mkdtemp(join(dir, 'lab-')), 3);
  try {
    return await use(lab);
  } finally {
    await lab.stop({ keep: values.keep });
  }
}

/** Asserts what both sides must leave: 3 nodes in one swarm, every engine the bundle's version. */
async function checkSwarm(lab: Lab<BareLabHost>, what: string): Promise<void> {
  const nodes = await lab.docker(lab.hosts[0]!).nodes.list();
  if (nodes.length !== lab.hosts.length || nodes.some((n) => n.Status?.State !== 'ready')) throw new Error(`${what}: the swarm has ${nodes.length} nodes (${nodes.map((n) => n.Status?.State).join(', ')})`);
}

async function airlockRun(dir: string, form: Form, inputs: Inputs, airlock: string, trusted: string): Promise<Run> {
  return withLab(dir, async (lab) => {
    for (const h of lab.hosts) {
      await writeHostEngineConfig(h);
      await mkdir(join(h.etcDir, 'trusted.d'), { recursive: true });
      await copyFile(trusted, join(h.etcDir, 'trusted.d', 'vendor.pub'));
    }
    const startedAt = Date.now();
    const r = await stampedRun(process.execPath, [CLI, 'cluster', 'up', '--inventory', lab.inventoryFile, '--engine', inputs.bundle, '--remote-airlock', airlock, '--timeout', '2m']);
    if (r.code !== 0) throw new Error(`airlock cluster up --engine (${form}) exited ${r.code}:\n${r.lines.map((l) => l.line).join('\n')}`);
    await checkSwarm(lab, 'airlock');
    return { wallMs: r.wallMs, lines: r.lines, phases: await airlockPhases(lab, r.lines, r.wallMs, startedAt) };
  });
}

async function manualRun(dir: string, form: Form, inputs: Inputs): Promise<Run> {
  return withLab(dir, async (lab) => {
    for (const h of lab.hosts) await writeFile(join(inputs.payload, `daemon-${h.name}.json`), canonicalDaemonJson(daemonConfig({ daemon: h.engineDaemon })));
    const script = join(dir, `manual-${form}.sh`);
    await writeFile(script, manualScript(lab, form, inputs.payload));
    const r = await stampedRun('bash', [script]);
    for (const h of lab.hosts) await rm(join(inputs.payload, `daemon-${h.name}.json`));
    if (r.code !== 0) throw new Error(`the manual script (${form}) exited ${r.code}:\n${r.lines.map((l) => l.line).join('\n')}`);
    await checkSwarm(lab, 'manual');
    return { wallMs: r.wallMs, lines: r.lines, phases: manualPhases(r.lines, r.wallMs) };
  });
}

/** The first line of airlock's output that says why a host failed. */
function failureLine(message: string): string {
  const line = message.split('\n').find((l) => /: engine failed /.test(l)) ?? message.split('\n')[0]!;
  return line.replace(/^h\d+: engine failed /, '').replace(/\|/g, '\\|');
}

function phaseTable(side: Run[]): string {
  const names = Object.keys(side[0]!.phases);
  return mdTable(
    ['phase', 'median', 'runs'],
    names.map((n) => [n, fmtSec(median(side.map((r) => r.phases[n]!))), side.map((r) => fmtSec(r.phases[n]!)).join(', ')]),
  );
}

const dir = await mkdtemp('/tmp/airlock-bench-engine-');
const started = Date.now();
const loadAt = () => capture('cut', ['-d', ' ', '-f', '1', '/proc/loadavg']);
const loads = [loadAt()];
try {
  const airlock = await airlockCommand(dir);
  const signer = await makeSigner(dir);
  const sections: string[] = [];
  for (const form of forms) {
    const inputs = await prepare(dir, form, signer);
    const a: Run[] = [];
    const m: Run[] = [];
    // An airlock that fails for this form is reported as such; the script's runs still give the baseline.
    let failure: string | undefined;
    for (let i = 0; i < runs; i++) {
      // Alternating, and each side first in turn.
      const order = i % 2 === 0 ? (['airlock', 'manual'] as const) : (['manual', 'airlock'] as const);
      for (const side of order) {
        if (side === 'manual') m.push(await manualRun(dir, form, inputs));
        else if (failure === undefined) {
          try {
            a.push(await airlockRun(dir, form, inputs, airlock, signer.pubPath));
          } catch (e) {
            failure = (e as Error).message;
            console.error(`${form}: airlock failed, no more airlock runs of this form: ${failure}`);
          }
        }
      }
      loads.push(loadAt());
      console.error(`${form} run ${i + 1}: airlock ${a.length > i ? fmtSec(a[i]!.wallMs) : 'failed'}, manual ${fmtSec(m.at(-1)!.wallMs)}`);
    }
    const ratio = median(a.map((r) => r.wallMs)) / median(m.map((r) => r.wallMs));
    const airlockRow = failure
      ? ['airlock `cluster up --engine`', 'failed', `exit ≠ 0 on every host: ${failureLine(failure)}`]
      : ['airlock `cluster up --engine`', fmtSec(median(a.map((r) => r.wallMs))), a.map((r) => fmtSec(r.wallMs)).join(', ')];
    sections.push(
      [
        `#### ${form === 'deb' ? 'Package form (deb-26: the .deb set, 57 MB)' : 'Static form (static-26: the .tgz archive, 80 MB)'}`,
        '',
        mdTable(['side', 'wall time (median)', 'runs'], [airlockRow, ['manual script', fmtSec(median(m.map((r) => r.wallMs))), m.map((r) => fmtSec(r.wallMs)).join(', ')]]),
        '',
        failure ? '**FAIL**: airlock did not install the engine, so there is no ratio.' : `airlock / manual = **${fmtRatio(ratio)}** (target ≤ ${fmtRatio(TARGET)}): **${ratio <= TARGET ? 'pass' : 'FAIL'}**.`,
        '',
        ...(failure
          ? []
          : ['Where airlock\'s time goes (per phase the slowest host; "·" rows are parts of the install):', '', phaseTable(a), '']),
        "Where the script's time goes:",
        '',
        phaseTable(m),
      ].join('\n'),
    );
  }
  const commit = capture('git', ['rev-parse', '--short', 'HEAD']);
  const body = [
    `Run on ${new Date().toISOString().slice(0, 10)} at commit ${commit} with \`.runtime/node dist/bench/engine-install.js --runs ${runs} --forms ${forms.join(',')}\`: ` +
      `${runs} runs of each side per form, alternating, each on a new lab of 3 bare hosts; medians; whole bench ${((Date.now() - started) / 60000).toFixed(1)} min. ` +
      `Machine: ${cpus()[0]?.model.trim()}, ${cpus().length} cores, shared (1-minute load average at the start and after each pair of runs: ${loads.join(', ')}).`,
    '',
    sections.join('\n\n'),
  ].join('\n');
  console.log(body);
  if (values.doc) await writeGeneratedBlock(values.doc, 'engine-install', '## Engine install on bare hosts (cluster up --engine)', body);
} finally {
  if (!values.keep) await rm(dir, { recursive: true, force: true });
}
