import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Ajv } from 'ajv';
import semver from 'semver';
import { YamlFile } from '../config/yaml-file.js';
import type { KeyPath } from '../config/key-path.js';
import { compiledOnce } from '../config/schema.js';
import { notAFile, unreadable } from '../config/paths.js';
import { configError, notFound } from '../errors/index.js';
import { unsafePathReason } from './manifest-checks.js';
import { ENGINE_VERSION_PATTERN, isoSeconds } from './manifest.js';
import { platformList, type Platform } from '../images/platform.js';

/** A bundle definition (`bundle.yaml`) with every path resolved against its folder. */
export interface BundleDefinition {
  file: string;
  name: string;
  version: string;
  description: string;
  expires: Expiry | null;
  stacks: { name: string; compose: SourceFile[]; envFiles: SensitiveFile[] }[];
  /** Explicit images; when null, every image the stacks reference. */
  images: { ref: string; archive: string | null }[] | null;
  imageArchives: string[];
  /** Take every image for each of these platforms (`platforms:`); null: one image per ref, as found. */
  platforms: Platform[] | null;
  files: { src: string; dest: string; mode: number; sensitive: boolean }[];
  /**
   * Site recipient files to seal to (`seal_to:`, or `--seal-to`, which
   * replaces it), resolved; [] seals nothing. docs/sealed-secrets.md.
   */
  sealTo: string[];
  /** The Docker Engine the bundle carries (`engine:`), beside or instead of stacks; null: none. */
  engine: EngineSource | null;
}

/**
 * `engine:` of a definition, paths resolved: Docker's static archive (a
 * `.tgz` holding `docker/…`, or a folder holding `docker/`), or a closed set
 * of `.deb` packages (a folder of them, or the files). engine-payload.ts reads it.
 */
export type EngineSource = { version: string; static: string } | { version: string; packages: string[] };

/** A file on the build machine and the name it carries inside the bundle. */
export interface SourceFile {
  path: string;
  name: string;
}

/** A stack env file; `sensitive` ones are sealed. */
export type SensitiveFile = SourceFile & { sensitive: boolean };

const stringList = { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] } as const;
/** `env_files`: paths, or `{path, sensitive}` for one to seal. */
const envFileList = {
  oneOf: [
    { type: 'string' },
    {
      type: 'array',
      items: {
        oneOf: [
          { type: 'string' },
          { type: 'object', additionalProperties: false, required: ['path'], properties: { path: { type: 'string' }, sensitive: { type: 'boolean' } } },
        ],
      },
    },
  ],
} as const;

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
          env_files: envFileList,
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
    seal_to: { oneOf: [{ type: 'string' }, { type: 'array', minItems: 1, items: { type: 'string' } }] },
    platforms: { type: 'array', minItems: 1, items: { type: 'string' } },
    engine: {
      type: 'object',
      additionalProperties: false,
      required: ['version'],
      properties: {
        version: { type: 'string', pattern: ENGINE_VERSION_PATTERN },
        static: { type: 'string', minLength: 1 },
        packages: { oneOf: [{ type: 'string', minLength: 1 }, { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } }] },
      },
    },
    files: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['src'],
        properties: { src: { type: 'string' }, dest: { type: 'string' }, mode: { type: 'integer', minimum: 0, maximum: 0o777 }, sensitive: { type: 'boolean' } },
      },
    },
  },
} as const;

// Compiled on first use: only `bundle build` reads definitions.
const validator = compiledOnce(() => new Ajv({ allErrors: false, strict: true }).compile(schema));

const asList = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

interface RawDefinition {
  name: string;
  version: string;
  description?: string;
  expires?: string | null;
  stacks?: { name: string; compose: string | string[]; env_files?: string | (string | { path: string; sensitive?: boolean })[] }[];
  images?: (string | { ref: string; archive?: string })[];
  image_archives?: string | string[];
  platforms?: string[];
  files?: { src: string; dest?: string; mode?: number; sensitive?: boolean }[];
  seal_to?: string | string[];
  engine?: { version: string; static?: string; packages?: string | string[] };
}

