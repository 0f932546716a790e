/**
 * `env_file` and `environment`, with docker CLI semantics.
 *
 * An env file (docker/cli pkg/kvfile, as used by opts.ParseEnvFile):
 * - one `KEY=VALUE` per line; the value is kept verbatim: no quote removal,
 *   no escapes, no interpolation, trailing whitespace kept;
 * - leading whitespace is dropped; blank lines and lines starting with `#`
 *   are skipped; a UTF-8 BOM on the first line is dropped;
 * - a bare `KEY` takes its value from the environment, and is left out when
 *   the variable is unset;
 * - a line with no name (`=x`) or a name holding a space or tab is an error.
 *
 * Then, as loader.resolveEnvironment does: the env files in order, then
 * `environment` over them; for each entry, a value that is missing (`FOO`)
 * or empty (`FOO=`) is replaced by the environment's value when the
 * variable is set. A missing value whose variable is unset stays null, and
 * a null in `environment` replaces what an env file said.
 */
import { AirlockError } from '../../errors/index.js';
import type { KeyPath } from '../../config/key-path.js';
import { composeError } from './errors.js';

const LEADING_SPACE = /^[\t\n\v\f\r \u0085\u00A0\p{Z}]+/u;

/** Parses env file text; `file` is the path used in errors. */
export function parseEnvFile(
  file: string,
  content: string,
  lookup: (name: string) => string | undefined,
): [string, string][] {
  const out: [string, string][] = [];
  const lines = content.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  lines.forEach((raw, index) => {
    let line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (index === 0 && line.startsWith('\uFEFF')) line = line.slice(1);
    line = line.replace(LEADING_SPACE, '');
    if (line === '' || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    const key = eq < 0 ? line : line.slice(0, eq);
    const where = `line ${index + 1}`;
    if (key === '') {
      throw composeError(file, null, `${where}: no variable name on line '${line}'`, {
        reason: 'compose-env-file',
        hint: 'Each line is KEY=VALUE, a bare KEY, a comment (#) or blank.',
      });
    }
    if (/[ \t]/.test(key)) {
      throw composeError(file, null, `${where}: variable '${key}' contains whitespaces`, {
        reason: 'compose-env-file',
        hint: 'Variable names cannot hold spaces or tabs; there is no space allowed around `=`.',
      });
    }
    if (eq >= 0) {
      out.push([key, line.slice(eq + 1)]);
      return;
    }
    const value = lookup(line);
    if (value !== undefined) out.push([key, value]);
  });
  return out;
}

/** `environment` in list or map form → name → value (null when no value is written). */
export function environmentEntries(value: unknown): [string, string | null][] {
  if (Array.isArray(value)) {
    return value.map((item) => {
      const s = String(item);
      const eq = s.indexOf('=');
      return eq < 0 ? [s, null] : [s.slice(0, eq), s.slice(eq + 1)];
    });
  }
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).map(([k, v]) => [k, v === null || v === undefined ? null : stringValue(v)]);
  }
  return [];
}

/** Go's fmt.Sprint for the scalar types YAML produces. */
export function stringValue(v: unknown): string {
  if (typeof v === 'number' && Number.isFinite(v) && !Number.isInteger(v)) {
    // fmt.Sprint of a float64: %g with the shortest digits, exponent form below 1e-4 and from 1e6.
    const exp = Math.floor(Math.log10(Math.abs(v)));
    if (exp < -4 || exp >= 6) return v.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
  }
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

export interface ResolveEnvironmentInput {
  /** Parsed env files, in the order they are listed. */
  envFiles: [string, string][][];
  environment: [string, string | null][];
  lookup: (name: string) => string | undefined;
}

export function resolveEnvironment(input: ResolveEnvironmentInput): Record<string, string | null> {
  const result: Record<string, string | null> = {};
  const put = (k: string, v: string | null): void => {
    const fromEnv = v === null || v === '' ? input.lookup(k) : undefined;
    Object.defineProperty(result, k, { value: fromEnv ?? v, enumerable: true, writable: true, configurable: true });
  };
  const fileVars = new Map<string, string>();
  for (const entries of input.envFiles) for (const [k, v] of entries) fileVars.set(k, v);
  for (const [k, v] of fileVars) put(k, v);
  for (const [k, v] of input.environment) put(k, v);
  return result;
}

/** Error for an env file that cannot be read. */
export function envFileReadError(composeFile: string, path: KeyPath, absPath: string, cause: unknown): AirlockError {
  if (cause instanceof AirlockError) return cause;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const problem = code === 'ENOENT' ? `env file ${absPath} not found` : `cannot read env file ${absPath}: ${(cause as Error).message}`;
  return composeError(composeFile, path, problem, {
    reason: 'compose-env-file',
    hint: 'env_file paths are relative to the folder of the first compose file.',
    cause,
  });
}
