import { Docker, type Service } from '../../docker/index.js';
import { AirlockError } from '../../errors/index.js';
import { applyBundle, isManager, recoverHost } from '../../apply/bundle-apply.js';
import { planBundle } from '../../apply/bundle-plan.js';
import { maskPlanEnv } from '../../stack/env-mask.js';
import { planJson, planLines, printWarnings } from './stack.js';
import { rollbackStack } from '../../apply/rollback.js';
import type { RevocationGate } from '../../apply/revocation.js';
import { journalPresence, noJournalHere, stateDirFrom } from '../../store/state-dir.js';
import { AgentQueue } from '../../journal/agent-queue.js';
import { BundleRecords } from '../../journal/bundles.js';
import { DeploymentRecords, type DeploymentRow } from '../../journal/deployments.js';
import { Journal } from '../../journal/journal.js';
import { EngineChanges } from '../../journal/engine-changes.js';
import { NAMESPACE_LABEL } from '../../compose/labels.js';
import { progressOfServices, type ServiceProgress } from '../../stack/converge.js';
import { trustStoreOption } from '../trust-inputs.js';
import { identityOnly, identityOpt, sealingOpts, sealingOption } from '../sealing-inputs.js';
import { pendingBundles, readJournalFacts } from '../../retention/index.js';
import { boolOpt, jsonOpt, stringOpt, type Command, type CommandContext, str } from '../command.js';
import { supportedEngine } from '../engine.js';
import { timeoutOption, waitOption } from '../duration-option.js';
import { table } from '../format.js';

/** `recover`'s engine part: an engine change a kill left running ends with one working engine (src/engine/engine-change.ts). */
async function recoverEngineChange(values: CommandContext['values'], json: boolean) {
  const stateDir = stateDirFrom(str(values.state));
  if (journalPresence(stateDir) !== 'present') return undefined;
  // Opened to write: a journal of an older schema is migrated here, as the stacks' recovery would.
  const journal = Journal.open(stateDir);
  let unfinished: boolean;
  try {
    unfinished = new EngineChanges(journal).unfinished() !== undefined;
  } finally {
    journal.close();
  }
  if (!unfinished) return undefined;
  const [{ recoverHostEngine }, { hostOptions }] = await Promise.all([import('../../engine/engine-host.js'), import('./engine.js')]);
  return recoverHostEngine(await hostOptions(values, json));
}

/** Progress lines for an apply or rollback: its journal steps and each engine change. */
function hooks(out: (s: string) => void, json: boolean) {
  if (json) return {};
  return {
    onApplyStep: (id: number, step: string) => process.stderr.write(`deployment #${id}: ${step}\n`),
    onChange: (s: { action: string; name: string }, phase: 'start' | 'done') => {
      if (phase === 'start') out(`  ${s.action.replace('-', ' ')} ${s.name}`);
    },
  };
}

/** Rollback and recover read the trust store only to learn whether the bundle of the specs they restore has a revoked key. */
function revocationGate(values: CommandContext['values']): RevocationGate {
  return { trust: () => trustStoreOption(values), allowRevoked: values['allow-revoked'] === true };
}

/** Stacks the engine runs, with their services' names; undefined when it cannot be asked. */
async function engineStacks(docker: Docker): Promise<Map<string, string[]> | undefined> {
  const services = await docker.services.list({ filters: { label: [NAMESPACE_LABEL] } }).catch(() => undefined);
  return services && byStack(services);
}

function byStack(services: { Spec: { Name: string; Labels?: Record<string, string> } }[]): Map<string, string[]> {
  const stacks = new Map<string, string[]>();
  for (const s of services) {
    const stack = s.Spec.Labels?.[NAMESPACE_LABEL] ?? '';
    stacks.set(stack, [...(stacks.get(stack) ?? []), s.Spec.Name].sort());
  }
  return new Map([...stacks].sort(([a], [b]) => a.localeCompare(b)));
}

/**
 * The journal for reading. A missing or empty one is an error that says what
 * the engine runs: a lost journal must never read as "nothing deployed here".
 */