export interface DefinitionOptions {
  /** Recipient files from the command line (`--seal-to`): they replace the definition's `seal_to:`. */
  sealTo?: string[];
}

export async function loadDefinition(file: string, opts: DefinitionOptions = {}): Promise<BundleDefinition> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw notFound(`bundle definition not found: ${file}`, { subject: file });
    if (code === 'EISDIR') throw notAFile(file, 'bundle definition', `give the definition file itself: -f ${join(file, 'bundle.yaml')}`);
    if (code === 'EACCES') throw unreadable(file, 'bundle definition');
    throw e;
  }
  const yaml = YamlFile.parse(file, text);
  const raw = yaml.toJS();
  const validate = validator();
  if (!validate(raw)) throw yaml.schemaError(validate.errors![0]!, 'bad-definition');
  const r = raw as RawDefinition;
  if (!semver.valid(r.version)) {
    throw yaml.error(['version'], `"${r.version}" is not a semantic version (e.g. 1.4.2)`, 'bad-definition');
  }
  const expiry = r.expires == null ? null : parseExpiry(r.expires);
  if (typeof expiry === 'string') throw yaml.error(['expires'], expiry, 'bad-definition');
  const dir = dirname(resolve(file));
  const source = (p: string, key: KeyPath): SourceFile => {
    const why = unsafePathReason(p);
    if (why) throw yaml.error(key, `"${p}" ${why}; give a path relative to ${basename(file)}`, 'bad-definition');
    return { path: resolve(dir, p), name: p };
  };
  const sealTo = opts.sealTo ?? asList(r.seal_to).map((p) => resolve(dir, p));
  const envFile = (e: string | { path: string; sensitive?: boolean }) => (typeof e === 'string' ? { path: e, sensitive: false } : { path: e.path, sensitive: e.sensitive === true });
  const stacks = (r.stacks ?? []).map((s, i) => ({
    name: s.name,
    compose: asList(s.compose).map((p) => source(p, ['stacks', i, 'compose'])),
    envFiles: (typeof s.env_files === 'string' ? [s.env_files] : (s.env_files ?? [])).map((e, j) => {
      const { path, sensitive } = envFile(e);
      return { ...source(path, typeof e === 'string' ? ['stacks', i, 'env_files'] : ['stacks', i, 'env_files', j, 'path']), sensitive };
    }),
  }));
  if (sealTo.length === 0) {
    // A file marked sensitive must not travel in clear: with nowhere to seal it, the build stops.
    const marked: KeyPath | undefined =
      stacks.flatMap((s, i) => s.envFiles.flatMap((e, j) => (e.sensitive ? [['stacks', i, 'env_files', j, 'sensitive'] as KeyPath] : [])))[0] ??
      (r.files ?? []).flatMap((f, i) => (f.sensitive === true ? [['files', i, 'sensitive'] as KeyPath] : []))[0];
    if (marked) {
      throw yaml.error(marked, 'true, but the bundle is sealed to no site, and a sensitive file is never carried in clear: give seal_to: SITE.recipient in this file or bundle build --seal-to SITE.recipient', 'no-recipients');
    }
  }
  return {
    file,
    engine: r.engine ? engineSource(r.engine, dir, (key, why) => yaml.error(['engine', ...key], why, 'bad-definition')) : null,
    name: r.name,
    version: r.version,
    description: r.description ?? '',
    expires: expiry,
    stacks,
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
      return { src: resolve(dir, f.src), dest, mode: f.mode ?? 0o644, sensitive: f.sensitive === true };
    }),
    sealTo,
  };
}

