/**
 * What normalisation needs while it walks one compose file: where the file
 * is, how to resolve variables and read env files, and where to put notices.
 */
import { posix } from 'node:path';
import type { AirlockError } from '../../errors/index.js';
import type { ComposeNotice, Mapping } from '../model.js';
import { formatKeyPath, type KeyPath } from '../../config/key-path.js';
import { composeError, isMapping } from './errors.js';
import { stringValue } from './env-file.js';

export interface LoadContext {
  /** The compose file name used in messages. */
  file: string;
  /** The folder relative paths are resolved against (docker: the first compose file's folder). */
  workingDir: string;
  lookup: (name: string) => string | undefined;
  readEnvFile: (absPath: string) => Promise<string>;
  notices: ComposeNotice[];
}

export function warn(ctx: LoadContext, path: KeyPath, message: string, unsupported?: string[]): void {
  const p = formatKeyPath(path);
  ctx.notices.push({ level: 'warning', path: p, message, file: ctx.file });
  if (unsupported !== undefined && !unsupported.includes(p)) unsupported.push(p);
}

export function fail(ctx: LoadContext, path: KeyPath, problem: string, hint?: string): AirlockError {
  return composeError(ctx.file, path, problem, { reason: 'compose-invalid', ...(hint === undefined ? {} : { hint }) });
}

/**
 * Warns about every key of `obj` that is neither handled nor an x-*
 * extension, so nothing in the file disappears without a word.
 */
export function warnLeftovers(
  ctx: LoadContext,
  obj: Record<string, unknown>,
  handled: readonly string[],
  path: KeyPath,
  unsupported?: string[],
  message = 'ignored: docker stack deploy does not use this option',
): void {
  for (const key of Object.keys(obj)) {
    if (handled.includes(key) || key.startsWith('x-')) continue;
    warn(ctx, [...path, key], message, unsupported);
  }
}

/**
 * docker's loader absPath: an absolute path is kept as written; a relative
 * one is joined onto the working folder and cleaned, as Go's filepath.Join
 * does: `.` and `..` resolved, repeated and trailing slashes dropped
 * (`./app.conf/` is the file `<dir>/app.conf`; the engine refuses a file
 * source that ends in a slash).
 */
export function absPath(workingDir: string, p: string): string {
  if (posix.isAbsolute(p)) return p;
  const joined = posix.join(workingDir, p);
  return joined.length > 1 && joined.endsWith('/') ? joined.slice(0, -1) : joined;
}

/** list_or_dict with `=` (labels, sysctls, driver options): a key without a value maps to "". */
export function toMapping(value: unknown): Mapping {
  const out: Mapping = {};
  const put = (k: string, v: string): void => {
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  };
  if (Array.isArray(value)) {
    for (const item of value) {
      const s = String(item);
      const eq = s.indexOf('=');
      if (eq < 0) put(s, '');
      else put(s.slice(0, eq), s.slice(eq + 1));
    }
  } else if (isMapping(value)) {
    for (const [k, v] of Object.entries(value)) put(k, v === null || v === undefined ? '' : stringValue(v));
  }
  return out;
}

/** A string or a list of strings → a list. */
export function toStringList(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value.map((v) => String(v));
  return [String(value)];
}

export function optionalString(value: unknown): string | undefined {
  return value === undefined || value === null ? undefined : String(value);
}
