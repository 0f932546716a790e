/**
 * How the loader reports a problem: one AirlockError of kind `config`, whose
 * subject is the compose file and whose message names the key path, so an
 * operator can go straight to the line that needs fixing.
 */
import { AirlockError, configError } from '../../errors/index.js';
import { formatKeyPath, type KeyPath } from '../../config/key-path.js';

export interface ComposeErrorOptions {
  /** Stable machine-readable reason, e.g. `compose-schema`. */
  reason: string;
  hint?: string;
  cause?: unknown;
}

/** `compose.yml: services.web.deploy.replicas: must be an integer`. */
export function composeError(
  file: string,
  path: KeyPath | string | null,
  problem: string,
  opts: ComposeErrorOptions,
): AirlockError {
  const where = path === null ? '' : typeof path === 'string' ? path : formatKeyPath(path);
  const message = where === '' ? `${file}: ${problem}` : `${file}: ${where}: ${problem}`;
  return configError(message, {
    subject: file,
    reason: opts.reason,
    hint: opts.hint ?? 'Fix the compose file and try again.',
    ...(opts.cause === undefined ? {} : { cause: opts.cause }),
  });
}

/** True for a plain mapping as the YAML parser produces it. */
export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
