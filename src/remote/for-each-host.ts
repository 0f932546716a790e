/**
 * Work on many hosts at once: at most `parallel` at a time, one host's
 * failure never stopping the others.
 */
import { asAirlockError, type AirlockError } from '../errors/index.js';
import type { InventoryHost } from './inventory.js';

export const DEFAULT_PARALLEL = 8;

export type HostOutcome<T> = { host: InventoryHost; ok: true; value: T } | { host: InventoryHost; ok: false; error: AirlockError };

/**
 * Runs fn for every host, at most `parallel` at a time (default 8). One
 * host's failure never stops the others: each outcome, in the hosts' order,
 * is ok with a value or not ok with the error.
 */
export async function forEachHost<T>(
  hosts: readonly InventoryHost[],
  parallel: number | undefined,
  fn: (host: InventoryHost, index: number) => Promise<T>,
): Promise<HostOutcome<T>[]> {
  const limit = Math.max(1, Math.floor(parallel ?? DEFAULT_PARALLEL));
  const results = new Array<HostOutcome<T>>(hosts.length);
  let next = 0;
  const worker = async () => {
    while (next < hosts.length) {
      const i = next++;
      const host = hosts[i]!;
      try {
        results[i] = { host, ok: true, value: await fn(host, i) };
      } catch (e) {
        results[i] = { host, ok: false, error: asAirlockError(e) };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, hosts.length) }, worker));
  return results;
}
