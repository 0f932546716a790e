import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import semver from 'semver';
import { YamlFile, type KeyPath } from '../config/yaml-file.js';
import { configError, notFound } from '../errors/index.js';
import { unsafePathReason } from './manifest.js';
import { platformList, type Platform } from '../images/platform.js';

/** A bundle definition (`bundle.yaml`) with every path resolved against its folder. */
export interface BundleDefinition {
  file: string;
  name: string;
  version: string;
  description: string;
  expires: string | null;
  stacks: { name: string; compose: SourceFile[]; envFiles: SourceFile[] }[];
  /** Explicit images; when null, every image the stacks reference. */
  images: { ref: string; archive: string | null }[] | null;
  imageArchives: string[];
  /** Take every image for each of these platforms (`platforms:`); null: one image per ref, as found. */
  platforms: Platform[] | null;
  files: { src: string; dest: string; mode: number }[];
}

/** A file on the build machine and the name it carries inside the bundle. */
export interface SourceFile {
  path: string;
  name: string;
}

const stringList = { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] } as const;

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'version'],
  properties: {
    name: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' },
    version: { type: 'string' },
    description: { type: 'string' },
    expires: { type: ['string', 'null'] },
    stacks: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'compose'],
        properties: {
          name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' },
          compose: stringList,
          env_files: stringList,
        },
      },
    },
    images: {
      type: 'array',
      items: {
        oneOf: [
          { type: 'string' },
          {
            type: 'object',
            additionalProperties: false,
            required: ['ref'],
            properties: { ref: { type: 'string' }, archive: { type: 'string' } },
          },
        ],
      },
    },
    image_archives: stringList,
    platforms: { type: 'array', minItems: 1, items: { type: 'string' } },
    files: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['src'],
        properties: { src: { type: 'string' }, dest: { type: 'string' }, mode: { type: 'integer', minimum: 0, maximum: 0o777 } },
      },
    },
  },
} as const;

// Compiled on first use: only `bundle build` reads definitions.
let compiled: ValidateFunction | undefined;
const validate = (v: unknown): boolean => (compiled ??= new Ajv({ allErrors: false, strict: true }).compile(schema))(v);

const asList = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

interface RawDefinition {
  name: string;
  version: string;
  description?: string;
  expires?: string | null;
  stacks?: { name: string; compose: string | string[]; env_files?: string | string[] }[];
  images?: (string | { ref: string; archive?: string })[];
  image_archives?: string | string[];
  platforms?: string[];
  files?: { src: string; dest?: string; mode?: number }[];
}

export async function loadDefinition(file: string): Promise<BundleDefinition> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`bundle definition not found: ${file}`, { subject: file });
    throw e;
  }
  const yaml = YamlFile.parse(file, text);
  const raw = yaml.toJS();
  if (!validate(raw)) throw yaml.schemaError(compiled!.errors![0]!, 'bad-definition');
  const r = raw as RawDefinition;
  if (!semver.valid(r.version)) {
    throw yaml.error(['version'], `"${r.version}" is not a semantic version (e.g. 1.4.2)`, 'bad-definition');
  }
  const dir = dirname(resolve(file));
  const source = (p: string, key: KeyPath): SourceFile => {
    const why = unsafePathReason(p);
    if (why) throw yaml.error(key, `"${p}" ${why}; give a path relative to ${basename(file)}`, 'bad-definition');
    return { path: resolve(dir, p), name: p };
  };
  return {
    file,
    name: r.name,
    version: r.version,
    description: r.description ?? '',
    expires: r.expires ?? null,
    stacks: (r.stacks ?? []).map((s, i) => ({
      name: s.name,
      compose: asList(s.compose).map((p) => source(p, ['stacks', i, 'compose'])),
      envFiles: asList(s.env_files).map((p) => source(p, ['stacks', i, 'env_files'])),
    })),
    images: r.images ? r.images.map((i) => (typeof i === 'string' ? { ref: i, archive: null } : { ref: i.ref, archive: i.archive ? resolve(dir, i.archive) : null })) : null,
    imageArchives: asList(r.image_archives).map((p) => resolve(dir, p)),
    platforms: r.platforms
      ? platformList(r.platforms, (i, why) => {
          throw yaml.error(['platforms', i], why, 'bad-definition');
        })
      : null,
    files: (r.files ?? []).map((f, i) => {
      const dest = f.dest ?? basename(f.src);
      const why = unsafePathReason(dest);
      if (why) throw yaml.error(['files', i, 'dest'], `"${dest}" ${why}`, 'bad-definition');
      return { src: resolve(dir, f.src), dest, mode: f.mode ?? 0o644 };
    }),
  };
}

/** Resolves `expires` (a duration such as `90d`, or a date) against the build time. */
export function expiryFrom(expires: string | null, created: Date): Date | null {
  if (expires === null || expires === 'never') return null;
  const m = /^(\d+)([hdw])$/.exec(expires);
  if (m) {
    const hours = { h: 1, d: 24, w: 24 * 7 }[m[2] as 'h' | 'd' | 'w'] * Number(m[1]);
    return new Date(created.getTime() + hours * 3600_000);
  }
  const t = Date.parse(expires);
  if (Number.isNaN(t)) throw configError(`expires: "${expires}" is neither a duration (90d, 12h, 2w) nor a date (2027-01-31)`, { reason: 'bad-definition' });
  return new Date(t);
}
