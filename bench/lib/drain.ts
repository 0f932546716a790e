import { setTimeout as sleep } from 'node:timers/promises';
import type { Docker } from '../../src/docker/index.js';

const DRAIN_MS = 120_000;

/**
 * After the services were removed: waits until no task is left and
 * `containers()` counts none, then removes the networks `label` selects
 * until none is left (a network goes only once its last endpoint has).
 * Benches run each timed command on an emptied engine.
 */
export async function drainEngine(d: Docker, containers: () => Promise<number>, label: string[]): Promise<void> {
  const deadline = Date.now() + DRAIN_MS;
  for (;;) {
    const [tasks, ctrs] = await Promise.all([d.tasks.list(), containers()]);
    if (tasks.length === 0 && ctrs === 0) break;
    if (Date.now() > deadline) throw new Error(`engine not empty: ${tasks.length} tasks, ${ctrs} containers left`);
    await sleep(250);
  }
  for (;;) {
    const nets = await d.networks.list({ filters: { label } });
    if (nets.length === 0) break;
    for (const n of nets) await d.networks.delete(n.Id).catch(() => undefined);
    if (Date.now() > deadline) throw new Error(`stack networks left: ${nets.map((n) => n.Name).join(', ')}`);
    await sleep(250);
  }
}