async function readJournal(values: CommandContext['values']): Promise<Journal> {
  const dir = stateDirFrom(str(values.state));
  try {
    return Journal.open(dir, { readonly: true });
  } catch (e) {
    if (!(e instanceof AirlockError) || e.reason !== 'no-journal') throw e;
    const docker = new Docker({ retry: false });
    const running = await engineStacks(docker).finally(() => docker.close());
    if (running && running.size > 0) {
      const list = [...running].map(([stack, names]) => `${stack} (${names.length} service${names.length === 1 ? '' : 's'})`).join(', ');
      throw noJournalHere(dir, `, yet the engine runs stack ${list}: the journal was lost or moved, and what runs has no record here`, { lost: true });
    }
    throw noJournalHere(dir, ': nothing was imported or applied on this host', { lost: false });
  }
}

function historyRow(d: DeploymentRow): string[] {
  const what = d.kind === 'rollback' ? `rollback to #${d.restores}` : d.bundle_name ? `${d.bundle_name} ${d.bundle_version}` : (d.source ?? '');
  return [`#${d.id}`, d.stack, what, d.status, d.started_at.replace(/\.\d+Z$/, 'Z'), d.applied_by, d.reason ?? ''];
}

/**
 * The stacks' services and, for each, the tasks that run its current spec
 * and are meant to run: what a deploy waits for (progressOf). The engine's
 * own RunningTasks also counts tasks already told to shut down (right after
 * a scale-down from 3 to 2 it says 3/2); undefined when the engine does not
 * answer.
 */
async function stackServices(docker: Docker): Promise<{ services: Service[]; progress: (ServiceProgress & { stack: string | undefined })[] } | undefined> {
  try {
    const services = await docker.services.list({ status: true, filters: { label: [NAMESPACE_LABEL] } });
    const { status } = await progressOfServices(docker, services);
    return { services, progress: status.map((p, i) => ({ ...p, stack: services[i]!.Spec.Labels?.[NAMESPACE_LABEL] })) };
  } catch {
    return undefined;
  }
}

