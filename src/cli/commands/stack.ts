import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Docker } from '../../docker/index.js';
import { notFound, usageError } from '../../errors/index.js';
import type { ComposeNotice } from '../../compose/model.js';
import { deployStack } from '../../apply/stack-deploy.js';
import { planDeploy, removeStack } from '../../stack/deploy.js';
import { desiredStack } from '../../stack/desired.js';
import { identityPathsFrom } from '../../seal/host-keys.js';
import { hostKeysOf } from '../../seal/sealing-options.js';
import { stateDirFrom } from '../../store/state-dir.js';
import { listStacks } from '../../stack/state.js';
import type { Plan, Change } from '../../stack/types.js';
import type { EnvChange } from '../../stack/env-mask.js';
import { boolOpt, jsonOpt, stringOpt, type Command } from '../command.js';
import { supportedEngine } from '../engine.js';
import { timeoutOption } from '../duration-option.js';
import { printableText } from '../../units/printable.js';
import { table } from '../format.js';

const composeOpts = { 'compose-file': { type: 'string' as const, short: 'c', multiple: true }, prune: boolOpt() };

async function loadDesired(docker: Docker, stack: string, files: string[] | undefined) {
  if (!files?.length) throw usageError('name at least one compose file with -c FILE');
  const inputs = [];
  for (const f of files) {
    try {
      inputs.push({ name: f, content: await readFile(f, 'utf8') });
    } catch {
      throw notFound(`compose file not found: ${f}`, { subject: f });
    }
  }
  const apiVersion = await docker.client.apiVersion();
  // As docker: relative paths resolve against the first file's folder; variables come from the environment.
  // Secret and config names are keyed as a bundle apply keys them (src/seal/host-keys.ts).
  const keys = hostKeysOf(stateDirFrom(undefined), { identities: identityPathsFrom([]) });
  return desiredStack({ stack, files: inputs, workingDir: dirname(resolve(files[0]!)), env: { ...process.env } as Record<string, string>, apiVersion, nameSuffix: () => keys.plainNames() });
}

export function printWarnings(warnings: ComposeNotice[]): void {
  for (const w of warnings) process.stderr.write(`${printableText(`warning: ${w.file ? `${w.file}: ` : ''}${w.path}: ${w.message}`)}\n`);
}

const VERB: Record<Change['action'], string> = {
  'create-network': 'Creating network',
  'create-secret': 'Creating secret',
  'create-config': 'Creating config',
  'create-service': 'Creating service',
  'update-service': 'Updating service',
  'remove-service': 'Removing service',
  'remove-secret': 'Removing secret',
  'remove-config': 'Removing config',
  'remove-network': 'Removing network',
};

