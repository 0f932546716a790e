import { Docker } from '../../docker/index.js';
import { runChecks } from '../../doctor/checks.js';
import { stateDirFrom } from '../../store/state-dir.js';
import { trustDirFrom } from '../../trust/trust-store.js';
import { ExitCode } from '../../errors/index.js';
import { jsonOpt, stringOpt, type Command } from '../command.js';
import { table } from '../format.js';
import { certWarnOption, freshnessWarnOption } from '../duration-option.js';
import { sealingOpts, sealingOption } from '../sealing-inputs.js';

export const doctorCommands: Command[] = [
  {
    path: ['doctor'],
    summary: 'check that this host can take bundles',
    usage: 'airlock doctor [--state DIR] [--trust DIR] [--identity PATH]… [--cert-warn 720h] [--trust-warn-age 72h] [--json]',
    details: 'Checks the Docker Engine (reachable, Docker 20.10 or newer, API version, storage driver, swarm state; on a swarm node, when its\ncertificate and the root CA end, warned within --cert-warn, default 720h), free space in\nthe state dir, the trust store\'s ownership and permissions (with a root of trust: the metadata held, and the newest timestamp\'s\nage, warned past --trust-warn-age, default 72h: a freeze of the channel), and the site identities that open sealed secrets\n(--identity, else /etc/airlock/site-keys) with the host\'s policy. Exits 0 when nothing fails, 3 otherwise.',
    options: { state: stringOpt(), trust: stringOpt(), 'cert-warn': stringOpt(), 'trust-warn-age': stringOpt(), ...sealingOpts, ...jsonOpt },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const certWarnMs = certWarnOption(values['cert-warn']);
      const docker = new Docker({ retry: false });
      try {
        const results = await runChecks({
          docker,
          stateDir: stateDirFrom(values.state as string | undefined),
          trustDir: trustDirFrom(values.trust as string | undefined),
          sealing: sealingOption(values),
          certWarnMs,
          freshnessWarnMs: freshnessWarnOption('trust-warn-age', values['trust-warn-age']),
        });
        const ok = results.every((r) => r.status !== 'fail');
        if (json) out(JSON.stringify({ ok, checks: results }));
        else {
          out(table(results.map((r) => [r.status.toUpperCase(), r.name, r.detail])));
          for (const r of results.filter((r) => r.hint && r.status !== 'pass')) out(`  ${r.name}: ${r.hint}`);
        }
        return ok ? ExitCode.ok : ExitCode.config;
      } finally {
        await docker.close();
      }
    },
  },
];
