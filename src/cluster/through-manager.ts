/**
 * A swarm manager's engine to give orders to: this host's own (the local
 * socket) or, with an inventory, the first inventory manager that is one,
 * over SSH from the jump box.
 */
import { Docker } from '../docker/index.js';
import { AirlockError } from '../errors/index.js';
import { hostLabel, type Inventory } from '../remote/inventory.js';
import type { ConnectOptions } from '../remote/ssh.js';
import { connectManager } from './connect.js';

export interface ManagerEngine {
  docker: Docker;
  /** `this host`, or the inventory host's label. */
  where: string;
  close(): Promise<void>;
}

/** This host's engine, when it is a swarm manager. */
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

/** The first inventory host that manages the swarm (connect.ts connectManager), as a manager engine. */
export async function inventoryManager(inventory: Inventory, opts: ConnectOptions = {}): Promise<ManagerEngine> {
  const c = await connectManager(inventory, opts);
  return { docker: c.docker, where: hostLabel(c.host), close: () => c.session.close() };
}
