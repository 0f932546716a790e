/**
 * hosts.yml: the hosts the jump box drives over SSH. Validated against a
 * schema, then each host's settings resolved (host, then its groups, then
 * `defaults`), every error naming the file, the line and the key:
 *
 *   hosts.yml:7: hosts.h2.roles[0]: must be one of manager, worker
 *
 * The format (docs/remote.md):
 *
 *   defaults: { user: root, port: 22, key: ./id_ed25519, knownHosts: ./known_hosts, timeout: 10s, labels: {...} }
 *   groups:                       # optional
 *     db: { hosts: [h2, h3], roles: [worker], labels: { tier: db }, user: ..., port: ... }
 *   hosts:
 *     h1: { address: 10.99.0.11, roles: [manager], labels: { zone: a }, user: ..., port: ..., key: ... }
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parseDuration } from '../units/duration.js';
import { YamlFile } from '../config/yaml-file.js';
import { keyPathOf, type KeyPath } from '../config/key-path.js';
import { compiledOnce } from '../config/schema.js';
import { checkPrivateKeyFile, notAFile } from '../config/paths.js';
import { configError, notFound } from '../errors/index.js';

export type HostRole = 'manager' | 'worker';
export const HOST_ROLES: readonly HostRole[] = ['manager', 'worker'];

export interface InventoryHost {
  /** The key under `hosts:` (h1, node-3, ...): how every message names the host. */
  name: string;
  /** IP address or DNS name; also the swarm advertise address of the host. */
  address: string;
  port: number;
  user: string;
  /** Absolute path of the SSH private key. */
  keyFile: string;
  /** Absolute path of the known_hosts file its host key is checked against. */
  knownHostsFile: string;
  /** At least one; a host with `manager` is a swarm manager (managers run tasks too). */
  roles: HostRole[];
  /** Swarm node labels: defaults, then groups, then the host's own. */
  labels: Record<string, string>;
  /** SSH connect (handshake) timeout. */
  timeoutMs: number;
  /** The groups that list this host, in file order. */
  groups: string[];
}

export interface Inventory {
  /** Absolute path of hosts.yml. */
  file: string;
  /** In file order: the first manager is where `cluster up` initialises the swarm. */
  hosts: InventoryHost[];
}

export const DEFAULT_SSH_PORT = 22;
export const DEFAULT_HOST_TIMEOUT_MS = 10_000;
export const DEFAULT_KNOWN_HOSTS = '~/.ssh/known_hosts';

/** The role the node has in the swarm. */
export function swarmRole(h: InventoryHost): HostRole {
  return h.roles.includes('manager') ? 'manager' : 'worker';
}

export function managersOf(inv: Inventory): InventoryHost[] {
  return inv.hosts.filter((h) => swarmRole(h) === 'manager');
}

/** `h2 (10.99.0.12)`, with `:port` when it is not 22: how every message names a host. */
export function hostLabel(host: Pick<InventoryHost, 'name' | 'address' | 'port'>): string {
  return `${host.name} (${host.address}${host.port === DEFAULT_SSH_PORT ? '' : `:${host.port}`})`;
}

/** `10.99.0.11` on port 22, `[10.99.0.11]:2222` otherwise: the form ssh and known_hosts use. */
export function hostPort(h: Pick<InventoryHost, 'address' | 'port'>): string {
  return h.port === DEFAULT_SSH_PORT ? h.address : `[${h.address}]:${h.port}`;
}

const str = { type: 'string', minLength: 1 } as const;
const labels = { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } } as const;
const roles = { type: 'array', minItems: 1, uniqueItems: true, items: { enum: HOST_ROLES } } as const;
const settings = {
  user: str,
  port: { type: 'integer', minimum: 1, maximum: 65535 },
  key: str,
  knownHosts: str,
  timeout: { type: ['string', 'number'] },
  labels,
} as const;

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['hosts'],
  properties: {
    defaults: { type: 'object', nullable: true, additionalProperties: false, properties: settings },
    groups: {
      type: 'object',
      nullable: true,
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['hosts'],
        properties: { hosts: { type: 'array', items: str }, roles, ...settings },
      },
    },
    hosts: {
      type: 'object',
      minProperties: 1,
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['address'],
        properties: { address: str, roles, ...settings },
      },
    },
  },
} as const;

const validator = compiledOnce(() => new Ajv({ allErrors: false, strict: true, allowUnionTypes: true }).compile(schema));

