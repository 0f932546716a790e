/**
 * Secrets and configs: the objects a stack creates, and each service's
 * references to them.
 *
 * Swarm cannot change a secret's or config's content, so unlike docker
 * (which names them `<stack>_<name>` and tries to update them in place),
 * airlock names each one by its content: `<stack>_<name>-<10 hex>`, the
 * suffix given by the caller (a keyed hash on a host, src/seal/names.ts, so
 * that the name lets no one test guesses of the value). A new content is a
 * new object, and the service update switches to it. An explicit `name:` is
 * kept as written; an external one is only referred to. Each created object
 * also carries the label `com.docker.stack.airlock.logical-name=<compose name>`.
 */
import { createHash } from 'node:crypto';
import type { ConfigReference, ConfigSpec, FileTarget, SecretReference, SecretSpec } from '../../docker/types.js';
import type { FileObjectConfig, ServiceFileRef } from '../model.js';
import type { ConvertContext, FileObjectName } from './context.js';
import { LOGICAL_NAME_LABEL } from '../labels.js';
import { byteOrder, compact, scoped, sortedBy, withStackLabel } from './names.js';
import type { Notices } from './notices.js';

export type FileObjectKind = 'secret' | 'config';

/** Swarm's limit on secret and config names. */
const MAX_NAME = 64;
const HASH_CHARS = 10;
const DEFAULT_MODE = 0o444;

export interface ConvertedFileObjects<S> {
  specs: S[];
  /** Compose name → the name services refer to. */
  names: Map<string, FileObjectName>;
  /** Engine name of each created object → the file its data came from. */
  files: Map<string, string>;
}

/** The content suffix of object `scopedName` (`<stack>_<name>`) whose file `absPath` holds `data`. */
export type NameSuffix = (scopedName: string, data: Uint8Array, absPath: string) => string;

/**
 * The unkeyed suffix: 10 hex digits of the value's SHA-256. Anyone who sees
 * the name can test guesses of a short value against it, so hosts never use
 * it (they name with a keyed suffix); it serves pure conversions, and tests
 * that compare with docker.
 */
export const unkeyedSuffix: NameSuffix = (_name, data) => createHash('sha256').update(data).digest('hex').slice(0, HASH_CHARS);

export function contentName(stack: string, key: string, data: Uint8Array, suffix: NameSuffix = unkeyedSuffix, absPath = ''): string {
  const name = scoped(stack, key);
  return `${name}-${suffix(name, data, absPath)}`;
}

function convertFileObjects(
  kind: FileObjectKind,
  stack: string,
  objects: Record<string, FileObjectConfig>,
  files: FileObjectReader,
  notices: Notices,
): ConvertedFileObjects<SecretSpec & ConfigSpec> {
  const specs: (SecretSpec & ConfigSpec)[] = [];
  const names = new Map<string, FileObjectName>();
  const sources = new Map<string, string>();
  for (const key of Object.keys(objects).sort(byteOrder)) {
    const obj = objects[key]!;
    const path = `${kind}s.${key}`;
    if (obj.external) {
      const name = obj.name || key;
      names.set(key, { name, dockerName: name });
      continue;
    }
    if (!obj.file) {
      notices.error(path, `a ${kind} needs a file (or external: true)`);
      continue;
    }
    let data: Buffer;
    try {
      data = files.fileData(obj.file);
    } catch (e) {
      const reason = (e as NodeJS.ErrnoException).code ?? 'unreadable';
      notices.error(`${path}.file`, `cannot read ${obj.file} (${reason})`);
      continue;
    }
    const dockerName = obj.name || scoped(stack, key);
    const name = obj.name || contentName(stack, key, data, files.nameSuffix, obj.file);
    if (obj.name) {
      notices.warn(
        `${path}.name`,
        `the ${kind} keeps the name "${obj.name}" as written; Swarm cannot change a ${kind}'s content, so when its content changes, give it a new name (or drop name: and airlock names it by content)`,
      );
    }
    if (name.length > MAX_NAME) {
      notices.error(path, `the ${kind} name "${name}" is longer than Swarm's ${MAX_NAME} characters: use a shorter stack or ${kind} name`);
      continue;
    }
    names.set(key, { name, dockerName });
    sources.set(name, obj.file);
    specs.push(
      compact<SecretSpec & ConfigSpec>({
        Name: name,
        Labels: { ...withStackLabel(stack, obj.labels), [LOGICAL_NAME_LABEL]: key },
        Data: data.toString('base64'),
        Templating: obj.template_driver ? { Name: obj.template_driver } : undefined,
      }),
    );
  }
  return { specs, names, files: sources };
}