/** `engine:` with exactly one form; `fail` names the key under `engine`. */
function engineSource(e: NonNullable<RawDefinition['engine']>, dir: string, fail: (key: KeyPath, why: string) => Error): EngineSource {
  if (e.static !== undefined && e.packages !== undefined) {
    throw fail(['packages'], 'is given beside static: an engine comes in one form, Docker\'s static archive (static:) or a set of .deb packages (packages:)');
  }
  if (e.static !== undefined) return { version: e.version, static: resolve(dir, e.static) };
  if (e.packages !== undefined) return { version: e.version, packages: asList(e.packages).map((p) => resolve(dir, p)) };
  throw fail([], 'names no engine: give static: (Docker\'s static archive docker-X.Y.Z.tgz, or a folder holding docker/) or packages: (a folder of .deb files, or a list of them)');
}

/** When a bundle stops being accepted: a time after its build, or a fixed instant. */
export type Expiry = { afterHours: number; text: string } | { at: Date; text: string };

/** The longest `expires` duration: past it, `never` says what is meant. */
export const MAX_EXPIRY_HOURS = 100 * 365 * 24;
const EXPIRY_FORMS = 'a duration from the build time (12h, 90d, 2w; at most 36500d), a date (2027-01-31) or time (2027-01-31T12:00:00Z, or with an offset such as +02:00), or never';
const DATE = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?(Z|[+-]\d{2}:\d{2}))?$/;

/**
 * `expires:` of a definition, read strictly: a duration that is not zero and
 * not absurd, or a date that is on the calendar (no 2027-02-30, which Date
 * would read as March 2). Returns why not, for the caller to name the line.
 */
export function parseExpiry(text: string): Expiry | null | string {
  if (text === 'never') return null;
  const d = /^(\d+)([hdw])$/.exec(text);
  if (d) {
    const hours = { h: 1, d: 24, w: 24 * 7 }[d[2] as 'h' | 'd' | 'w'] * Number(d[1]);
    if (hours === 0) return `"${text}" would make the bundle expire as it is built; give ${EXPIRY_FORMS}`;
    if (hours > MAX_EXPIRY_HOURS) return `"${text}" is more than 100 years; write never for a bundle that does not expire`;
    return { afterHours: hours, text };
  }
  const m = DATE.exec(text);
  if (!m) return `"${text}" is neither a duration nor a date: give ${EXPIRY_FORMS}`;
  const [, y = '', mo = '', day = '', h = '0', mi = '0', sec = '0', zone] = m;
  const onCalendar = new Date(0);
  onCalendar.setUTCFullYear(Number(y), Number(mo) - 1, Number(day));
  if (onCalendar.getUTCFullYear() !== Number(y) || onCalendar.getUTCMonth() !== Number(mo) - 1 || onCalendar.getUTCDate() !== Number(day)) {
    return `"${text}": there is no day ${day} in month ${mo} of ${y}`;
  }
  if (Number(h) > 23 || Number(mi) > 59 || Number(sec) > 59) return `"${text}": not a time of day`;
  const at = new Date(Date.parse(zone === undefined ? `${text}T00:00:00Z` : text));
  // A manifest writes years of four digits.
  if (at.getUTCFullYear() > 9999) return `"${text}" is after the year 9999; write never for a bundle that does not expire`;
  return { at, text };
}

/**
 * The instant a bundle built at `created` expires. One at or before its build
 * time is refused: every host would refuse the bundle as expired.
 */
export function expiryFrom(def: Pick<BundleDefinition, 'file' | 'expires'>, created: Date): Date | null {
  const e = def.expires;
  if (e === null) return null;
  const at = 'at' in e ? e.at : new Date(created.getTime() + e.afterHours * 3600_000);
  if (at.getTime() <= created.getTime()) {
    throw configError(`${def.file}: expires: ${e.text} is not after the build time ${isoSeconds(created)}: every host would refuse the bundle as expired`, {
      reason: 'bad-definition',
      subject: def.file,
      hint: 'give a later date, a duration from the build time such as 90d, or never',
    });
  }
  return at;
}