type Scalar = string | number | boolean;
interface RawSettings {
  user?: string;
  port?: number;
  key?: string;
  knownHosts?: string;
  timeout?: string | number;
  labels?: Record<string, Scalar>;
}
interface RawGroup extends RawSettings {
  hosts: string[];
  roles?: HostRole[];
}
interface RawHost extends RawSettings {
  address: string;
  roles?: HostRole[];
}
interface Raw {
  defaults?: RawSettings | null;
  groups?: Record<string, RawGroup> | null;
  hosts: Record<string, RawHost>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SETTINGS = ['user', 'port', 'key', 'knownHosts', 'timeout'] as const;
type SettingKey = (typeof SETTINGS)[number];

export async function loadInventory(file: string): Promise<Inventory> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw notFound(`inventory not found: ${file}`, {
        subject: file,
        reason: 'no-inventory',
        hint: 'pass --inventory hosts.yml (docs/remote.md shows the format; scripts/lab writes one for a lab)',
      });
    }
    if ((e as NodeJS.ErrnoException).code === 'EISDIR') throw notAFile(file, 'inventory', `give the inventory file itself: --inventory ${join(file, 'hosts.yml')}`);
    throw configError(`cannot read inventory ${file}: ${(e as Error).message}`, { subject: file, reason: 'no-inventory' });
  }
  const inventory = parseInventory(file, text);
  // Before any host is asked: one key open to others would fail every host that uses it.
  for (const key of new Set(inventory.hosts.map((h) => h.keyFile))) checkPrivateKeyFile(key, `SSH key (key: in ${file})`);
  return inventory;
}

/**
 * Parses hosts.yml. `file` names it in messages (as the operator typed it);
 * relative key and knownHosts paths resolve against its folder.
 */
export function parseInventory(file: string, text: string): Inventory {
  const yaml = YamlFile.parse(file, text);
  const raw = yaml.toJS();
  const validate = validator();
  if (!validate(raw)) throw schemaError(yaml, validate.errors![0]!);
  const r = raw as Raw;
  const base = dirname(resolve(file));
  const defaults = r.defaults ?? {};
  const groups = Object.entries(r.groups ?? {});
  checkNames(yaml, r, groups);

  const hosts: InventoryHost[] = [];
  const seen = new Map<string, string>();
  for (const [name, h] of Object.entries(r.hosts)) {
    const member = groups.filter(([, g]) => g.hosts.includes(name));
    const pick = settingPicker(yaml, name, h, member, defaults);
    const user = pick('user');
    if (!user) throw yaml.error(['hosts', name, 'user'], 'is required: set user on the host, in one of its groups, or under defaults', 'bad-inventory');
    const key = pick('key');
    if (!key) throw yaml.error(['hosts', name, 'key'], 'is required: set key (the SSH private key file) on the host, in one of its groups, or under defaults', 'bad-inventory');
    const timeout = pick('timeout');
    const labelsOf = mergedLabels(yaml, name, h, member, defaults);
    const hostRoles = rolesOfHost(yaml, name, h, member);

    const port = pick('port')?.value ?? DEFAULT_SSH_PORT;
    const dup = seen.get(`${h.address}:${port}`);
    if (dup) throw yaml.error(['hosts', name, 'address'], `${h.address} port ${port} is also the address of host ${dup}`, 'bad-inventory');
    seen.set(`${h.address}:${port}`, name);

    hosts.push({
      name,
      address: h.address,
      port,
      user: user.value!,
      keyFile: pathFrom(base, key.value!),
      knownHostsFile: pathFrom(base, pick('knownHosts')?.value ?? DEFAULT_KNOWN_HOSTS),
      roles: [...hostRoles],
      labels: labelsOf,
      timeoutMs: timeout ? timeoutMsOf(yaml, timeout.at, timeout.value!) : DEFAULT_HOST_TIMEOUT_MS,
      groups: member.map(([g]) => g),
    });
  }

  if (!hosts.some((h) => swarmRole(h) === 'manager')) {
    throw yaml.error(['hosts'], 'no host has the role manager: a swarm needs at least one (roles: [manager])', 'no-manager');
  }
  return { file: resolve(file), hosts };
}

type Member = [name: string, group: RawGroup];

/** Host and group names are plain, and every host a group lists is under hosts:. */
function checkNames(yaml: YamlFile, r: Raw, groups: Member[]): void {
  for (const [name] of groups) {
    if (!NAME.test(name)) throw yaml.error(['groups', name], 'a group name may contain only letters, digits, ".", "_" and "-"', 'bad-inventory');
  }
  for (const [name] of Object.entries(r.hosts)) {
    if (!NAME.test(name)) throw yaml.error(['hosts', name], 'a host name may contain only letters, digits, ".", "_" and "-"', 'bad-inventory');
  }
  for (const [g, group] of groups) {
    group.hosts.forEach((h, i) => {
      if (!(h in r.hosts)) {
        throw yaml.error(['groups', g, 'hosts', i], `no host "${h}" under hosts: (${Object.keys(r.hosts).join(', ')})`, 'bad-inventory');
      }
    });
  }
}

/** A key or knownHosts path: `~` is the home folder, a relative path is taken from hosts.yml's folder. */
function pathFrom(base: string, p: string): string {
  if (p === '~') return homedir();
  if (p.startsWith('~/')) return join(homedir(), p.slice(2));
  return isAbsolute(p) ? p : resolve(base, p);
}

