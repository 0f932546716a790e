/** `airlock node drain|activate|pause NODE`: a swarm node's availability, through the local manager or an inventory's. */
import type { Docker } from '../../docker/index.js';
import type { Journal } from '../../journal/journal.js';
import type { Inventory } from '../../remote/inventory.js';
import type { DrainProgress, DrainReport, AvailabilityReport, NodeOpOptions } from '../../cluster/node-drain.js';
import { stateDirFrom } from '../../store/state-dir.js';
import { boolOpt, jsonOpt, stringOpt, type Command, type CommandContext, str } from '../command.js';
import { durationOption, waitOption } from '../duration-option.js';

const DEFAULT_DRAIN_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_ACTIVATE_TIMEOUT_MS = 2 * 60_000;

const commonOpts = { inventory: stringOpt('i'), 'accept-new': boolOpt(), state: stringOpt(), reason: stringOpt(), wait: stringOpt(), ...jsonOpt };

const WHERE =
  'Runs against the local Docker socket, which must be a swarm manager\'s (exit 15, not-swarm-manager,\n' +
  'otherwise), or from the jump box with --inventory hosts.yml through the first manager of the\n' +
  'inventory that answers over SSH. NODE is a node ID, a hostname, or (with --inventory) a host name.\n' +
  'An unknown node is exit 4 naming the nodes there are. Journaled in the local journal (--state) as an\n' +
  'operation with who ran it, when and --reason; the apply lock is held meanwhile (--wait).';

/** The manager's engine, the journal and the apply lock for one node operation; `done` releases them all. */
async function openFor(values: CommandContext['values'], what: string) {
  const [{ Journal }, { acquireApplyLock }, { appliedBy }] = await Promise.all([import('../../journal/journal.js'), import('../../journal/lock.js'), import('../../apply/applied-by.js')]);
  // Options are checked before anything is opened or made.
  const lockWaitMs = waitOption(values.wait);
  const journal: Journal = Journal.open(stateDirFrom(str(values.state)));
  let release: (() => void) | undefined;
  let close: () => Promise<void> = async () => undefined;
  try {
    release = await acquireApplyLock(journal, what, lockWaitMs);
    let manager: Docker;
    let inventory: Inventory | undefined;
    const file = str(values.inventory);
    if (file) {
      const [{ loadInventory }, { connectManager }] = await Promise.all([import('../../remote/inventory.js'), import('../../cluster/connect.js')]);
      inventory = await loadInventory(file);
      const c = await connectManager(inventory, { acceptNew: values['accept-new'] === true });
      manager = c.docker;
      close = () => c.session.close();
    } else {
      const { supportedEngine } = await import('../engine.js');
      const local = await supportedEngine();
      manager = local;
      close = () => local.close();
    }
    const opts: NodeOpOptions = {
      journal,
      who: appliedBy(),
      ...(str(values.reason) ? { why: str(values.reason)! } : {}),
      ...(inventory ? { hosts: inventory.hosts, via: inventory.file } : {}),
    };
    const done = async () => {
      await close();
      release?.();
      journal.close();
    };
    return { manager, opts, done };
  } catch (e) {
    await close();
    release?.();
    journal.close();
    throw e;
  }
}

/** One stderr line per service whenever its counts change. */
function progressPrinter(json: boolean): ((p: DrainProgress[]) => void) | undefined {
  if (json) return undefined;
  const last = new Map<string, string>();
  return (ps) => {
    for (const p of ps) {
      const line = p.desired > 0 ? `${p.service}: ${p.runningElsewhere}/${p.desired} running elsewhere, ${p.stillOnNode} still on the node` : `${p.service}: ${p.stillOnNode} still on the node`;
      if (last.get(p.service) === line) continue;
      last.set(p.service, line);
      process.stderr.write(`  ${line}\n`);
    }
  };
}

function drainLine(r: DrainReport): string {
  const name = `${r.node.hostname} (${r.node.id.slice(0, 12)})`;
  if (r.outcome === 'already-drained') return `node ${name} is drained already: nothing changed`;
  const parts = [
    r.moved.length ? `moved ${r.moved.map((p) => `${p.service} (${p.runningElsewhere}/${p.desired} elsewhere)`).join(', ')}` : 'no replicated service to move',
    ...(r.stopped.length ? [`stopped there: ${r.stopped.join(', ')}`] : []),
    ...(r.short.length ? [`left short (--force): ${r.short.map((s) => `${s.service} ${s.desired - s.shortBy}/${s.desired}`).join(', ')}`] : []),
  ];
  return `node ${name} drained in ${r.seconds.toFixed(1)} s: ${parts.join('; ')}${r.operation !== null ? `; journal operation #${r.operation}` : ''}`;
}

