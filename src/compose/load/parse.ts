/**
 * Compose file text → a plain mapping, as docker/cli's ParseYAML does it:
 * YAML 1.1 (gopkg.in/yaml.v2), so `yes`/`no`/`on`/`off` are booleans and
 * `0755` is octal; anchors, aliases and `<<` merge keys; every mapping key
 * must be a string; the top level must be a mapping.
 *
 * Two YAML 1.1 types that yaml.v2 does not resolve are switched off so the
 * values stay strings as they do for docker: sexagesimal numbers (`22:22`
 * would otherwise become 1342, which matters for port strings) and
 * timestamps.
 */
import YAML, { type Tags } from 'yaml';
import { formatKeyPath, type KeyPath } from '../../config/key-path.js';
import { composeError } from './errors.js';

const HINT_SYNTAX = 'Fix the YAML syntax at that line; check indentation, quotes and brackets.';

const FLOAT_TAG = 'tag:yaml.org,2002:float';
// yaml.v2 needs a digit in a float; the yaml package's 1.1 patterns would read `.` or `e5` as NaN.
const FLOAT = /^[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*\.[0-9_]*)$/;
const FLOAT_EXP = /^[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)[eE][-+]?[0-9]+$/;

function yaml11Tags(tags: Tags): Tags {
  return tags
    .filter((t) => typeof t === 'string' || (t.format !== 'TIME' && t.tag !== 'tag:yaml.org,2002:timestamp'))
    .map((t) => {
      if (typeof t === 'string' || t.tag !== FLOAT_TAG || t.test === undefined) return t;
      if (t.format === 'EXP') return { ...t, test: FLOAT_EXP };
      if (t.test.test('.nan')) return t;
      return { ...t, test: FLOAT };
    });
}

/** Parses one compose file. `name` is used in messages. */
export function parseComposeYaml(name: string, content: string): Record<string, unknown> {
  const docs = YAML.parseAllDocuments(content, {
    version: '1.1',
    merge: true,
    uniqueKeys: true,
    prettyErrors: true,
    customTags: yaml11Tags,
  });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) {
    const err = doc.errors[0];
    if (err !== undefined) {
      const pos = err.linePos?.[0];
      const firstLine = err.message.split('\n')[0] ?? err.message;
      const what = firstLine.replace(/ at line \d+, column \d+:?$/, '');
      const where = pos === undefined ? '' : `line ${pos.line}, column ${pos.col}: `;
      throw composeError(name, null, `invalid YAML: ${where}${what}`, {
        reason: 'compose-yaml',
        hint: HINT_SYNTAX,
      });
    }
  }
  if (list.length > 1) {
    throw composeError(name, null, `holds ${list.length} YAML documents; a compose file is one document`, {
      reason: 'compose-yaml',
      hint: 'Remove the `---` separators, or split the documents into separate compose files.',
    });
  }
  const doc = list[0];
  let value: unknown;
  try {
    value = doc === undefined ? null : doc.toJS({ mapAsMap: true, maxAliasCount: 1000 });
  } catch (e) {
    throw composeError(name, null, `invalid YAML: ${e instanceof Error ? e.message : String(e)}`, {
      reason: 'compose-yaml',
      hint: 'Check the anchors (&name) and aliases (*name) in the file.',
      cause: e,
    });
  }
  if (!(value instanceof Map)) {
    throw composeError(name, null, 'the top level must be a mapping (services:, networks:, …)', {
      reason: 'compose-yaml',
      hint: 'A compose file starts with keys such as `services:`.',
    });
  }
  return toStringKeys(name, value, []) as Record<string, unknown>;
}

/** Maps with string keys only, like docker's convertToStringKeysRecursive. */
function toStringKeys(file: string, value: unknown, path: KeyPath): unknown {
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of value) {
      if (typeof k !== 'string') {
        const where = path.length === 0 ? 'at the top level' : `in ${formatKeyPath(path)}`;
        throw composeError(file, null, `non-string key ${where}: ${String(k)}`, {
          reason: 'compose-yaml',
          hint: 'Quote the key so it is read as a string, e.g. "80": or "yes":.',
        });
      }
      Object.defineProperty(out, k, { value: toStringKeys(file, v, [...path, k]), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  if (Array.isArray(value)) return value.map((v, i) => toStringKeys(file, v, [...path, i]));
  if (value instanceof Set) {
    throw composeError(file, path, 'a YAML !!set is not a valid compose value', { reason: 'compose-yaml' });
  }
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8'); // yaml.v2 decodes !!binary to its bytes
  return value;
}