/** `timeout:` as milliseconds: a number of seconds, or a duration such as 10s. */
function timeoutMsOf(yaml: YamlFile, at: KeyPath, v: string | number): number {
  if (typeof v === 'number') {
    if (!(v > 0)) throw yaml.error(at, 'must be a positive number of seconds, or a duration such as 10s', 'bad-inventory');
    return Math.round(v * 1000);
  }
  let ns: number;
  try {
    ns = parseDuration(v);
  } catch {
    throw yaml.error(at, `"${v}" is not a duration (e.g. 10s, 1m)`, 'bad-inventory');
  }
  if (ns <= 0) throw yaml.error(at, 'must be more than 0', 'bad-inventory');
  return Math.max(1, Math.round(ns / 1e6));
}

/**
 * A host's setting: its own value, else the one its groups agree on (groups
 * that disagree are refused), else defaults; with where it was set.
 */
function settingPicker(yaml: YamlFile, name: string, h: RawHost, member: Member[], defaults: RawSettings) {
  return <K extends SettingKey>(key: K): { value: RawSettings[K]; at: KeyPath } | undefined => {
    if (h[key] !== undefined) return { value: h[key], at: ['hosts', name, key] };
    let found: { value: RawSettings[K]; at: KeyPath; group: string } | undefined;
    for (const [g, group] of member) {
      if (group[key] === undefined) continue;
      if (found && found.value !== group[key]) {
        throw yaml.error(
          ['groups', g, key],
          `host ${name} is in groups ${found.group} and ${g}, which set ${key} to ${JSON.stringify(found.value)} and ${JSON.stringify(group[key])}: set it on hosts.${name}`,
          'bad-inventory',
        );
      }
      found ??= { value: group[key], at: ['groups', g, key], group: g };
    }
    if (found) return found;
    if (defaults[key] !== undefined) return { value: defaults[key], at: ['defaults', key] };
    return undefined;
  };
}

/** A host's node labels: defaults, then its groups (two that disagree are refused unless the host sets it), then its own. */
function mergedLabels(yaml: YamlFile, name: string, h: RawHost, member: Member[], defaults: RawSettings): Record<string, string> {
  const labelsOf: Record<string, string> = {};
  const labelFrom = new Map<string, string>();
  for (const [k, v] of Object.entries(defaults.labels ?? {})) labelsOf[k] = String(v);
  for (const [g, group] of member) {
    for (const [k, v] of Object.entries(group.labels ?? {})) {
      const prev = labelFrom.get(k);
      if (prev !== undefined && labelsOf[k] !== String(v) && h.labels?.[k] === undefined) {
        throw yaml.error(['groups', g, 'labels', k], `host ${name} is in groups ${prev} and ${g}, which set label ${k} to "${labelsOf[k]}" and "${String(v)}": set it on hosts.${name}.labels`, 'bad-inventory');
      }
      labelsOf[k] = String(v);
      labelFrom.set(k, g);
    }
  }
  for (const [k, v] of Object.entries(h.labels ?? {})) labelsOf[k] = String(v);
  for (const k of Object.keys(labelsOf)) {
    if (k.trim() === '') throw yaml.error(['hosts', name, 'labels'], 'a label name must not be empty', 'bad-inventory');
  }
  return labelsOf;
}

/** A host's roles: its own, else every role its groups give it; one is required. */
function rolesOfHost(yaml: YamlFile, name: string, h: RawHost, member: Member[]): readonly HostRole[] {
  let hostRoles: readonly HostRole[] | undefined = h.roles;
  if (!hostRoles) {
    const fromGroups = new Set(member.flatMap(([, g]) => g.roles ?? []));
    if (fromGroups.size > 0) hostRoles = HOST_ROLES.filter((x) => fromGroups.has(x));
  }
  if (!hostRoles) throw yaml.error(['hosts', name, 'roles'], 'is required: give the host roles [manager] or [worker], here or through a group', 'bad-inventory');
  return hostRoles;
}

/** The first Ajv error as the key it is about; enums list their values plainly. */
function schemaError(yaml: YamlFile, err: ErrorObject) {
  if (err.keyword === 'enum') {
    const allowed = (err.params as { allowedValues: unknown[] }).allowedValues.map(String).join(', ');
    return yaml.error(keyPathOf(err), `must be one of ${allowed}`, 'bad-inventory');
  }
  if (err.keyword === 'type' && err.instancePath === '') return yaml.error([], 'must be a mapping with hosts: (and optional defaults: and groups:)', 'bad-inventory');
  if (err.keyword === 'minProperties') return yaml.error(keyPathOf(err), 'lists no host', 'bad-inventory');
  if (err.keyword === 'uniqueItems') return yaml.error(keyPathOf(err), 'lists a role twice', 'bad-inventory');
  if (err.keyword === 'type' && /\/labels\/[^/]+$/.test(err.instancePath)) return yaml.error(keyPathOf(err), 'a label value must be a string, number or boolean', 'bad-inventory');
  if (err.keyword === 'type' && /\/timeout$/.test(err.instancePath)) return yaml.error(keyPathOf(err), 'must be a duration such as 10s, or a number of seconds', 'bad-inventory');
  return yaml.schemaError(err, 'bad-inventory');
}