function availabilityLine(r: AvailabilityReport): string {
  const name = `${r.node.hostname} (${r.node.id.slice(0, 12)})`;
  const change = r.before === r.after ? `was ${r.after} already` : `${r.before} -> ${r.after}`;
  return `node ${name}: ${change}, ${r.state}${r.operation !== null ? `; journal operation #${r.operation}` : ''}`;
}

export const nodeCommands: Command[] = [
  {
    path: ['node', 'drain'],
    summary: 'drain a swarm node keeping every replicated service at its count: refused when the others lack room',
    usage: 'airlock node drain NODE [--inventory hosts.yml [--accept-new]] [--force] [--timeout 10m] [--reason TEXT] [--state DIR] [--wait 60s] [--json]',
    details:
      'First checks that the other active nodes can take the node\'s replicated tasks (placement\n' +
      'constraints, max replicas per node, reservations, host ports, platforms); when a service would\n' +
      'fall short it refuses (exit 14, drain-short) naming each service, its desired count and what would\n' +
      'run, and changes nothing, unless --force (those tasks then stop). The only active node is refused\n' +
      'the same way (only-active-node). Then: pauses the node, moves each replicated service\'s tasks off\n' +
      'it start-first (the new task runs elsewhere before the old one stops), waits until each runs its\n' +
      'desired count elsewhere (--timeout, default 10m; progress per service on stderr), drains the node\n' +
      '(global services stop there) and puts each service\'s placement and update settings back as they\n' +
      'were, which restarts nothing. After a kill, airlock recover puts them back. docs/operations.md.\n' +
      WHERE,
    options: { ...commonOpts, force: boolOpt(), timeout: stringOpt() },
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out }) {
      const timeoutMs = durationOption('timeout', values.timeout, DEFAULT_DRAIN_TIMEOUT_MS);
      const { drainNode } = await import('../../cluster/node-drain.js');
      const { manager, opts, done } = await openFor(values, `node drain ${positionals[0]!}`);
      try {
        const onProgress = progressPrinter(json);
        const r = await drainNode(manager, positionals[0]!, { ...opts, timeoutMs, force: values.force === true, ...(onProgress ? { onProgress } : {}) });
        out(json ? JSON.stringify(r) : drainLine(r));
      } finally {
        await done();
      }
    },
  },
  {
    path: ['node', 'activate'],
    summary: 'let a swarm node take tasks again, and wait until it is ready',
    usage: 'airlock node activate NODE [--inventory hosts.yml [--accept-new]] [--timeout 2m] [--reason TEXT] [--state DIR] [--wait 60s] [--json]',
    details: 'Sets the node active and waits (--timeout, default 2m) until the swarm sees it ready; a node\nstill not ready then is exit 15 (node-not-ready). Tasks already running elsewhere stay there.\n' + WHERE,
    options: { ...commonOpts, timeout: stringOpt() },
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out }) {
      const timeoutMs = durationOption('timeout', values.timeout, DEFAULT_ACTIVATE_TIMEOUT_MS);
      const { activateNode } = await import('../../cluster/node-drain.js');
      const { manager, opts, done } = await openFor(values, `node activate ${positionals[0]!}`);
      try {
        const r = await activateNode(manager, positionals[0]!, { ...opts, timeoutMs });
        out(json ? JSON.stringify(r) : availabilityLine(r));
      } finally {
        await done();
      }
    },
  },
  {
    path: ['node', 'pause'],
    summary: 'stop new tasks from landing on a swarm node; those there keep running',
    usage: 'airlock node pause NODE [--inventory hosts.yml [--accept-new]] [--reason TEXT] [--state DIR] [--wait 60s] [--json]',
    details: WHERE,
    options: commonOpts,
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out }) {
      const { pauseNode } = await import('../../cluster/node-drain.js');
      const { manager, opts, done } = await openFor(values, `node pause ${positionals[0]!}`);
      try {
        const r = await pauseNode(manager, positionals[0]!, opts);
        out(json ? JSON.stringify(r) : availabilityLine(r));
      } finally {
        await done();
      }
    },
  },
];
