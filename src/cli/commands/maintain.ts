/** `airlock cluster maintain`: rolling maintenance of the inventory's hosts, one (or a few) at a time. */
import { appliedBy } from '../../apply/applied-by.js';
import { clusterMaintain, type MaintainAction, type MaintainReport } from '../../cluster/maintain.js';
import { availabilitySteps } from '../../cluster/maintain-drain.js';
import { Journal } from '../../journal/journal.js';
import { stateDirFrom } from '../../store/state-dir.js';
import { ExitCode, usageError } from '../../errors/index.js';
import { loadInventory } from '../../remote/inventory.js';
import { boolOpt, jsonOpt, stringOpt, type Command, str } from '../command.js';
import { durationOption } from '../duration-option.js';
import { table } from '../format.js';
import { printableText } from '../../units/printable.js';

const DEFAULT_STEP_TIMEOUT_MS = 10 * 60_000;

function parallelOf(v: unknown): number {
  if (v === undefined) return 1;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw usageError(`--parallel ${String(v)}: must be a whole number from 1 to 1000`);
  return n;
}

function actionOf(values: Record<string, unknown>): MaintainAction {
  const run = str(values.run);
  const engine = str(values.engine);
  if ((run === undefined) === (engine === undefined)) {
    throw usageError(run === undefined ? 'give the maintenance: --run CMD or --engine BUNDLE' : '--run and --engine go one at a time', {
      hint: "--run 'apt-get -y upgrade && systemctl restart docker' runs a command on each host; --engine BUNDLE upgrades each host's engine",
    });
  }
  if (run !== undefined) return { run };
  return { engine: engine!, ...(str(values['remote-airlock']) ? { remoteAirlock: str(values['remote-airlock'])! } : {}) };
}

export function maintainJson(r: MaintainReport): unknown {
  return {
    ok: r.ok,
    runId: r.runId,
    resumed: r.resumed ?? null,
    hosts: r.hosts.map((h) => ({
      host: h.host,
      outcome: h.outcome,
      seconds: Math.round(h.seconds * 10) / 10,
      steps: h.steps.map((s) => ({ step: s.step, seconds: Math.round(s.seconds * 10) / 10 })),
      ...(h.failedAt ? { failedAt: h.failedAt } : {}),
      ...(h.outputTail !== undefined ? { outputTail: h.outputTail } : {}),
      ...(h.error ? { error: h.error.toJSON() } : {}),
    })),
  };
}

export const maintainCommands: Command[] = [
  {
    path: ['cluster', 'maintain'],
    summary: "rolling maintenance: drain each host, run a command or upgrade its engine, bring it back (services keep their counts)",
    usage: "airlock cluster maintain --inventory hosts.yml [--hosts h1,h2] (--run 'CMD' | --engine BUNDLE [--remote-airlock PATH]) [--parallel N] [--timeout 10m] [--state DIR] [--reason TEXT] [--accept-new] [--json]",
    details:
      'Takes the hosts (--hosts, in that order; default: the inventory\'s) one at a time: checks that the\n' +
      "other nodes can take its tasks, drains it (its replicated tasks start elsewhere before they stop\n" +
      'there, so no service runs below its count), runs --run CMD on it over SSH (exit 0 expected) or\n' +
      "installs --engine BUNDLE there (engine install --drained-by-caller), waits until its engine answers\n" +
      "and its node is ready, activates it and waits until every replicated service runs its count.\n" +
      'The swarm is driven through a manager that is not the host maintained. --parallel N takes up to N\n' +
      'hosts at once when the other nodes can hold their tasks together and the managers left keep quorum.\n' +
      'A manager whose going down would lose quorum is refused before anything starts.\n' +
      'The first failure stops the run: that node stays drained, the other hosts are not touched. Each\n' +
      'node carries the run\'s mark (node label io.airlock.maintain=RUN:STEP) until the run finishes, so a\n' +
      'run started again (from any jump box) skips the hosts done and takes the one that failed first.\n' +
      '--timeout bounds each step (the command, each wait; default 10m). Each drain and activation is an\n' +
      'operation of the local journal (--state), with who ran it and --reason; `airlock recover` puts back\n' +
      'the services\' settings a killed drain left changed.\n' +
      'Exit 0 when every host was maintained; 20 when a host failed (the table names the step); 13 when\n' +
      'refused for quorum; 17 when a host could not be reached (nothing started).',
    options: {
      inventory: stringOpt('i'),
      hosts: stringOpt(),
      run: stringOpt(),
      engine: stringOpt(),
      'remote-airlock': stringOpt(),
      parallel: stringOpt(),
      timeout: stringOpt(),
      'accept-new': boolOpt(),
      state: stringOpt(),
      reason: stringOpt(),
      ...jsonOpt,
    },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const file = str(values.inventory);
      if (!file) throw usageError('--inventory FILE is required', { hint: 'the hosts.yml that lists the hosts (docs/remote.md)' });
      const action = actionOf(values);
      const parallel = parallelOf(values.parallel);
      const timeoutMs = durationOption('timeout', values.timeout, DEFAULT_STEP_TIMEOUT_MS, { min: { ms: 1000, why: 'too short for any step' } });
      const hosts = str(values.hosts)?.split(',').map((h) => h.trim()).filter((h) => h !== '');
      const inventory = await loadInventory(file);
      const journal = Journal.open(stateDirFrom(str(values.state)));
      const why = str(values.reason);
      const steps = availabilitySteps({ timeoutMs, journal, who: appliedBy(), hosts: inventory.hosts, via: inventory.file, ...(why ? { why } : {}) });
      let r: MaintainReport;
      try {
        r = await clusterMaintain({
          inventory,
          action,
          parallel,
          timeoutMs,
          steps,
          ...(hosts ? { hosts } : {}),
          ...(values['accept-new'] === true ? { acceptNew: true } : {}),
          ...(json ? {} : { onProgress: (host: string, step: string, detail: string) => void process.stderr.write(`${printableText(`${host}: ${step}${detail ? ` ${detail}` : ''}`)}\n`) }),
        });
      } finally {
        journal.close();
      }
      if (json) out(JSON.stringify(maintainJson(r)));
      else {
        out(
          table([
            ['HOST', 'STEPS', 'SECONDS', 'OUTCOME'],
            ...r.hosts.map((h) => [h.host, h.steps.map((s) => `${s.step} ${s.seconds.toFixed(1)}`).join(', ') || '-', h.seconds.toFixed(1), h.failedAt ? `failed at ${h.failedAt}` : h.outcome]),
          ]),
        );
        out(`run ${r.runId}${r.resumed ? ' (resumed)' : ''}: ${r.hosts.filter((h) => h.outcome === 'done').length} done, ${r.hosts.filter((h) => h.outcome === 'skipped').length} done before, ${r.hosts.filter((h) => h.outcome === 'failed').length} failed, ${r.hosts.filter((h) => h.outcome === 'not-started').length} not started`);
        for (const h of r.hosts.filter((x) => x.error)) {
          out(h.error!.message);
          if (h.error!.hint) out(`  hint: ${h.error!.hint}`);
        }
      }
      const failed = r.hosts.find((h) => h.error);
      return failed ? failed.error!.exitCode : ExitCode.ok;
    },
  },
];