export const deployCommands: Command[] = [
  {
    path: ['bundle', 'plan'],
    summary: 'show what bundle apply would change on this host, changing nothing',
    usage: 'airlock bundle plan BUNDLE [--trust DIR] [--state DIR] [--show-env] [--identity PATH]… [--json]',
    details:
      'Verifies the bundle in full, then plans each of its stacks against the engine: what would be\ncreated, updated (field by field) and removed. Nothing is stored, loaded or deployed. A delta\nreads the files it relies on without carrying from the content store of --state, as apply does.\n' +
      'Environment variables are shown by name (added, removed, changed), their values hidden: they\noften hold passwords. --show-env shows the values.',
    options: { trust: stringOpt(), state: stringOpt(), 'show-env': boolOpt(), ...sealingOpts, ...jsonOpt },
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out }) {
      const docker = await supportedEngine();
      try {
        const r = await planBundle(positionals[0]!, { trust: await trustStoreOption(values), docker, stateDir: stateDirFrom(str(values.state)), sealing: sealingOption(values) });
        for (const s of r.stacks) printWarnings(s.warnings);
        if (values['show-env'] !== true) for (const s of r.stacks) s.plan = maskPlanEnv(s.plan);
        if (json) out(JSON.stringify({ bundle: r.bundle, stacks: r.stacks.map((s) => ({ stack: s.stack, plan: planJson(s.plan) })) }));
        else for (const s of r.stacks) out([`stack ${s.stack} (${r.bundle.name} ${r.bundle.version}):`, ...planLines(s.plan).map((l) => `  ${l}`)].join('\n'));
      } finally {
        await docker.close();
      }
    },
  },
  {
    path: ['bundle', 'apply'],
    summary: 'verify, store, load and deploy a bundle on this host, journaled step by step',
    usage:
      'airlock bundle apply BUNDLE [--state DIR] [--trust DIR] [--init-swarm] [--advertise-addr IP] [--timeout 2m] [--wait 60s] [--allow-downgrade]\n' +
      '         [--identity PATH]… [--require-sealed | --allow-unsealed] [--json]\n' +
      '       airlock bundle apply BUNDLE --inventory hosts.yml [--parallel 8] [--accept-new] [--dry-run] [--timeout 2m] [--remote-airlock CMD]\n' +
      '         [--require-sealed | --allow-unsealed] [--json]',
    details:
      'Steps: verify, store, load images, prepare networks/secrets/configs, update services, wait for\n' +
      'convergence (the health gate), commit, clean up. Each is journaled before and after it runs.\n' +
      'A deploy whose services do not converge (or become healthy) within --timeout is rolled back to\n' +
      'the previous specs. A crashed apply is recovered by the next airlock apply or rollback.\n' +
      '--init-swarm first makes a single-node swarm when the engine is in none. One apply at a time\n' +
      'per host: another waits up to --wait, then fails naming the running one (exit 16).\n\n' +
      'With --inventory, from a jump box: uploads the bundle to every host over SFTP (resumable, checked\n' +
      'by size and sha256 on the host, skipped where it is already), has every host run its own\n' +
      "'airlock bundle import' (its trust store, content store and engine), then deploys through the\n" +
      'first manager that has it, journaled there. Ends with a table per host; exits 17 when a host\n' +
      'failed, naming it and the reason. --dry-run uploads to one manager and runs bundle plan there.',
    options: {
      state: stringOpt(),
      trust: stringOpt(),
      'init-swarm': boolOpt(),
      'advertise-addr': stringOpt(),
      timeout: stringOpt(),
      wait: stringOpt(),
      'allow-downgrade': boolOpt(),
      inventory: stringOpt('i'),
      parallel: stringOpt(),
      'accept-new': boolOpt(),
      'dry-run': boolOpt(),
      'remote-airlock': stringOpt(),
      ...sealingOpts,
      ...jsonOpt,
    },
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out }) {
      if (typeof values.inventory === 'string') return (await import('./rollout.js')).rollout(positionals[0]!, values, json, out);
      const timeoutMs = timeoutOption(values.timeout);
      const lockWaitMs = waitOption(values.wait);
      const docker = await supportedEngine();
      try {
        const r = await applyBundle(positionals[0]!, {
          stateDir: stateDirFrom(str(values.state)),
          trust: await trustStoreOption(values),
          docker,
          timeoutMs,
          lockWaitMs,
          allowDowngrade: values['allow-downgrade'] === true,
          initSwarm: values['init-swarm'] ? { advertiseAddr: str(values['advertise-addr']) ?? '127.0.0.1' } : undefined,
          hooks: hooks(out, json),
          sealing: sealingOption(values),
        });
        if (json) out(JSON.stringify(r));
        else {
          for (const s of r.stacks) {
            const counts = s.services.map((x) => `${x.name} ${x.ready}/${x.desired}`).join(', ');
            out(s.unchanged
              ? `${r.bundle.name} ${r.bundle.version} already runs on stack ${s.stack} (deployment #${s.deployment}), unchanged: nothing to do; ${counts}`
              : `applied ${r.bundle.name} ${r.bundle.version} to stack ${s.stack} (deployment #${s.deployment}): ${counts}`);
          }
        }
      } finally {
        await docker.close();
      }
    },
  },
  {
    path: ['rollback'],
    summary: 'restore the exact specs of an earlier deployment of a stack, offline',
    usage: 'airlock rollback STACK [--to DEPLOYMENT|VERSION] [--state DIR] [--trust DIR] [--allow-revoked] [--timeout 2m] [--identity PATH]… [--json]',
    details:
      'Without --to, goes back to the release before the one running. Needs no bundle: images and\nsecret data come from the engine or the content store. Journaled as a deployment of its own.\n' +
      "A deployment of a bundle whose key is revoked in the trust store's revoked list is refused (exit 10,\n" +
      'revoked-key), naming the key and the list; --allow-revoked deploys it anyway, recorded in the journal.',
    options: { to: stringOpt(), state: stringOpt(), trust: stringOpt(), 'allow-revoked': boolOpt(), timeout: stringOpt(), wait: stringOpt(), ...identityOpt, ...jsonOpt },
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out }) {
      const timeoutMs = timeoutOption(values.timeout);
      const lockWaitMs = waitOption(values.wait);
      const docker = await supportedEngine();
      try {
        const r = await rollbackStack(positionals[0]!, str(values.to), {
          stateDir: stateDirFrom(str(values.state)),
          docker,
          timeoutMs,
          lockWaitMs,
          hooks: hooks(out, json),
          revocation: revocationGate(values),
          sealing: identityOnly(values),
        });
        out(json ? JSON.stringify(r) : `stack ${positionals[0]} runs deployment #${r.restores} again (as deployment #${r.deployment})`);
      } finally {
        await docker.close();
      }
    },
  },
  {
    path: ['recover'],
    summary: 'finish what an interrupted apply or rollback left behind, and nothing else',
    usage: 'airlock recover [--state DIR] [--trust DIR] [--allow-revoked] [--timeout 2m] [--wait 60s] [--identity PATH]… [--json]',
    details:
      'Takes the apply lock and runs the recovery rule that every apply and rollback runs first: a\n' +
      'deployment still running was interrupted (kill -9, power loss, dockerd gone). One that had not\n' +
      'touched a service yet is closed as failed; otherwise every service is restored to the spec\n' +
      'recorded before it. One whose recovery itself was interrupted too often is closed as failed for\n' +
      'the operator (docs/journal.md). A node drain left running (airlock node drain) gets its services\'\n' +
      'placement and update settings put back; the node stays as it is. Prints what it did, or that there\n' +
      'was nothing to do.\n' +
      'Previous specs from a bundle whose key was revoked since are not restored (exit 10, revoked-restore);\n' +
      '--allow-revoked restores them anyway, recorded in the journal.\n' +
      'Another apply holding the lock is waited for (--wait), then exit 16 naming its pid. A lock left by\n' +
      'a crash, a reboot or a reused pid is taken over by itself; how to clear one by hand when airlock\n' +
      'cannot tell: docs/journal.md, "The apply lock".',
    options: { state: stringOpt(), trust: stringOpt(), 'allow-revoked': boolOpt(), timeout: stringOpt(), wait: stringOpt(), ...identityOpt, ...jsonOpt },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const timeoutMs = timeoutOption(values.timeout);
      const lockWaitMs = waitOption(values.wait);
      // The engine first: the stacks' recovery needs one that works.
      const engine = await recoverEngineChange(values, json);
      if (engine && !json) out(`engine change #${engine.change} (interrupted): ${engine.outcome}`);
      const docker = await supportedEngine();
      try {
        const recovered = await recoverHost({
          stateDir: stateDirFrom(str(values.state)),
          docker,
          timeoutMs,
          lockWaitMs,
          hooks: hooks(out, json),
          revocation: revocationGate(values),
          sealing: identityOnly(values),
        });
        const rows = recovered.map((d) => ({ deployment: d.id, stack: d.stack, kind: d.kind, step: d.step, status: d.status, reason: d.reason, recoveries: d.recoveries }));
        // Node operations (src/cluster/node-drain.ts): a drain's services get their own settings back.
        const { recoverNodeOperations } = await import('../../cluster/node-recover.js');
        const operations = await recoverNodeOperations(stateDirFrom(str(values.state)), async () => docker, { lockWaitMs });
        if (json) out(JSON.stringify({ recovered: rows, ...(operations.length ? { operations } : {}), ...(engine ? { engine } : {}) }));
        else {
          if (rows.length === 0) out('nothing to recover: no deployment was left unfinished');
          else for (const r of rows) out(`deployment #${r.deployment} of ${r.stack} (interrupted at step ${r.step}): ${r.status}: ${r.reason ?? ''}`);
          for (const o of operations) {
            const what = o.restored.length ? `put back the placement and update settings of ${o.restored.join(', ')}` : 'nothing to put back';
            out(`node ${o.kind} #${o.operation} of ${o.hostname} (interrupted at step ${o.step}): ${what}; the node stays ${o.availability} (airlock node drain or activate ${o.hostname})`);
          }
        }
      } finally {
        await docker.close();
      }
    },
  },
  {
    path: ['history'],
    summary: 'list the deployments of every stack, or of one, newest first',
    usage: 'airlock history [STACK] [--state DIR] [--json]',
    options: { state: stringOpt(), ...jsonOpt },
    args: { min: 0, max: 1 },
    async run({ positionals, values, json, out }) {
      const journal = await readJournal(values);
      const rows = new DeploymentRecords(journal).history(positionals[0], 1000);
      journal.close();
      if (json) out(JSON.stringify(rows));
      else out(rows.length ? table([['ID', 'STACK', 'DEPLOYED', 'STATUS', 'STARTED', 'BY', 'REASON'], ...rows.map(historyRow)]) : 'no deployments recorded');
    },
  },
  {
    path: ['status'],
    summary: 'what runs here: each stack, its bundle and version, when and by whom, whether it converged',
    usage: 'airlock status [--state DIR] [--json]',
    options: { state: stringOpt(), ...jsonOpt },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const journal = await readJournal(values);
      const docker = await supportedEngine({ retry: false }).catch((e: unknown) => {
        journal.close();
        throw e;
      });
      try {
        const deployments = new DeploymentRecords(journal);
        const bundles = new BundleRecords(journal);
        const engineView = await stackServices(docker);
        const services = engineView?.services;
        const stacks = deployments.stacks().map((stack) => {
          const d = deployments.current(stack);
          const mine = engineView?.progress.filter((p) => p.stack === stack);
          const converged = mine === undefined ? null : mine.every((s) => s.ready === s.desired);
          return {
            stack,
            deployment: d?.id ?? null,
            bundle: d?.bundle_name ? `${d.bundle_name} ${d.bundle_version}` : null,
            kind: d?.kind ?? null,
            appliedAt: d?.finished_at ?? null,
            appliedBy: d?.applied_by ?? null,
            source: d?.source ?? null,
            services: mine?.map((s) => ({ name: s.name, running: s.ready, desired: s.desired })) ?? null,
            converged,
          };
        });
        // What may still be applied next: an older bundle than a release that committed is superseded, not pending.
        const pendingIds = pendingBundles(readJournalFacts(journal));
        const pending = bundles.all().filter((b) => pendingIds.has(b.id)).map((b) => `${b.name} ${b.version}`);
        const unfinished = deployments.unfinished().map((d) => ({ deployment: d.id, stack: d.stack, step: d.step }));
        // What the agent imported and will deploy in its maintenance window, and how earlier ones ended.
        const agentQueue = new AgentQueue(journal).all().slice(-10).map((q) => ({ bundle: `${q.name} ${q.version}`, state: q.state, queuedAt: q.queued_at, attempts: q.attempts, reason: q.reason }));
        // Stacks the engine runs that this journal never deployed: by other means, or recorded in a journal that was lost.
        const known = new Set(stacks.map((s) => s.stack));
        const unrecorded = [...byStack(services ?? [])]
          .filter(([stack]) => !known.has(stack))
          .map(([stack, names]) => ({ stack, services: names }));
        if (json) {
          out(JSON.stringify({ stacks, pendingBundles: pending, unfinished, unrecorded, agentQueue, engine: services !== undefined }));
          return;
        }
        out(
          table([
            ['STACK', 'BUNDLE', 'DEPLOYMENT', 'APPLIED', 'BY', 'CONVERGED'],
            ...stacks.map((s) => [s.stack, s.bundle ?? '-', s.deployment ? `#${s.deployment}${s.kind === 'rollback' ? ' (rollback)' : ''}` : '-', s.appliedAt ?? '-', s.appliedBy ?? '-', s.converged === null ? 'engine unreachable' : s.converged ? 'yes' : 'no']),
          ]),
        );
        for (const s of stacks) for (const svc of s.services ?? []) out(`  ${svc.name} ${svc.running}/${svc.desired}`);
        if (pending.length) out(`pending bundles (imported, not applied): ${pending.join(', ')}`);
        const waiting = agentQueue.filter((q) => q.state === 'waiting').map((q) => q.bundle);
        if (waiting.length) out(`agent: waiting for ${(await isManager(docker)) ? 'the maintenance window' : 'this node to be a swarm manager'}: ${waiting.join(', ')}`);
        for (const q of agentQueue.filter((x) => x.state === 'failed')) out(`agent: ${q.bundle} failed: ${q.reason ?? ''}`);
        for (const u of unfinished) out(`interrupted: deployment #${u.deployment} of ${u.stack} at step ${u.step}; the next apply or rollback recovers it`);
        for (const u of unrecorded) {
          out(`stack ${u.stack} runs ${u.services.length} service${u.services.length === 1 ? '' : 's'} (${u.services.join(', ')}) that this journal has no record of: deployed by other means, or recorded in a journal that was lost`);
        }
      } finally {
        journal.close();
        await docker.close();
      }
    },
  },
];
