/**
 * Docker Engine API versions: the range airlock speaks, the one chosen with
 * a daemon, and the refusal of an engine older than Docker 20.10.
 */
import { DockerError } from './errors.js';

/** Docker 20.10 speaks 1.41; 28.x speaks 1.51. */
export const MIN_API_VERSION = '1.41';
export const MAX_API_VERSION = '1.51';

/** Which engine an API version came from, for the refusal of one too old. */
export interface EngineIdentity {
  endpoint: string;
  /** Its release, e.g. `19.03.15` (GET /version's `Version`), when known. */
  version?: string | undefined;
}

/** Highest version both sides speak; below 1.41 (Docker 20.10) is refused. */
export function chooseApiVersion(daemonMax: string, engine?: EngineIdentity): string {
  checkApiVersion(daemonMax, engine);
  return compareApiVersions(daemonMax, MAX_API_VERSION) > 0 ? MAX_API_VERSION : normalize(daemonMax);
}

export const isApiVersion = (v: string): boolean => /^\d+\.\d+$/.test(v);

export function checkApiVersion(v: string, engine?: EngineIdentity): string {
  if (!isApiVersion(v)) {
    throw new DockerError('engine', `Unrecognised Docker API version "${v}"`, { reason: 'protocol' });
  }
  if (compareApiVersions(v, MIN_API_VERSION) < 0) {
    const who = `Docker Engine${engine?.version ? ` ${engine.version}` : ''} (API ${normalize(v)})${engine ? ` at ${engine.endpoint}` : ''}`;
    throw new DockerError('engine', `${who}: airlock needs Docker 20.10 (API ${MIN_API_VERSION}) or newer`, {
      reason: 'api-too-old',
      ...(engine ? { subject: engine.endpoint } : {}),
      hint: 'upgrade Docker Engine to 20.10 or newer, then run the command again',
    });
  }
  return normalize(v);
}

export function compareApiVersions(a: string, b: string): number {
  const [am = 0, an = 0] = a.split('.').map(Number);
  const [bm = 0, bn = 0] = b.split('.').map(Number);
  return am - bm || an - bn;
}

const normalize = (v: string) => v.split('.').map(Number).join('.');
