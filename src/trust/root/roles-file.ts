/**
 * The vendor's roles.yml: the release roles, the bundle paths each covers, its threshold and its
 * named key files (relative to the yml), read with line numbers for every refusal; what
 * `airlock trust targets` writes as TUF delegations.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument } from 'yaml';
import { configError } from '../../errors/index.js';
import { readTufPublicKey, type TufPublicKey } from './tuf-keys.js';

export interface RoleSpec {
  name: string;
  paths: string[];
  threshold: number;
  keys: { name: string; key: TufPublicKey }[];
}

/** roles.yml: the release roles, their bundle paths, thresholds and named key files (relative to the yml). */
export async function readRolesFile(path: string): Promise<RoleSpec[]> {
  const bad = (detail: string, offset?: number) => {
    const line = offset === undefined ? '' : `:${lineCounter.linePos(offset).line}`;
    return configError(`${path}${line}: ${detail}`, {
      reason: 'bad-roles',
      subject: path,
      hint: 'each role: {name, paths: ["stacks/*"], threshold: N (1 to its keys), keys: {person: key.pub}}; nothing was written',
    });
  };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw configError(`cannot read roles file ${path}: ${(e as Error).message}`, { reason: 'bad-roles', subject: path });
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  if (doc.errors.length > 0) throw bad(`not YAML: ${doc.errors[0]!.message}`, doc.errors[0]!.pos[0]);
  const rolesNode = doc.get('roles', true);
  if (!isSeq(rolesNode) || rolesNode.items.length === 0) throw bad('it needs a list "roles:" with at least one role');
  const specs: RoleSpec[] = [];
  for (const [i, node] of rolesNode.items.entries()) {
    const at = (node as { range?: [number, number, number] }).range?.[0];
    if (!isMap(node)) throw bad(`role ${i + 1} is not a mapping`, at);
    const r = node.toJSON() as { name?: unknown; paths?: unknown; threshold?: unknown; keys?: unknown };
    const label = typeof r.name === 'string' && r.name !== '' ? `role ${r.name}` : `role ${i + 1}`;
    if (typeof r.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(r.name)) throw bad(`${label} needs a name (letters, digits, '.', '_', '-')`, at);
    if (specs.some((s) => s.name === r.name)) throw bad(`${label} is named twice`, at);
    if (!Array.isArray(r.paths) || r.paths.length === 0 || !r.paths.every((p) => typeof p === 'string' && p !== '')) {
      throw bad(`${label} needs paths: a non-empty list of bundle patterns such as stacks/* or engine/*`, at);
    }
    if (r.keys === null || typeof r.keys !== 'object' || Array.isArray(r.keys) || Object.keys(r.keys).length === 0) {
      throw bad(`${label} needs keys: a mapping of person: key file`, at);
    }
    const keys: RoleSpec['keys'] = [];
    for (const [name, file] of Object.entries(r.keys as Record<string, unknown>)) {
      if (typeof file !== 'string' || file === '') throw bad(`${label}: key ${name} needs a key file`, at);
      const key = await readTufPublicKey(resolve(dirname(path), file), { sshsig: true });
      const twin = keys.find((k) => k.key.keyId === key.keyId);
      if (twin) throw bad(`${label}: keys ${twin.name} and ${name} are the same key`, at);
      keys.push({ name, key });
    }
    if (typeof r.threshold !== 'number' || !Number.isInteger(r.threshold) || r.threshold < 1 || r.threshold > keys.length) {
      throw bad(`${label}: threshold ${JSON.stringify(r.threshold)} must be a whole number from 1 to its ${keys.length} keys`, at);
    }
    specs.push({ name: r.name, paths: r.paths as string[], threshold: r.threshold, keys });
  }
  return specs;
}