const short = (v: unknown): string => {
  const s = v === undefined ? '(none)' : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

/** A masked Env change (env-mask.ts): the variables by name, never their values. */
function envLine(e: EnvChange): string {
  const parts = [
    e.changed.length ? `changed ${e.changed.join(', ')}` : '',
    e.added.length ? `added ${e.added.join(', ')}` : '',
    e.removed.length ? `removed ${e.removed.join(', ')}` : '',
  ].filter(Boolean);
  return `${parts.join('; ') || 'reordered'} (values hidden; --show-env shows them)`;
}

/** What a plan would change, for people. Secret data is never part of it; env values only as the plan holds them (maskPlanEnv). */
export function planLines(plan: Plan): string[] {
  const lines: string[] = [];
  for (const step of [...plan.prepare, ...plan.services]) {
    const sign = step.action.startsWith('create') ? '+' : step.action.startsWith('update') ? '~' : '-';
    lines.push(`${sign} ${step.action.split('-')[1]} ${step.name}`);
    if (step.action === 'update-service') for (const c of step.changes) lines.push(`    ${c.path}: ${'env' in c ? envLine(c.env as EnvChange) : `${short(c.before)} -> ${short(c.after)}`}`);
  }
  for (const name of plan.unchanged) lines.push(`= service ${name} (unchanged)`);
  for (const step of plan.cleanup) lines.push(`- ${step.action.split('-')[1]} ${step.name} (after the services converge)`);
  return lines.length ? lines : ['nothing to do'];
}

/** A plan as JSON, with secret and config data left out. */
export function planJson(plan: Plan) {
  const strip = (s: Change) => {
    if (s.action === 'create-secret') return { action: s.action, name: s.name };
    if (s.action === 'create-config') return { action: s.action, name: s.name };
    return s;
  };
  return { ...plan, prepare: plan.prepare.map(strip) };
}

async function withDocker<T>(fn: (docker: Docker) => Promise<T>): Promise<T> {
  const docker = await supportedEngine();
  try {
    return await fn(docker);
  } finally {
    await docker.close();
  }
}

export const stackCommands: Command[] = [
  {
    path: ['stack', 'deploy'],
    summary: 'deploy a stack from compose files, as docker stack deploy does',
    usage: 'airlock stack deploy -c FILE [-c FILE…] [--prune] [--detach] [--timeout 2m] [--json] STACK',
    details:
      'Creates networks, then secrets and configs, then services; updates changed services and leaves\n' +
      'unchanged ones alone; with --prune removes services no longer in the files. Then waits until\n' +
      'every service runs its desired tasks (healthy, where a healthcheck is set), unless --detach.\n' +
      'Variables come from the environment. No registry is ever asked.',
    options: { ...composeOpts, detach: boolOpt('d'), timeout: stringOpt(), ...jsonOpt },
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out }) {
      const stack = positionals[0]!;
      const timeoutMs = timeoutOption(values.timeout);
      return withDocker(async (docker) => {
        const { desired, warnings } = await loadDesired(docker, stack, values['compose-file'] as string[] | undefined);
        printWarnings(warnings);
        const result = await deployStack(docker, desired, {
          prune: values.prune === true,
          wait: values.detach !== true,
          timeoutMs,
          onWarning: (message) => process.stderr.write(`${printableText(`warning: ${message}`)}\n`),
          onChange: (step, phase) => {
            if (phase === 'start' && !json) out(`${VERB[step.action]} ${step.name}`);
          },
        });
        if (json) out(JSON.stringify({ stack, plan: planJson(result.plan), converged: result.converged ?? null }));
        else if (result.converged) out(`stack ${stack}: ${result.converged.map((s) => `${s.name} ${s.ready}/${s.desired}`).join(', ')}`);
      });
    },
  },
  {
    path: ['stack', 'plan'],
    summary: 'show what stack deploy would change, changing nothing',
    usage: 'airlock stack plan -c FILE [-c FILE…] [--prune] [--json] STACK',
    options: { ...composeOpts, ...jsonOpt },
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out }) {
      const stack = positionals[0]!;
      return withDocker(async (docker) => {
        const { desired, warnings } = await loadDesired(docker, stack, values['compose-file'] as string[] | undefined);
        printWarnings(warnings);
        const plan = await planDeploy(docker, desired, values.prune === true);
        out(json ? JSON.stringify(planJson(plan)) : planLines(plan).join('\n'));
      });
    },
  },
  {
    path: ['stack', 'ls'],
    summary: 'list stacks',
    usage: 'airlock stack ls [--json]',
    options: { ...jsonOpt },
    args: { min: 0, max: 0 },
    async run({ json, out }) {
      const stacks = await withDocker(listStacks);
      out(json ? JSON.stringify(stacks) : table([['NAME', 'SERVICES'], ...stacks.map((s) => [s.name, String(s.services)])]));
    },
  },
  {
    path: ['stack', 'rm'],
    summary: 'remove a stack: its services, secrets, configs and networks',
    usage: 'airlock stack rm STACK [--json]',
    options: { ...jsonOpt },
    args: { min: 1, max: 1 },
    async run({ positionals, json, out }) {
      const stack = positionals[0]!;
      const steps = await withDocker((docker) =>
        removeStack(docker, stack, { onChange: (s, phase) => phase === 'start' && !json && out(`${VERB[s.action]} ${s.name}`) }),
      );
      if (steps.length === 0) throw notFound(`nothing found in stack: ${stack}`, { subject: stack });
      if (json) out(JSON.stringify({ stack, removed: steps.map((s) => ({ action: s.action, name: s.name })) }));
    },
  },
];
