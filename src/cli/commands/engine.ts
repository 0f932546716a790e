import { stateDirFrom } from '../../store/state-dir.js';
import { boolOpt, jsonOpt, stringOpt, type Command, type CommandContext, str } from '../command.js';
import { durationOption, waitOption } from '../duration-option.js';
import { trustStoreOption } from '../trust-inputs.js';
import { sealingOption, sealingOpts } from '../sealing-inputs.js';
import type { EngineChangeResult } from '../../engine/engine-change.js';
import type { HostEngineOptions } from '../../engine/engine-host.js';

const changeOpts = {
  state: stringOpt(),
  timeout: stringOpt(),
  'drain-timeout': stringOpt(),
  'allow-downtime': boolOpt(),
  'drained-by-caller': boolOpt(),
  wait: stringOpt(),
  ...jsonOpt,
};

/** The options every engine change takes: where the state is, the host's engine config, how long to wait. */
export async function hostOptions(values: CommandContext['values'], json: boolean): Promise<HostEngineOptions> {
  const { hostEngineConfig } = await import('../../engine/host-config.js');
  const { defaultEngineHostPaths } = await import('../../engine/host-paths.js');
  const { appliedBy } = await import('../../apply/applied-by.js');
  return {
    stateDir: stateDirFrom(str(values.state)),
    paths: defaultEngineHostPaths(),
    config: await hostEngineConfig(),
    timeoutMs: durationOption('timeout', values.timeout, 120_000),
    drainTimeoutMs: durationOption('drain-timeout', values['drain-timeout'], 300_000),
    allowDowntime: values['allow-downtime'] === true,
    drainedByCaller: values['drained-by-caller'] === true,
    lockWaitMs: waitOption(values.wait),
    appliedBy: appliedBy(),
    say: json ? () => undefined : (line) => process.stderr.write(`${line}\n`),
  };
}

function changeLine(r: EngineChangeResult): string {
  const was = r.previous ? ` (was ${r.previous.form} ${r.previous.version})` : '';
  const change = r.change === null ? '' : `; journal change #${r.change}`;
  switch (r.outcome) {
    case 'unchanged':
      return `engine ${r.form} ${r.version} already installed and running: nothing changed`;
    case 'installed':
      return `engine ${r.form} ${r.version} installed and running${change}`;
    case 'reconfigured':
      return `engine ${r.form} ${r.version} reconfigured and restarted${change}`;
    case 'upgraded':
      return `engine upgraded to ${r.form} ${r.version}${was}${r.node ? `; node ${r.node} active again` : ''}${change}`;
    case 'rolled-back':
      return `engine rolled back to ${r.form} ${r.version}${was}${r.node ? `; node ${r.node} active again` : ''}${change}`;
  }
}

const CHANGE_DETAILS =
  'On a swarm manager the node is drained first, and the change waits until its tasks run elsewhere\n' +
  '(--drain-timeout, default 5m); the only active node of a swarm, or a worker (which cannot drain\n' +
  'itself), needs --allow-downtime, or the jump box: airlock cluster up --engine. The new engine must\n' +
  'answer /_ping, report its version and, on a swarm node, be an active, ready node again within\n' +
  '--timeout (default 2m); if not, the engine that ran before is restored and started, and the exit\n' +
  'code is 15 (engine-upgrade-rolled-back). Every step is journaled; after a kill -9, airlock recover\n' +
  'ends with one working engine. Needs root. docs/engine-install.md.';

export const engineCommands: Command[] = [
  {
    path: ['engine', 'install'],
    summary: 'install or upgrade the Docker Engine on this host from an engine bundle',
    usage: 'airlock engine install BUNDLE [--state DIR] [--trust DIR] [--timeout 2m] [--drain-timeout 5m] [--allow-downtime] [--drained-by-caller] [--allow-downgrade] [--wait 60s] [--json]',
    details:
      'Verifies and stores the bundle like bundle import, after a preflight of the host (kernel and its\n' +
      'modules, cgroups, iptables, the swarm ports, disk space, platform and C library, a conflicting\n' +
      'engine) that refuses before anything is stored (exit 13, preflight-failed, naming each check).\n' +
      'Then installs: the static form into /opt/airlock/engine/VERSION with the link current, and\n' +
      'its systemd units; the package form with apt in one offline transaction. Writes\n' +
      "/etc/docker/daemon.json from the host config (the agent config's engine: section), makes the\n" +
      'docker group, and starts the engine: with systemd where it runs, else by itself. A second run\n' +
      'with the same bundle changes nothing.\n' +
      CHANGE_DETAILS,
    options: { ...changeOpts, trust: stringOpt(), 'allow-downgrade': boolOpt(), ...sealingOpts },
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out }) {
      const { installEngineBundle } = await import('../../engine/engine-host.js');
      const r = await installEngineBundle(positionals[0]!, { ...(await hostOptions(values, json)), trust: await trustStoreOption(values), sealing: sealingOption(values), allowDowngrade: values['allow-downgrade'] === true });
      out(json ? JSON.stringify(r) : changeLine(r));
    },
  },
  {
    path: ['engine', 'rollback'],
    summary: 'go back to the engine the last engine change replaced',
    usage: 'airlock engine rollback [--state DIR] [--timeout 2m] [--drain-timeout 5m] [--allow-downtime] [--wait 60s] [--json]',
    details: 'The same steps as an upgrade, to the version the newest committed change replaced (its folder, or its\npackages from the stored bundle).\n' + CHANGE_DETAILS,
    options: changeOpts,
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const { rollbackHostEngine } = await import('../../engine/engine-host.js');
      const r = await rollbackHostEngine(await hostOptions(values, json));
      out(json ? JSON.stringify(r) : changeLine(r));
    },
  },
  {
    path: ['engine', 'status'],
    summary: "the host's Docker Engine: installed form and version, running or not, the preflight, the last changes",
    usage: 'airlock engine status [--state DIR] [--json]',
    details: 'Read only. Exit 0 when an engine runs and the preflight has no failure, else 15.',
    options: { state: stringOpt(), ...jsonOpt },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const { engineStatus, engineStatusLines } = await import('../../engine/engine-status.js');
      const { defaultEngineHostPaths } = await import('../../engine/host-paths.js');
      const { hostEngineConfig } = await import('../../engine/host-config.js');
      const status = await engineStatus({ stateDir: stateDirFrom(str(values.state)), paths: defaultEngineHostPaths(), config: await hostEngineConfig() });
      out(json ? JSON.stringify(status) : engineStatusLines(status).join('\n'));
      if (!status.running || !status.preflight.ok) process.exitCode = 15;
    },
  },
];
