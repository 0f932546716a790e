/** `airlock cluster up` and `airlock cluster status`: the swarm of the inventory's hosts, driven over SSH from the jump box. */
import { clusterUp, type ClusterUpReport } from '../../cluster/cluster-up.js';
import { clusterStatus, type ClusterStatus } from '../../cluster/status.js';
import { AirlockError, ExitCode, type ExitCodeName, usageError } from '../../errors/index.js';
import { loadInventory, type Inventory, type InventoryHost } from '../../remote/inventory.js';
import { DEFAULT_PARALLEL } from '../../remote/for-each-host.js';
import { boolOpt, jsonOpt, stringOpt, type Command, type CommandContext, str } from '../command.js';
import { printableText } from '../../units/printable.js';
import { table } from '../format.js';
import { certWarnOption } from '../duration-option.js';
import { timeLeft } from '../../cluster/certificates.js';
import { durationText } from '../../units/duration.js';


function parallelOf(v: unknown): number {
  if (v === undefined) return DEFAULT_PARALLEL;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw usageError(`--parallel ${String(v)}: must be a whole number from 1 to 1000`);
  return n;
}

function inventoryOf(values: CommandContext['values']): string {
  const file = str(values.inventory);
  if (!file) throw usageError('--inventory FILE is required', { hint: 'the hosts.yml that lists the hosts (docs/remote.md); scripts/lab writes one for a lab' });
  return file;
}

/** Progress on stderr, one line per event: stdout is for the result. */
const progressLine = (json: boolean) => (json ? undefined : (h: InventoryHost, event: string) => void process.stderr.write(`${printableText(`${h.name}: ${event}`)}\n`));

/** 17 when any host failed remotely, else the first failure's own code. */
function exitCodeOf(errors: AirlockError[]): number {
  if (errors.length === 0) return ExitCode.ok;
  if (errors.some((e) => e.kind === 'remote')) return ExitCode.remote;
  return errors[0]!.exitCode;
}

function errorLines(failed: { host: string; error: AirlockError }[]): string[] {
  return failed.flatMap(({ host, error }) => [
    error.message.startsWith(`${host} `) || error.message.startsWith(`${host}:`) ? error.message : `${host}: ${error.message}`,
    ...(error.hint ? [`  hint: ${error.hint}`] : []),
  ]);
}

export function upJson(r: ClusterUpReport): unknown {
  return {
    ok: r.ok,
    manager: r.manager ?? null,
    clusterId: r.clusterId ?? null,
    hosts: r.hosts.map((h) => ({
      host: h.host,
      address: h.address,
      role: h.role,
      action: h.action,
      engineVersion: h.engineVersion ?? null,
      nodeId: h.nodeId ?? null,
      changes: h.changes,
      ...(h.error ? { error: h.error.toJSON() } : {}),
    })),
    unlisted: r.unlisted.map((u) => ({ nodeId: u.nodeId, hostname: u.hostname, address: u.address, role: u.role, state: u.state, action: u.action, ...(u.error ? { error: u.error.toJSON() } : {}) })),
  };
}

/** `cluster up --engine`: the engine installed where none runs; the hosts that failed, with their errors as the host said them. */
async function installEngines(inventory: Inventory, bundle: string, values: CommandContext['values'], parallel: number, json: boolean) {
  const { rolloutBundle } = await import('../../cluster/rollout.js');
  const report = await rolloutBundle({
    inventory,
    bundle,
    install: 'engine',
    parallel,
    acceptNew: values['accept-new'] === true,
    ...(str(values['remote-airlock']) ? { remoteAirlock: str(values['remote-airlock'])! } : {}),
    ...(str(values.timeout) ? { timeout: str(values.timeout)! } : {}),
    ...(json ? {} : { onProgress: (host: string, phase: string, detail: string) => void process.stderr.write(`${printableText(`${host}: engine ${phase} ${detail}`)}\n`) }),
  });
  const failed = new Map<string, { host: string; error: AirlockError }>();
  for (const h of report.hosts) {
    if (h.error) failed.set(h.host, { host: h.host, error: new AirlockError(h.error.kind as ExitCodeName, `${h.host}: engine not installed (${h.error.step}): ${h.error.message}`, { reason: h.error.reason, subject: h.host, ...(h.error.hint ? { hint: h.error.hint } : {}) }) });
  }
  return { report, failed };
}

export function statusJson(s: ClusterStatus): unknown {
  return {
    manager: s.manager ?? null,
    clusterId: s.clusterId ?? null,
    nodes: s.nodes,
    ca: s.ca ?? null,
    quorum: s.quorum ?? null,
    certWarn: durationText(s.certWarnMs),
    warnings: s.warnings,
    notInSwarm: s.notInSwarm,
    errors: s.errors.map((e) => ({ host: e.host, ...e.error.toJSON() })),
  };
}

