/**
 * Interpolation of a parsed compose file, as docker/cli's
 * cli/compose/interpolation and loader/interpolate.go do it: every string
 * value (never a key) goes through the template substitution, x-* fields
 * included; then, where docker knows the schema wants a number or a boolean,
 * a string that interpolation changed is cast (`replicas: ${N}` → 3). A
 * string that interpolation left alone is not cast, so `replicas: "3"` still
 * fails validation, as it does for docker.
 */
import { formatKeyPath, type KeyPath } from '../../config/key-path.js';
import { composeError, isMapping } from './errors.js';
import { substitute, TemplateError } from './template.js';

type Cast = (value: string) => unknown;

/** Path patterns: `*` is any key, `[]` any list item. */
const CASTS: [string, Cast][] = [];

function servicePath(...parts: string[]): string {
  return ['services', '*', ...parts].join('.');
}

const toInt: Cast = (v) => {
  // strconv.Atoi: optional sign, decimal digits only.
  if (!/^[+-]?\d+$/.test(v)) throw new Error(`invalid integer ${JSON.stringify(v)}`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`integer out of range ${JSON.stringify(v)}`);
  return n;
};

const toFloat: Cast = (v) => {
  // strconv.ParseFloat accepts what JavaScript's Number does, bar hex and empty strings.
  const t = v.trim();
  if (t !== v || t === '' || /^[+-]?0x/i.test(t)) throw new Error(`invalid number ${JSON.stringify(v)}`);
  const n = Number(t.replace(/^([+-]?)inf(inity)?$/i, '$1Infinity'));
  if (Number.isNaN(n) && !/^[+-]?nan$/i.test(t)) throw new Error(`invalid number ${JSON.stringify(v)}`);
  return n;
};

/** YAML 1.1 booleans, as docker's toBoolean reads them. */
const toBoolean: Cast = (v) => {
  switch (v.toLowerCase()) {
    case 'y': case 'yes': case 'true': case 'on':
      return true;
    case 'n': case 'no': case 'false': case 'off':
      return false;
    default:
      throw new Error(`invalid boolean: ${v}`);
  }
};

CASTS.push(
  [servicePath('configs', '[]', 'mode'), toInt],
  [servicePath('secrets', '[]', 'mode'), toInt],
  [servicePath('healthcheck', 'retries'), toInt],
  [servicePath('healthcheck', 'disable'), toBoolean],
  [servicePath('deploy', 'replicas'), toInt],
  [servicePath('deploy', 'update_config', 'parallelism'), toInt],
  [servicePath('deploy', 'update_config', 'max_failure_ratio'), toFloat],
  [servicePath('deploy', 'rollback_config', 'parallelism'), toInt],
  [servicePath('deploy', 'rollback_config', 'max_failure_ratio'), toFloat],
  [servicePath('deploy', 'restart_policy', 'max_attempts'), toInt],
  [servicePath('deploy', 'placement', 'max_replicas_per_node'), toInt],
  [servicePath('ports', '[]', 'target'), toInt],
  [servicePath('ports', '[]', 'published'), toInt],
  [servicePath('ulimits', '*'), toInt],
  [servicePath('ulimits', '*', 'hard'), toInt],
  [servicePath('ulimits', '*', 'soft'), toInt],
  [servicePath('privileged'), toBoolean],
  [servicePath('read_only'), toBoolean],
  [servicePath('stdin_open'), toBoolean],
  [servicePath('tty'), toBoolean],
  [servicePath('volumes', '[]', 'read_only'), toBoolean],
  [servicePath('volumes', '[]', 'volume', 'nocopy'), toBoolean],
  ['networks.*.external', toBoolean],
  ['networks.*.internal', toBoolean],
  ['networks.*.attachable', toBoolean],
  ['volumes.*.external', toBoolean],
  ['secrets.*.external', toBoolean],
  ['configs.*.external', toBoolean],
);

const CAST_PATTERNS = CASTS.map(([p, cast]) => [p.split('.'), cast] as const);

function castFor(pattern: string[]): Cast | undefined {
  for (const [p, cast] of CAST_PATTERNS) {
    if (p.length !== pattern.length) continue;
    if (p.every((part, i) => part === '*' || part === pattern[i])) return cast;
  }
  return undefined;
}

/**
 * Interpolates every string in `config`. `file` names the compose file in
 * errors; `lookup` resolves variable names (unset → undefined).
 */
export function interpolateConfig(
  file: string,
  config: Record<string, unknown>,
  lookup: (name: string) => string | undefined,
): Record<string, unknown> {
  const walk = (value: unknown, path: KeyPath, pattern: string[]): unknown => {
    if (typeof value === 'string') {
      let out: string;
      try {
        out = substitute(value, lookup);
      } catch (e) {
        if (e instanceof TemplateError && e.kind === 'required') {
          throw composeError(file, path, e.message, {
            reason: 'compose-variable-missing',
            hint: 'Set the variable in the environment, the host config or the bundle env file.',
          });
        }
        if (e instanceof TemplateError) {
          throw composeError(file, path, `${e.message}; you may need to escape any $ with another $`, {
            reason: 'compose-interpolation',
            hint: 'Write $$ for a literal dollar sign; variables are $NAME or ${NAME}.',
          });
        }
        throw e;
      }
      if (out === value) return value;
      const cast = castFor(pattern);
      if (cast === undefined) return out;
      try {
        return cast(out);
      } catch (e) {
        throw composeError(file, path, `failed to cast to expected type: ${(e as Error).message}`, {
          reason: 'compose-interpolation',
          hint: `${formatKeyPath(path)} needs a ${cast === toBoolean ? 'boolean' : 'number'} after interpolation.`,
        });
      }
    }
    if (Array.isArray(value)) return value.map((v, i) => walk(v, [...path, i], [...pattern, '[]']));
    if (isMapping(value)) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        Object.defineProperty(out, k, { value: walk(v, [...path, k], [...pattern, k]), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    return value;
  };
  return walk(config, [], []) as Record<string, unknown>;
}

/** One source of interpolation variables, named for messages (`process environment`, `host config`, `bundle env file .env`). */
export interface VariableLayer {
  source: string;
  vars: Record<string, string>;
}

/**
 * Merges the variable layers airlock interpolates compose files with.
 * Layers are listed from the highest precedence to the lowest; the first
 * layer that defines a variable wins, even with an empty value.
 *
 * airlock's order, highest first:
 *   1. the process environment of the command or agent,
 *   2. the host config (per-site values set by the operator),
 *   3. the bundle's env files (defaults the vendor ships; later files in the
 *      bundle definition override earlier ones, so pass them last first).
 *
 * `docker stack deploy` uses only the process environment. airlock adds the
 * lower layers so a bundle can carry defaults and a site can override them
 * without editing the compose files.
 */
export function interpolationEnv(layers: VariableLayer[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i];
    if (layer === undefined) continue;
    for (const [k, v] of Object.entries(layer.vars)) {
      Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
  }
  return out;
}
