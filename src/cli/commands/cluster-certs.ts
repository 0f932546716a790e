/**
 * `airlock cluster certs` and `airlock cluster tokens`: the swarm's node
 * certificate lifetime, its root CA and its join tokens, changed through a
 * manager (this host's engine, or an inventory manager's over SSH), each
 * change journaled where airlock runs.
 */
import { certificateOf } from '../../cluster/certificates.js';
import { rotateJoinTokens, rotateRootCa, setNodeCertExpiry, DEFAULT_NODE_CERT_EXPIRY_MS, type RotationResult } from '../../cluster/swarm-ca.js';
import { inventoryManager, localManager, type ManagerEngine } from '../../cluster/through-manager.js';
import { asAirlockError, ExitCode, usageError } from '../../errors/index.js';
import { Journal } from '../../journal/journal.js';
import type { EventKind } from '../../journal/event-kinds.js';
import { loadInventory } from '../../remote/inventory.js';
import { stateDirFrom } from '../../store/state-dir.js';
import { durationText } from '../../units/duration.js';
import { printableText } from '../../units/printable.js';
import { boolOpt, jsonOpt, stringOpt, type Command, type CommandContext, str } from '../command.js';
import { certExpiryOption, durationOption } from '../duration-option.js';

const DEFAULT_ROTATE_TIMEOUT_MS = 600_000;

const managerOf = async (values: CommandContext['values']): Promise<ManagerEngine> =>
  str(values.inventory) ? inventoryManager(await loadInventory(str(values.inventory)!), { acceptNew: values['accept-new'] === true }) : localManager();

/**
 * Runs a change through the manager, journaling its outcome. The journal is
 * opened first: a state dir airlock cannot write refuses before the swarm changes.
 */
async function journaled<T>(values: CommandContext['values'], kind: EventKind, subject: string, change: (m: ManagerEngine) => Promise<{ result: T; message: string; details?: Record<string, unknown> }>): Promise<T> {
  const journal = Journal.open(stateDirFrom(str(values.state)));
  try {
    const manager = await managerOf(values);
    try {
      const { result, message, details } = await change(manager);
      journal.record({ kind, outcome: 'ok', subject, message, details: { manager: manager.where, ...details } });
      return result;
    } catch (e) {
      const err = asAirlockError(e);
      journal.record({ kind, outcome: 'failed', subject, reason: err.reason, message: err.message, details: { manager: manager.where } });
      throw e;
    } finally {
      await manager.close();
    }
  } finally {
    journal.close();
  }
}

const common = { inventory: stringOpt('i'), 'accept-new': boolOpt(), state: stringOpt(), ...jsonOpt };

const rotationJson = (r: RotationResult) => ({
  before: { fingerprint: r.before.fingerprint, notAfter: r.before.notAfter },
  after: { fingerprint: r.after.fingerprint, notAfter: r.after.notAfter },
  nodes: r.nodes,
  seconds: r.seconds,
});