/** Where secret and config data come from, and how their names are suffixed. */
export interface FileObjectReader {
  /** Reads a secret's or config's file (absolute path as the model holds it). */
  fileData: (absPath: string) => Buffer;
  /** Default: unkeyedSuffix. */
  nameSuffix?: NameSuffix;
}

export function convertSecrets(stack: string, objects: Record<string, FileObjectConfig>, files: FileObjectReader, notices: Notices): ConvertedFileObjects<SecretSpec> {
  return convertFileObjects('secret', stack, objects, files, notices);
}

export function convertConfigs(stack: string, objects: Record<string, FileObjectConfig>, files: FileObjectReader, notices: Notices): ConvertedFileObjects<ConfigSpec> {
  return convertFileObjects('config', stack, objects, files, notices);
}

function fileTarget(ref: ServiceFileRef): FileTarget {
  return {
    Name: ref.target || ref.source,
    UID: ref.uid || '0',
    GID: ref.gid || '0',
    Mode: ref.mode ?? DEFAULT_MODE,
  };
}

/**
 * Resolves refs to names; sorted by the name docker would have used, so the
 * order matches docker's. Two refs with the same target are refused, as
 * docker refuses them. (Docker orders two refs to the same object at random;
 * airlock keeps them in the order written.)
 */
function resolveRefs(
  ctx: ConvertContext,
  kind: FileObjectKind,
  refs: ServiceFileRef[],
  path: string,
): { ref: ServiceFileRef; object: FileObjectName }[] {
  const names = kind === 'secret' ? ctx.secrets : ctx.configs;
  const declared = kind === 'secret' ? ctx.config.secrets : ctx.config.configs;
  const out: { ref: ServiceFileRef; object: FileObjectName }[] = [];
  const targets = new Set<string>();
  refs.forEach((ref, i) => {
    const target = ref.target || ref.source;
    if (targets.has(target)) {
      ctx.notices.error(`${path}.${kind}s[${i}]`, `duplicate ${kind} target "${target}": each ${kind} of a service needs its own target`);
      return;
    }
    targets.add(target);
    const object = names.get(ref.source);
    if (object) out.push({ ref, object });
    else if (declared[ref.source] === undefined) {
      ctx.notices.error(`${path}.${kind}s[${i}]`, `undefined ${kind} "${ref.source}": declare it under the top-level ${kind}s key`);
    }
    // Declared but not converted: its own error was already reported.
  });
  return sortedBy(out, (r) => r.object.dockerName);
}

/** SecretID is left empty: the deployer fills it once the secrets exist (see bindObjectIds). */
export function convertSecretRefs(ctx: ConvertContext, refs: ServiceFileRef[], path: string): SecretReference[] {
  return resolveRefs(ctx, 'secret', refs, path).map(({ ref, object }) => ({ File: fileTarget(ref), SecretID: '', SecretName: object.name }));
}

/** ConfigID is left empty: the deployer fills it once the configs exist (see bindObjectIds). */
export function convertConfigRefs(ctx: ConvertContext, refs: ServiceFileRef[], path: string): ConfigReference[] {
  return resolveRefs(ctx, 'config', refs, path).map(({ ref, object }) => ({ File: fileTarget(ref), ConfigID: '', ConfigName: object.name }));
}
