/**
 * A swarm manager's engine to give orders to: this host's own (the local
 * socket) or, with an inventory, the first inventory manager that is one,
 * over SSH from the jump box.
 */
import { Docker } from '../docker/index.js';
import { AirlockError, asAirlockError } from '../errors/index.js';
import { hostLabel, managersOf, type Inventory } from '../remote/inventory.js';
import { connectHost, type ConnectOptions, type SshSession } from '../remote/ssh.js';
import { onHost } from './connect.js';

export interface ManagerEngine {
  docker: Docker;
  /** `this host`, or the inventory host's label. */
  where: string;
  close(): Promise<void>;
}


export async function localManager(): Promise<ManagerEngine> {
  const docker = new Docker();
  try {
    const info = await docker.system.info();
    if (info.Swarm.LocalNodeState !== 'active' || !info.Swarm.ControlAvailable) {
      throw new AirlockError('engine', `this host's engine is not a swarm manager (swarm ${info.Swarm.LocalNodeState || 'unknown'})`, { reason: 'not-swarm-manager', hint: 'run it on a manager, or from the jump box with --inventory hosts.yml' });
    }
    return { docker, where: 'this host', close: () => docker.close() };
  } catch (e) {
    await docker.close();
    throw e;
  }
}

/** The inventory's managers in order; the first whose engine manages a swarm. */
export async function inventoryManager(inventory: Inventory, opts: ConnectOptions = {}): Promise<ManagerEngine> {
  const tried: string[] = [];
  let unreachable = 0;
  for (const h of managersOf(inventory)) {
    let session: SshSession | undefined;
    try {
      session = await connectHost(h, opts);
      const docker = session.docker();
      const info = await docker.system.info();
      if (info.Swarm.LocalNodeState === 'active' && info.Swarm.ControlAvailable) {
        const s = session;
        return { docker, where: hostLabel(h), close: () => s.close() };
      }
      tried.push(`${h.name}: swarm ${info.Swarm.LocalNodeState || 'unknown'}${info.Swarm.ControlAvailable ? '' : ', not a manager'}`);
    } catch (e) {
      unreachable++;
      tried.push(onHost(h, 'not reached', asAirlockError(e)).message);
    }
    await session?.close().catch(() => undefined);
  }
  const why = `no inventory manager manages a swarm (${tried.join('; ') || 'the inventory lists none'})`;
  const hint = 'airlock cluster up makes the swarm; airlock cluster status shows which hosts answer';
  // Every manager out of reach is a remote failure (17), not a missing swarm (4).
  throw unreachable > 0 && unreachable === tried.length ? new AirlockError('remote', why, { reason: 'unreachable', hint }) : new AirlockError('notFound', why, { reason: 'no-swarm-manager', hint });
}
