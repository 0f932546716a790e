/**
 * Key paths: where in a YAML file (compose file, bundle.yaml, agent.yaml,
 * inventory) a value sits, so that every error can name the key to fix.
 */
import type { ErrorObject } from 'ajv';

/** A key path as the operator wrote it: `services.web.ports[0].target`. */
export type KeyPath = (string | number)[];

/** `inbox.sources[1].url`; the empty string for the top level. */
export function formatKeyPath(path: KeyPath): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** `formatKeyPath`, with the top level said as `(top level)`. */
export function keyName(path: KeyPath): string {
  return path.length === 0 ? '(top level)' : formatKeyPath(path);
}

/** The key a schema error is about: its JSON pointer (`/services/web/ports/0`) as a key path. */
export function keyPathOf(err: Pick<ErrorObject, 'instancePath'>): KeyPath {
  return err.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}
