/**
 * What a rollback restores. A rollback runs the specs of the deployment it
 * restores, and `rollback --to` may name a rollback, so the state a
 * deployment runs is found at the end of its chain of rollbacks. Rollback's
 * default target and retention's keep rule both read it from here, so they
 * cannot disagree about what runs.
 */

/** The fields of a deployment the chain is made of (a journal row or a retention fact). */
export interface ChainLink {
  id: number;
  kind: 'apply' | 'rollback';
  /** For a rollback: the deployment whose specs it restored. */
  restores: number | null;
}

/**
 * The ids `d`'s rollbacks restore, nearest first: empty for an apply. Ends
 * with an id `byId` does not know (its chain cannot be followed further),
 * and on a loop, which the journal never holds (a rollback restores an
 * earlier deployment).
 */
export function restoredChain<D extends ChainLink>(d: D, byId: (id: number) => D | undefined): number[] {
  const chain: number[] = [];
  const seen = new Set<number>([d.id]);
  for (let r = d.kind === 'rollback' ? d.restores : null; r !== null && !seen.has(r); ) {
    seen.add(r);
    chain.push(r);
    const next = byId(r);
    r = next?.kind === 'rollback' ? next.restores : null;
  }
  return chain;
}

/** The deployment whose specs `d` runs: itself, or what the end of its rollback chain restored. */
export function effectiveDeployment<D extends ChainLink>(d: D, byId: (id: number) => D | undefined): number {
  return restoredChain(d, byId).at(-1) ?? d.id;
}