export const clusterCertsCommands: Command[] = [
  {
    path: ['cluster', 'certs'],
    summary: "the swarm's node certificate lifetime and root CA: show, set (--expiry), rotate (--rotate)",
    usage: 'airlock cluster certs [--inventory hosts.yml [--accept-new]] [--expiry 2160h] [--rotate [--timeout 10m]] [--state DIR] [--json]',
    details:
      'Through a manager: this host, or with --inventory the first inventory manager that manages the swarm (over SSH).\n' +
      "With neither option, shows the node certificate lifetime and the root CA's end.\n" +
      '--expiry sets the lifetime of the node certificates the CA issues from now on (the engine\'s minimum is\n' +
      '1h: less is refused, exit 2, before the engine is asked); each node takes it at its next renewal.\n' +
      '--rotate makes the swarm a new root CA and waits (at most --timeout, default 10m) until every node\n' +
      'holds a certificate from it, reporting progress on stderr; given with --expiry, the new certificates\n' +
      'carry the new lifetime. The swarm ends a rotation only when every node renewed: with a node down it is\n' +
      'refused (exit 15, nodes-down), before anything changes. Each change is journaled (swarm.certs) in --state.\n' +
      'Exit 0 when done; 2 for a bad option; 4 when no inventory manager manages a swarm; 15 when this host\n' +
      'is no manager, the engine refused, or the rotation did not finish in time; 17 when no manager could be reached.',
    options: { ...common, expiry: stringOpt(), rotate: boolOpt(), timeout: stringOpt() },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const expiryMs = str(values.expiry) === undefined ? undefined : certExpiryOption(values.expiry);
      const rotate = values.rotate === true;
      const timeoutMs = durationOption('timeout', values.timeout, DEFAULT_ROTATE_TIMEOUT_MS);
      if (expiryMs === undefined && !rotate) {
        const m = await managerOf(values);
        try {
          const swarm = await m.docker.swarm.inspect();
          const ns = swarm.Spec.CAConfig?.NodeCertExpiry;
          const lifetime = durationText(ns ? ns / 1e6 : DEFAULT_NODE_CERT_EXPIRY_MS);
          const ca = swarm.TLSInfo?.TrustRoot ? certificateOf(swarm.TLSInfo.TrustRoot, 'the swarm root CA') : undefined;
          if (json) out(JSON.stringify({ manager: m.where, nodeCertExpiry: lifetime, ca: ca ? { fingerprint: ca.fingerprint, notAfter: ca.notAfter } : null, rotationInProgress: swarm.RootRotationInProgress === true }));
          else {
            out(`node certificates last ${lifetime}${ns ? '' : " (the engine's default)"}`);
            if (ca) out(`root CA ${ca.fingerprint} expires ${ca.notAfter}${swarm.RootRotationInProgress ? ' (a rotation is under way)' : ''}`);
          }
          return ExitCode.ok;
        } finally {
          await m.close();
        }
      }
      const report: Record<string, unknown> = {};
      if (expiryMs !== undefined) {
        const change = await journaled(values, 'swarm.certs', `expiry ${durationText(expiryMs)}`, async (m) => {
          const result = await setNodeCertExpiry(m.docker, expiryMs);
          report.manager = m.where;
          return { result, message: `node certificate lifetime ${durationText(result.before)} -> ${durationText(result.after)}`, details: { before: durationText(result.before), after: durationText(result.after) } };
        });
        report.expiry = { before: durationText(change.before), after: durationText(change.after) };
        if (!json) out(`node certificate lifetime: ${durationText(change.before)} -> ${durationText(change.after)} (nodes take it at their next renewal${rotate ? '; the rotation below renews them all' : ''})`);
      }
      if (rotate) {
        const r = await journaled(values, 'swarm.certs', 'rotate', async (m) => {
          report.manager = m.where;
          const onProgress = json ? undefined : (p: { done: number; of: number; waiting: string[] }) => void process.stderr.write(`${printableText(`root CA rotation: ${p.done}/${p.of} nodes renewed${p.waiting.length > 0 ? ` (waiting for ${p.waiting.join(', ')})` : ''}`)}\n`);
          const result = await rotateRootCa(m.docker, { timeoutMs, ...(onProgress ? { onProgress } : {}) });
          return { result, message: `root CA ${result.before.fingerprint} -> ${result.after.fingerprint}, ${result.nodes} nodes in ${result.seconds} s`, details: rotationJson(result) };
        });
        report.rotation = rotationJson(r);
        if (!json) {
          out(`root CA rotated in ${r.seconds} s: ${r.nodes} node${r.nodes === 1 ? '' : 's'} hold certificates from the new root`);
          out(`  was ${r.before.fingerprint}, expiring ${r.before.notAfter}`);
          out(`  now ${r.after.fingerprint}, expiring ${r.after.notAfter}`);
        }
      }
      if (json) out(JSON.stringify({ ok: true, ...report }));
      return ExitCode.ok;
    },
  },
  {
    path: ['cluster', 'tokens'],
    summary: "rotate the swarm's worker and manager join tokens",
    usage: 'airlock cluster tokens --rotate [--inventory hosts.yml [--accept-new]] [--state DIR] [--json]',
    details:
      'Through a manager (this host, or with --inventory the first inventory manager that manages the swarm),\n' +
      'makes new worker and manager join tokens: the old ones stop joining at once; nodes already joined are\n' +
      'not affected. The tokens are never printed (cluster up reads them from the manager when it joins a host).\n' +
      'Journaled (swarm.tokens) in --state. Exit 0 when done; 2 without --rotate; 4 when no inventory manager\n' +
      'manages a swarm; 15 when this host is no manager or the engine refused; 17 when no manager could be reached.',
    options: { ...common, rotate: boolOpt() },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      if (values.rotate !== true) throw usageError('cluster tokens: say --rotate', { hint: 'airlock cluster tokens --rotate makes new worker and manager join tokens; airlock never prints them' });
      let where = '';
      await journaled(values, 'swarm.tokens', 'rotate', async (m) => {
        await rotateJoinTokens(m.docker);
        where = m.where;
        return { result: undefined, message: 'worker and manager join tokens rotated' };
      });
      if (json) out(JSON.stringify({ ok: true, manager: where, rotated: ['worker', 'manager'] }));
      else out(`worker and manager join tokens rotated through ${where}: the old ones no longer join`);
      return ExitCode.ok;
    },
  },
];
