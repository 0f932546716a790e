import { Agent } from '../../agent/agent.js';
import { loadStartableConfig } from '../../agent/startable-config.js';
import { DEFAULT_CONFIG_FILE, loadAgentConfig } from '../../agent/config.js';
import { boolOpt, jsonOpt, stringOpt, type Command } from '../command.js';
import { formatBytes } from '../../units/bytes.js';

export const agentCommands: Command[] = [
  {
    path: ['agent'],
    summary: 'run the unattended agent: inbox, imports, maintenance window, swarm join, prune, drift',
    usage: 'airlock agent [--config FILE] [--check-config [--json]]',
    details:
      `Reads ${DEFAULT_CONFIG_FILE} (or --config). Runs in the foreground, as systemd's airlock-agent.service\n` +
      'does, and logs one logfmt line per event to stderr. SIGTERM finishes the work in hand and stops;\n' +
      'SIGHUP reads the config again (a bad one is logged and the running one kept).\n' +
      '--check-config validates the config, prints what it resolved to, and exits (3 when it is bad):\n' +
      'it refuses exactly what the agent would refuse at start.',
    options: { config: stringOpt('c'), 'check-config': boolOpt(), ...jsonOpt },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const file = typeof values.config === 'string' ? values.config : DEFAULT_CONFIG_FILE;
      if (values['check-config']) {
        const config = await loadStartableConfig(file);
        if (json) out(JSON.stringify(config));
        else out(checkSummary(config));
        return 0;
      }
      const agent = new Agent({ configFile: file });
      // Handlers first: a signal during start-up must not meet node's default (death for SIGHUP).
      let started = false;
      let stops = 0;
      let stopped: () => void = () => undefined;
      const done = new Promise<void>((resolve) => (stopped = resolve));
      const stop = () => {
        // A second signal means now: what was in hand is journaled and resumes at the next start.
        if (++stops > 1) process.exit(143);
        if (started) void agent.stop().then(stopped);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      process.on('SIGHUP', () => void (started && agent.reload()));
      await agent.start();
      started = true;
      if (stops > 0) void agent.stop().then(stopped);
      await done;
      return 0;
    },
  },
];

function checkSummary(c: Awaited<ReturnType<typeof loadAgentConfig>>): string {
  const lines = [
    `${c.file}: ok`,
    `  state dir     ${c.stateDir}`,
    `  trust dir     ${c.trustDir}`,
    `  inbox         ${c.inbox.dir} (poll "${c.inbox.poll}"${c.inbox.watch ? ', watched' : ''})`,
    ...c.inbox.sources.slice(1).map((s) =>
      s.type === 'folder'
        ? `  source        ${s.name}: ${s.path}`
        : `  source        ${s.name}: ${s.url} (at least ${formatBytes(s.minRate)}/s${s.deleteAfter ? ', deletes after import' : ''})`,
    ),
    `  apply         ${c.apply.mode}, ${c.apply.window ? `window "${c.apply.window.cron}" for ${c.apply.window.durationMs / 1000} s` : 'no window'}`,
    `  swarm         ${c.swarm.mode}${c.swarm.mode === 'join' ? ` as ${c.swarm.role} via ${c.swarm.managers.join(', ')} (token ${c.swarm.tokenFile})` : c.swarm.mode === 'init' ? ` advertising ${c.swarm.advertiseAddr}` : ''}`,
    `  retention     ${c.retention.schedule ? `"${c.retention.schedule}", keep ${c.retention.keep}` : 'off'}`,
    `  drift check   ${c.drift.schedule ? `"${c.drift.schedule}"${c.drift.reapply ? ', re-applies' : ', records only'}` : 'off'}`,
  ];
  return lines.join('\n');
}
