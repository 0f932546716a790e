/** Where a host keeps its content store and journal. */
export const DEFAULT_STATE_DIR = '/var/lib/airlock';

export function stateDirFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.AIRLOCK_STATE_DIR ?? DEFAULT_STATE_DIR;
}
