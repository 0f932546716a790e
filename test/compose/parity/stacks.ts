/**
 * The two ways a parity stack gets deployed, read back, and removed: the
 * docker CLI (the reference) and airlock's own deployer.
 */
import { dockerCliFor, stackDeployNoWait } from '../../helpers/engines.js';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Docker } from '../../../src/docker/index.js';
import type { NamedServiceSpec, Service } from '../../../src/docker/types.js';
import { labelFilter } from '../../../src/docker/index.js';
import type { ComposeNotice } from '../../../src/compose/model.js';
import { NAMESPACE_LABEL } from '../../../src/compose/labels.js';
import { deployStack } from '../../../src/apply/stack-deploy.js';
import { hostKeysOf } from '../../../src/seal/sealing-options.js';
import { stateDirFrom } from '../../../src/store/state-dir.js';
import { desiredStack } from '../../../src/stack/desired.js';
import type { Plan } from '../../../src/stack/types.js';
import { cliArgv } from '../../helpers/fixtures.js';
import type { StackSnapshot } from './normalise.js';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The reference: `docker stack deploy`, images used as named (no registry here). */
export async function deployWithDocker(dockerHost: string, file: string, stack: string, env: NodeJS.ProcessEnv): Promise<CliRun> {
  // The CLI that goes with the engine under test (test/helpers/engines.ts).
  const r = await run(dockerCliFor(), ['-H', dockerHost, 'stack', 'deploy', '--resolve-image', 'never', ...stackDeployNoWait(), '-c', basename(file), stack], {
    cwd: join(file, '..'),
    env,
  });
  if (r.code !== 0) throw new Error(`docker stack deploy ${basename(file)} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r;
}

export interface AirlockDeploy {
  notices: ComposeNotice[];
  /** The service specs as airlock sent them. */
  sent: NamedServiceSpec[];
}

/**
 * airlock's path: exactly what `airlock stack deploy` runs (load, convert,
 * create networks/secrets/configs, bind their ids, create the services),
 * in process, without waiting for convergence (docker's side uses --detach).
 */
export async function deployWithAirlock(docker: Docker, file: string, stack: string, env: Record<string, string>): Promise<AirlockDeploy> {
  const { desired, warnings } = await desiredStack({
    stack,
    files: [{ name: file, content: await readFile(file, 'utf8') }],
    workingDir: join(file, '..'),
    env,
    // Named as the CLI names them: the host's names key in AIRLOCK_STATE_DIR.
    nameSuffix: () => hostKeysOf(stateDirFrom(undefined, env), { identities: [] }).plainNames(),
    apiVersion: await docker.client.apiVersion(),
  });
  const { plan } = await deployStack(docker, desired, { wait: false });
  const sent = plan.services.flatMap((s) => (s.action === 'create-service' ? [s.spec] : []));
  return { notices: warnings, sent };
}

/** The real `airlock stack COMMAND --json -c FILE STACK` against `dockerHost`; its JSON output. */
export async function airlockStack(command: 'plan' | 'deploy', dockerHost: string, file: string, stack: string, env: Record<string, string>): Promise<unknown> {
  const args = ['stack', command, '--json', '-c', file, ...(command === 'deploy' ? ['--detach'] : []), stack];
  const r = await run(process.execPath, cliArgv(args), { env: { ...env, DOCKER_HOST: dockerHost } });
  if (r.code !== 0) throw new Error(`airlock ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as unknown;
}

/** A plan's engine changes, one line each (an update with its changed fields); empty when it changes nothing. */
export function planChanges(plan: Plan): string[] {
  return [...plan.prepare, ...plan.services, ...plan.cleanup].map((s) =>
    s.action === 'update-service' ? `${s.action} ${s.name}: ${s.changes.map((c) => `${c.path} ${JSON.stringify(c.before)} -> ${JSON.stringify(c.after)}`).join(', ')}` : `${s.action} ${s.name}`,
  );
}

/** Each service's Version.Index, by name: it moves on every update the engine takes. */
export function serviceVersions(services: Service[]): Record<string, number> {
  return Object.fromEntries(services.map((s) => [s.Spec.Name ?? s.ID, s.Version.Index]));
}

export async function snapshot(docker: Docker, stack: string): Promise<StackSnapshot> {
  const filters = { label: labelFilter({ [NAMESPACE_LABEL]: stack }) };
  const [services, networks, secrets, configs, all] = await Promise.all([
    docker.services.list({ filters }),
    docker.networks.list({ filters }),
    docker.secrets.list({ filters }),
    docker.configs.list({ filters }),
    docker.networks.list(),
  ]);
  return { stack, services, networks, secrets, configs, networkNames: new Map(all.map((n) => [n.Id, n.Name])) };
}

/** Waits until `predicate` holds, polling; throws with `what` after `ms`. */
export async function waitFor(what: string, ms: number, predicate: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** The stack's task for `service` is running; fails fast when it failed. */
export async function waitRunning(docker: Docker, serviceName: string, ms = 30_000): Promise<void> {
  await waitFor(`${serviceName} to run a task`, ms, async () => {
    const tasks = await docker.tasks.list({ filters: { service: serviceName } });
    const failed = tasks.find((t) => t.Status.State === 'failed' || t.Status.State === 'rejected');
    if (failed) throw new Error(`${serviceName}: task ${failed.Status.State}: ${failed.Status.Err ?? failed.Status.Message ?? ''}`);
    return tasks.some((t) => t.Status.State === 'running');
  });
}

const FINAL_STATES = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned']);

/**
 * The swarm allocates a service's endpoint (and fills Endpoint.Spec) a moment
 * after it is created; read the stack only once every service has it: its
 * VIPs in vip mode, an Endpoint at all in dnsrr mode (which gets no VIPs).
 */
export async function waitAllocated(docker: Docker, stack: string): Promise<void> {
  const filters = { label: labelFilter({ [NAMESPACE_LABEL]: stack }) };
  await waitFor(`the endpoints of ${stack} to be allocated`, 15_000, async () => {
    const services = await docker.services.list({ filters });
    return services.every((s) =>
      s.Spec.EndpointSpec?.Mode === 'dnsrr' ? s.Endpoint?.Spec !== undefined : (s.Endpoint?.VirtualIPs?.length ?? 0) > 0,
    );
  });
}

/** What `docker stack rm` does: services, then (once their tasks are gone) networks, secrets, configs. */
export async function removeStack(docker: Docker, stack: string): Promise<void> {
  const filters = { label: labelFilter({ [NAMESPACE_LABEL]: stack }) };
  const services = await docker.services.list({ filters });
  for (const s of services) await docker.services.delete(s.ID);
  // Tasks of a removed service stay listed for a while in their final state; only live ones hold networks.
  const ids = new Set(services.map((s) => s.ID));
  await waitFor(`the tasks of ${stack} to stop`, 60_000, async () =>
    !(await docker.tasks.list()).some((t) => ids.has(t.ServiceID) && !FINAL_STATES.has(t.Status.State)),
  );
  const removeAll = async (kind: string, list: () => Promise<{ id: string }[]>, del: (id: string) => Promise<void>) => {
    await waitFor(`the ${kind} of ${stack} to be removed`, 30_000, async () => {
      const left = await list();
      for (const o of left) await del(o.id).catch(() => undefined);
      return (await list()).length === 0;
    });
  };
  await removeAll('networks', async () => (await docker.networks.list({ filters })).map((n) => ({ id: n.Id })), (id) => docker.networks.delete(id));
  await removeAll('secrets', async () => (await docker.secrets.list({ filters })).map((n) => ({ id: n.ID })), (id) => docker.secrets.delete(id));
  await removeAll('configs', async () => (await docker.configs.list({ filters })).map((n) => ({ id: n.ID })), (id) => docker.configs.delete(id));
}