/** One line for the root CA and one per node: when its certificate ends. */
function certificateLines(s: ClusterStatus): string[] {
  if (!s.ca && s.nodes.length === 0) return [];
  const mark = (state: string) => (state === 'ok' ? '' : ` ${state.toUpperCase()}`);
  const rows = [
    ...(s.ca ? [['root CA', s.ca.notAfter, timeLeft(s.ca.notAfter) + mark(s.ca.state)]] : []),
    ...s.nodes.map((n) => [
      `${n.host ?? n.hostname} node`,
      n.certificate?.notAfter ?? '-',
      n.certificate ? timeLeft(n.certificate.notAfter) + mark(n.certificate.state) : n.certificateError ? 'not read' : 'not read (host or its engine not reached)',
    ]),
  ];
  return [`certificates (warned within ${durationText(s.certWarnMs)}):`, ...table([['CERTIFICATE', 'EXPIRES', 'LEFT'], ...rows]).split('\n').map((l) => `  ${l}`)];
}

const labelText = (labels: Record<string, string>): string =>
  Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',') || '-';

export const clusterCommands: Command[] = [
  {
    path: ['cluster', 'up'],
    summary: "make the inventory's Docker hosts one swarm: init, join, roles and labels (idempotent)",
    usage: 'airlock cluster up --inventory hosts.yml [--prune] [--engine BUNDLE [--timeout 2m]] [--remote-airlock PATH] [--parallel N] [--accept-new] [--json]',
    details:
      'Connects to every host over SSH (at most --parallel at a time, default 8) and speaks its Docker\n' +
      "Engine API through the connection (the host's /var/run/docker.sock is forwarded; no TCP port of\n" +
      'the engine is opened). With no swarm yet, initialises one on the first manager of the inventory,\n' +
      'advertising its inventory address. Joins the other managers, then the workers, with tokens read\n' +
      'from that manager (kept in memory only). Sets the node labels the inventory names and the role it\n' +
      'gives: promotions first, then demotions, one at a time; a demotion that would lose the managers\n' +
      "quorum is refused before anything is changed. Labels airlock set before (listed in the node label\n" +
      'io.airlock.labels) that the inventory no longer names are removed; other labels are left alone.\n' +
      'A host already in the swarm is left as it is; a host in another swarm is reported, never made to\n' +
      'leave. A host that joins a swarm made before joins paused: it is given the bundles of the stacks\n' +
      "deployed (from the manager's journal and bundle files, imported with the host's own airlock) and\n" +
      'only then set active; one whose import fails stays paused. Nodes the inventory does not list are\n' +
      'reported; with --prune they are drained (their tasks running elsewhere first), demoted if managers\n' +
      'and removed from the swarm. Running it again changes nothing.\n' +
      'Host keys are checked against the inventory\'s known_hosts: an unknown host is refused unless\n' +
      '--accept-new (which adds its key); a changed key is always refused.\n' +
      'With --engine BUNDLE (an engine bundle, docs/engine-install.md), first installs the engine on every\n' +
      'host where none runs: the bundle is uploaded as bundle apply --inventory does and the host runs\n' +
      "'airlock engine install' (preflight first). A host that fails is named with its reason and left\n" +
      'out of the swarm; the others go on. Hosts whose engine runs are left alone (upgrades: airlock\n' +
      'engine install on the host).\n' +
      'Exit 0 when every host is in the swarm as the inventory says; 17 when a host failed (see the table)\n' +
      'or a demotion was refused for quorum (nothing changed).',
    options: { inventory: stringOpt('i'), prune: boolOpt(), engine: stringOpt(), 'remote-airlock': stringOpt(), timeout: stringOpt(), parallel: stringOpt(), 'accept-new': boolOpt(), ...jsonOpt },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const parallel = parallelOf(values.parallel);
      const inventory = await loadInventory(inventoryOf(values));
      const onHost = progressLine(json);
      const engines = str(values.engine) ? await installEngines(inventory, str(values.engine)!, values, parallel, json) : undefined;
      const withEngine = engines ? { ...inventory, hosts: inventory.hosts.filter((h) => !engines.failed.has(h.name)) } : inventory;
      const r = await clusterUp(withEngine, {
        parallel,
        acceptNew: values['accept-new'] === true,
        prune: values.prune === true,
        ...(str(values['remote-airlock']) ? { remoteAirlock: str(values['remote-airlock'])! } : {}),
        ...(onHost ? { onHost } : {}),
      });
      const failed = [
        ...(engines?.failed.values() ?? []),
        ...r.hosts.filter((h) => h.error).map((h) => ({ host: h.host, error: h.error! })),
        ...r.unlisted.filter((u) => u.error).map((u) => ({ host: u.hostname || u.nodeId.slice(0, 12), error: u.error! })),
      ];
      if (json) {
        out(JSON.stringify({ ...(upJson(r) as object), ...(engines ? { ok: r.ok && engines.failed.size === 0, engines: engines.report.hosts } : {}) }));
      } else {
        if (engines) {
          out(table([['HOST', 'ENGINE', 'ACTION'], ...engines.report.hosts.map((h) => [h.host, h.engine ? `${h.engine.form ?? ''} ${h.engine.version}`.trim() : '-', h.error ? `failed at ${h.error.step}: ${h.error.reason}` : (h.engine?.action ?? '-')])]));
          out('');
        }
        out(
          table([
            ['HOST', 'ADDRESS', 'ROLE', 'ENGINE', 'ACTION', 'CHANGES'],
            ...r.hosts.map((h) => [h.host, h.address, h.role, h.engineVersion ?? '-', h.action, h.action === 'error' ? (h.error?.reason ?? 'error') : h.changes.join('; ') || '-']),
          ]),
        );
        if (r.unlisted.length > 0) {
          out(values.prune === true ? 'nodes the inventory does not list (--prune):' : 'nodes the inventory does not list (left in the swarm; --prune removes them):');
          for (const u of r.unlisted) out(`  ${u.hostname || '-'} ${u.nodeId.slice(0, 12)} ${u.address || '-'} ${u.role} ${u.state}: ${u.action}`);
        }
        const count = (a: string) => r.hosts.filter((h) => h.action === a).length;
        const changed = r.hosts.length - count('unchanged') - count('error');
        out(
          `${r.clusterId ? `swarm ${r.clusterId.slice(0, 12)}` : 'no swarm'}${r.manager ? ` through ${r.manager}` : ''}: ` +
            `${changed} changed, ${count('unchanged')} unchanged, ${failed.length} failed`,
        );
        for (const l of errorLines(failed)) out(l);
      }
      return exitCodeOf(failed.map((f) => f.error));
    },
  },
  {
    path: ['cluster', 'status'],
    summary: "the swarm's nodes (roles, availability, labels, engine versions) and inventory hosts not in it",
    usage: 'airlock cluster status --inventory hosts.yml [--cert-warn 720h] [--parallel N] [--accept-new] [--json]',
    details:
      "Asks the first reachable manager of the inventory for the swarm's nodes and matches them to the\n" +
      'inventory hosts. Lists the hosts that are not in the swarm, and why (not joined, in another\n' +
      'swarm, unreachable). Shows when each node\'s certificate ends (read on the host, below the engine\'s\n' +
      'data root) and when the root CA does, warning of those within --cert-warn (default 720h, 30 days)\n' +
      'or past their end; and the managers reachable against the quorum the swarm needs, warning when\n' +
      'losing one more manager would lose it. Warnings do not change the exit code.\n' +
      'Exit 0 when a manager answered and every host was reached; 17 when a host\n' +
      'could not be reached; 4 when no inventory host manages a swarm.',
    options: { inventory: stringOpt('i'), 'cert-warn': stringOpt(), parallel: stringOpt(), 'accept-new': boolOpt(), ...jsonOpt },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const parallel = parallelOf(values.parallel);
      const certWarnMs = certWarnOption(values['cert-warn']);
      const inventory = await loadInventory(inventoryOf(values));
      const s = await clusterStatus(inventory, { parallel, certWarnMs, acceptNew: values['accept-new'] === true });
      if (json) {
        out(JSON.stringify(statusJson(s)));
      } else {
        if (s.manager) out(`swarm ${s.clusterId?.slice(0, 12) ?? '?'}, as ${s.manager} sees it:`);
        else out('no swarm: no inventory host manages one (airlock cluster up makes it)');
        if (s.nodes.length > 0) {
          out(
            table([
              ['HOST', 'HOSTNAME', 'ADDRESS', 'ROLE', 'AVAILABILITY', 'STATE', 'MANAGER', 'ENGINE', 'LABELS'],
              ...s.nodes.map((n) => [
                n.host ?? '-',
                n.hostname || '-',
                n.address ?? '-',
                n.role,
                n.availability || '-',
                n.state,
                n.leader ? 'leader' : (n.managerReachability ?? '-'),
                n.engineVersion ?? '-',
                labelText(n.labels),
              ]),
            ]),
          );
        }
        for (const l of certificateLines(s)) out(l);
        if (s.quorum) out(`quorum: ${s.quorum.reachable} of ${s.quorum.managers} managers reachable, ${s.quorum.needed} needed`);
        for (const w of s.warnings) out(`warning: ${w}`);
        if (s.notInSwarm.length > 0) {
          out('not in the swarm:');
          // Unreachable hosts are explained in full below, with the errors.
          for (const m of s.notInSwarm) out(`  ${m.host} (${m.address}): ${m.reason === 'unreachable' ? 'unreachable (see below)' : m.message.replace(/^\S+ \([^)]*\): /, '')}`);
        }
        for (const l of errorLines(s.errors)) out(l);
      }
      if (s.errors.length > 0) return exitCodeOf(s.errors.map((e) => e.error));
      return s.manager ? ExitCode.ok : ExitCode.notFound;
    },
  },
];
