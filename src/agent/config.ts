/**
 * agent.yaml: validated against a schema, then each cron expression and
 * duration checked, every error naming the file, line and key.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_DATA_ROOT } from '../engine/host-paths.js';
import { Ajv } from 'ajv';
import cron from 'node-cron';
import { DEFAULT_CERT_WARN_MS } from '../cluster/certificates.js';
import { DEFAULT_FRESHNESS_WARN_MS } from '../trust/root/freshness.js';
import { parseDuration } from '../units/duration.js';
import { ramInBytes } from '../compose/load/units.js';
import { checkKeep, DEFAULT_KEEP } from '../retention/index.js';
import { DEFAULT_STATE_DIR, inboxPathIn } from '../store/state-dir.js';
import { DEFAULT_TRUST_DIR } from '../trust/trust-store.js';
import { configError, notFound } from '../errors/index.js';
import { YamlFile } from '../config/yaml-file.js';
import type { KeyPath } from '../config/key-path.js';
import { compiledOnce } from '../config/schema.js';
import { checkFtpSettings, defaultFtpSourceName, DEFAULT_MIN_RATE, DEFAULT_RECHECK_MS, FtpSettingError, type FtpSourceConfig } from './inbox/ftp-settings.js';
import { isInboxName } from './inbox/part-sets.js';
import type { LogLevel } from './log.js';
import type { Completeness } from './inbox/inbox-file.js';

export { DEFAULT_CONFIG_FILE } from './config-file.js';
/** Where systemd's LoadCredential= puts the join token for an unprivileged service. */
export const TOKEN_CREDENTIAL = 'swarm-join-token';


export interface FolderSource {
  type: 'folder';
  name: string;
  path: string;
  complete: Completeness;
}

export interface FtpSourceSettings {
  type: 'ftp';
  name: string;
  url: string;
  user?: string;
  passwordFile?: string;
  tls?: { caFile?: string; rejectUnauthorized?: boolean };
  complete: Completeness;
  deleteAfter: boolean;
  timeoutMs: number;
  /** Bytes per second a transfer must average, or it is stopped (and resumed at the next poll). */
  minRate: number;
  /** How often a settled file listed without a modify time is fetched again into a hash, to see whether its content changed. */
  recheckMs: number;
  /** Its own poll schedule; the inbox poll when absent. */
  poll: string;
}

export type SwarmSettings =
  | { mode: 'none' }
  | { mode: 'init'; advertiseAddr: string; listenAddr: string }
  | { mode: 'join'; role: 'manager' | 'worker'; advertiseAddr?: string; listenAddr: string; managers: string[]; tokenFile: string };

export interface AgentConfig {
  file: string;
  stateDir: string;
  trustDir: string;
  logLevel: LogLevel;
  inbox: {
    dir: string;
    poll: string;
    watch: boolean;
    giveUpAfterMs: number;
    keepDone: number;
    sources: (FolderSource | FtpSourceSettings)[];
  };
  apply: {
    mode: 'on-arrival' | 'import-only';
    timeoutMs: number;
    window: { cron: string; durationMs: number } | null;
  };
  swarm: SwarmSettings;
  retention: { schedule: string | null; keep: number };
  drift: { schedule: string | null; reapply: boolean };
  /** The swarm certificates' check: when it runs (also once at start; null: never) and how close to their end they are warned of. */
  certificates: { schedule: string | null; warnMs: number };
  /** With a root of trust: when the newest timestamp's age is checked (also once at start; null: never) and from what age it is warned of (a freeze). */
  trust: { schedule: string | null; warnAgeMs: number };
  /** Sealed secrets: identity files or folders beside the systemd credentials, and whether a secret may arrive in clear. */
  secrets: { identities: string[]; requireSealed: boolean };
  /** The Docker Engine airlock installs from engine bundles: its data root and the site's own daemon.json keys (docs/engine-install.md). */
  engine: { dataRoot: string; daemon: Record<string, unknown> };
}

const str = { type: 'string', minLength: 1 } as const;
const cronOrOff = { type: 'string', minLength: 1, nullable: true } as const;
const completeSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { mode: { enum: ['stable', 'marker'] }, stableFor: str, markerSuffix: str },
} as const;

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    stateDir: str,
    trustDir: str,
    logLevel: { enum: ['debug', 'info', 'warn', 'error'] },
    inbox: {
      type: 'object',
      additionalProperties: false,
      properties: {
        dir: str,
        poll: str,
        watch: { type: 'boolean' },
        complete: completeSchema,
        giveUpAfter: str,
        keepDone: { type: 'integer', minimum: 0 },
        sources: {
          type: 'array',
          items: {
            type: 'object',
            required: ['type'],
            properties: { type: { enum: ['folder', 'ftp'] } },
            if: { properties: { type: { const: 'folder' } } },
            then: {
              additionalProperties: false,
              required: ['path'],
              properties: { type: true, name: str, path: str, complete: completeSchema },
            },
            else: {
              additionalProperties: false,
              required: ['url'],
              properties: {
                type: true,
                name: str,
                url: { type: 'string', pattern: '^ftps?://' },
                user: str,
                passwordFile: str,
                tls: { type: 'object', additionalProperties: false, properties: { caFile: str, rejectUnauthorized: { type: 'boolean' } } },
                complete: completeSchema,
                deleteAfter: { type: 'boolean' },
                timeout: str,
                minRate: { anyOf: [str, { type: 'integer', minimum: 1 }] },
                recheck: str,
                poll: str,
              },
            },
          },
        },
      },
    },
    apply: {
      type: 'object',
      additionalProperties: false,
      properties: {
        mode: { enum: ['on-arrival', 'import-only'] },
        timeout: str,
        window: { type: 'object', nullable: true, additionalProperties: false, required: ['cron', 'duration'], properties: { cron: str, duration: str } },
      },
    },
    swarm: {
      type: 'object',
      additionalProperties: false,
      properties: {
        mode: { enum: ['none', 'init', 'join'] },
        role: { enum: ['manager', 'worker'] },
        advertiseAddr: str,
        listenAddr: str,
        managers: { type: 'array', minItems: 1, items: str },
        tokenFile: str,
      },
    },
    retention: { type: 'object', additionalProperties: false, properties: { schedule: cronOrOff, keep: { type: 'integer' } } },
    drift: { type: 'object', additionalProperties: false, properties: { schedule: cronOrOff, reapply: { type: 'boolean' } } },
    certificates: { type: 'object', additionalProperties: false, properties: { schedule: cronOrOff, warn: str } },
    trust: { type: 'object', additionalProperties: false, properties: { schedule: cronOrOff, warnAge: str } },
    secrets: { type: 'object', additionalProperties: false, properties: { identities: { type: 'array', items: str }, requireSealed: { type: 'boolean' } } },
    engine: { type: 'object', additionalProperties: false, properties: { dataRoot: str, daemon: { type: 'object' } } },
  },
} as const;

const validator = compiledOnce(() => new Ajv({ allErrors: false, strict: true, strictRequired: false }).compile(schema));

/* The raw YAML shape, after the schema passed. */
interface RawComplete { mode?: 'stable' | 'marker'; stableFor?: string; markerSuffix?: string }
interface RawSource { type: 'folder' | 'ftp'; name?: string; path?: string; url?: string; user?: string; passwordFile?: string; tls?: { caFile?: string; rejectUnauthorized?: boolean }; complete?: RawComplete; deleteAfter?: boolean; timeout?: string; minRate?: string | number; recheck?: string; poll?: string }
interface Raw {
  stateDir?: string;
  trustDir?: string;
  logLevel?: LogLevel;
  inbox?: { dir?: string; poll?: string; watch?: boolean; complete?: RawComplete; giveUpAfter?: string; keepDone?: number; sources?: RawSource[] };
  apply?: { mode?: 'on-arrival' | 'import-only'; timeout?: string; window?: { cron: string; duration: string } | null };
  swarm?: { mode?: 'none' | 'init' | 'join'; role?: 'manager' | 'worker'; advertiseAddr?: string; listenAddr?: string; managers?: string[]; tokenFile?: string };
  retention?: { schedule?: string | null; keep?: number };
  drift?: { schedule?: string | null; reapply?: boolean };
  certificates?: { schedule?: string | null; warn?: string };
  trust?: { schedule?: string | null; warnAge?: string };
  secrets?: { identities?: string[]; requireSealed?: boolean };
  engine?: { dataRoot?: string; daemon?: Record<string, unknown> };
}

export async function loadAgentConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw notFound(`agent config not found: ${file}`, { subject: file, reason: 'no-config', hint: 'write one (the package ships /etc/airlock/agent.yaml), or pass --config FILE' });
    }
    throw configError(`cannot read agent config ${file}: ${(e as Error).message}`, { subject: file, reason: 'no-config' });
  }
  return parseAgentConfig(file, text, env);
}

export function parseAgentConfig(file: string, text: string, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const yaml = YamlFile.parse(file, text);
  const raw = yaml.toJS();
  const validate = validator();
  if (!validate(raw)) throw yaml.schemaError(validate.errors![0]!);
  const r = raw as Raw;
  const read = valueReaders(yaml);
  const { cronAt, ms, complete } = read;

  const stateDir = r.stateDir ?? DEFAULT_STATE_DIR;
  const inbox = r.inbox ?? {};
  const poll = cronAt(['inbox', 'poll'], inbox.poll ?? '*/30 * * * * *');
  const defaultComplete = complete(['inbox', 'complete'], inbox.complete, { mode: 'stable', stableForMs: 10_000 });
  const sources = inboxSources(yaml, read, inbox.sources ?? [], poll, defaultComplete);

  const apply = r.apply ?? {};
  const window = apply.window
    ? { cron: cronAt(['apply', 'window', 'cron'], apply.window.cron), durationMs: ms(['apply', 'window', 'duration'], apply.window.duration, 1000) }
    : null;

  const retention = r.retention ?? {};
  const keep = retention.keep ?? DEFAULT_KEEP;
  try {
    checkKeep(keep);
  } catch (e) {
    throw yaml.error(['retention', 'keep'], (e as Error).message);
  }
  const drift = r.drift ?? {};
  const certificates = r.certificates ?? {};

  return {
    file,
    stateDir,
    trustDir: r.trustDir ?? DEFAULT_TRUST_DIR,
    logLevel: r.logLevel ?? 'info',
    inbox: {
      dir: inbox.dir ?? inboxPathIn(stateDir),
      poll,
      watch: inbox.watch ?? true,
      giveUpAfterMs: inbox.giveUpAfter ? ms(['inbox', 'giveUpAfter'], inbox.giveUpAfter, 1000) : 24 * 3600_000,
      keepDone: inbox.keepDone ?? 10,
      sources: [{ type: 'folder', name: 'inbox', path: inbox.dir ?? inboxPathIn(stateDir), complete: defaultComplete }, ...sources],
    },
    apply: { mode: apply.mode ?? 'on-arrival', timeoutMs: apply.timeout ? ms(['apply', 'timeout'], apply.timeout, 1000) : 300_000, window },
    swarm: swarmSettings(yaml, r.swarm ?? {}, env),
    retention: { schedule: retention.schedule === null ? null : cronAt(['retention', 'schedule'], retention.schedule ?? '0 3 * * *'), keep },
    drift: { schedule: drift.schedule === null ? null : cronAt(['drift', 'schedule'], drift.schedule ?? '*/15 * * * *'), reapply: drift.reapply ?? false },
    certificates: {
      schedule: certificates.schedule === null ? null : cronAt(['certificates', 'schedule'], certificates.schedule ?? '0 9 * * *'),
      warnMs: certificates.warn ? ms(['certificates', 'warn'], certificates.warn, 1) : DEFAULT_CERT_WARN_MS,
    },
    trust: {
      schedule: r.trust?.schedule === null ? null : cronAt(['trust', 'schedule'], r.trust?.schedule ?? '0 9 * * *'),
      warnAgeMs: r.trust?.warnAge ? ms(['trust', 'warnAge'], r.trust.warnAge, 1) : DEFAULT_FRESHNESS_WARN_MS,
    },
    // Off when absent: configs written before sealed secrets keep taking the bundles they took (docs/sealed-secrets.md).
    secrets: { identities: r.secrets?.identities ?? [], requireSealed: r.secrets?.requireSealed ?? false },
    engine: { dataRoot: r.engine?.dataRoot ?? DEFAULT_DATA_ROOT, daemon: r.engine?.daemon ?? {} },
  };
}

/** The checks of agent.yaml's values (cron expressions, durations, rates, completeness), each error naming its key. */
function valueReaders(yaml: YamlFile) {
  const cronAt = (path: KeyPath, expr: string): string => {
    if (!cron.validate(expr)) throw yaml.error(path, `"${expr}" is not a cron expression (5 fields, or 6 with seconds first)`);
    return expr;
  };
  const ms = (path: KeyPath, text: string, min = 0): number => {
    let ns: number;
    try {
      ns = parseDuration(text);
    } catch {
      throw yaml.error(path, `"${text}" is not a duration (e.g. 30s, 5m, 2h)`);
    }
    if (ns / 1e6 < min) throw yaml.error(path, `"${text}" is too short (at least ${min} ms)`);
    return ns / 1e6;
  };
  const rate = (path: KeyPath, value: string | number): number => {
    const n = typeof value === 'number' ? value : ramInBytes(value);
    if (n === undefined || !Number.isSafeInteger(n) || n < 1) throw yaml.error(path, `"${value}" is not a rate in bytes per second (e.g. 64K, 1M, 500000)`);
    return n;
  };
  const complete = (path: KeyPath, c: RawComplete | undefined, fallback: Completeness): Completeness => {
    if (!c) return fallback;
    const mode = c.mode ?? fallback.mode;
    if (mode === 'marker') return { mode, suffix: c.markerSuffix ?? '.ready' };
    return { mode, stableForMs: c.stableFor ? ms([...path, 'stableFor'], c.stableFor, 1) : 10_000 };
  };
  return { cronAt, ms, rate, complete };
}
type ValueReaders = ReturnType<typeof valueReaders>;

/** inbox.sources: each named once; an FTP source's settings checked as FtpSource will check them. */
function inboxSources(yaml: YamlFile, read: ValueReaders, raw: RawSource[], poll: string, defaultComplete: Completeness): (FolderSource | FtpSourceSettings)[] {
  const names = new Set<string>();
  return raw.map((s, i): FolderSource | FtpSourceSettings => {
    const at: KeyPath = ['inbox', 'sources', i];
    const name = s.name ?? (s.type === 'folder' ? s.path! : defaultFtpSourceName(s.url!));
    if (names.has(name)) throw yaml.error([...at, 'name'], `two sources are named "${name}"; give each its own name`);
    names.add(name);
    const c = read.complete([...at, 'complete'], s.complete, defaultComplete);
    if (s.type === 'folder') return { type: 'folder', name, path: s.path!, complete: c };
    return ftpSource(yaml, read, s, at, { name, complete: c, poll });
  });
}

function ftpSource(yaml: YamlFile, read: ValueReaders, s: RawSource, at: KeyPath, given: { name: string; complete: Completeness; poll: string }): FtpSourceSettings {
  const { cronAt, ms, rate } = read;
  const ftp: FtpSourceSettings = {
    type: 'ftp',
    name: given.name,
    url: s.url!,
    ...(s.user ? { user: s.user } : {}),
    ...(s.passwordFile ? { passwordFile: s.passwordFile } : {}),
    ...(s.tls ? { tls: s.tls } : {}),
    complete: given.complete,
    deleteAfter: s.deleteAfter ?? false,
    timeoutMs: s.timeout ? ms([...at, 'timeout'], s.timeout, 1000) : 30_000,
    minRate: s.minRate === undefined ? DEFAULT_MIN_RATE : rate([...at, 'minRate'], s.minRate),
    recheckMs: s.recheck ? ms([...at, 'recheck'], s.recheck, 1000) : DEFAULT_RECHECK_MS,
    poll: s.poll ? cronAt([...at, 'poll'], s.poll) : given.poll,
  };
  // The checks FtpSource makes when the agent starts, made here so --check-config makes them too.
  try {
    checkFtpSettings(ftpSourceConfig(ftp));
  } catch (e) {
    if (!(e instanceof FtpSettingError)) throw e;
    const key = e.key === 'complete.suffix' ? (s.complete ? [...at, 'complete', 'markerSuffix'] : ['inbox', 'complete', 'markerSuffix']) : [...at, ...(FTP_KEYS[e.key] ?? [])];
    throw yaml.error(key, e.hint ? `${e.message} (${e.hint})` : e.message);
  }
  return ftp;
}

/** FtpSourceConfig keys as agent.yaml spells them, relative to the source. */
const FTP_KEYS: Record<string, KeyPath> = {
  name: ['name'],
  url: ['url'],
  user: ['user'],
  passwordFile: ['passwordFile'],
  tls: ['tls'],
  'tls.caFile': ['tls', 'caFile'],
  'tls.rejectUnauthorized': ['tls', 'rejectUnauthorized'],
  timeoutMs: ['timeout'],
  minRate: ['minRate'],
  recheckMs: ['recheck'],
};

/** What FtpSource is given for a source of agent.yaml: inbox names only; in stable mode, the same listing twice. */
export function ftpSourceConfig(s: FtpSourceSettings): FtpSourceConfig {
  const complete = s.complete.mode === 'marker' ? s.complete : { mode: 'stable' as const, polls: 2 };
  return { ...s, match: isInboxName, complete };
}

function swarmSettings(yaml: YamlFile, s: NonNullable<Raw['swarm']>, env: NodeJS.ProcessEnv): SwarmSettings {
  const mode = s.mode ?? 'none';
  const listenAddr = s.listenAddr ?? '0.0.0.0:2377';
  if (mode === 'none') return { mode };
  if (mode === 'init') {
    if (!s.advertiseAddr) throw yaml.error(['swarm', 'advertiseAddr'], 'is required with mode: init (the address other nodes reach this manager on)');
    return { mode, advertiseAddr: s.advertiseAddr, listenAddr };
  }
  if (!s.managers) throw yaml.error(['swarm', 'managers'], 'is required with mode: join (addresses of managers, host:2377)');
  const credentials = env.CREDENTIALS_DIRECTORY;
  const tokenFile = s.tokenFile ?? (credentials ? join(credentials, TOKEN_CREDENTIAL) : '/etc/airlock/swarm-join-token');
  return { mode, role: s.role ?? 'worker', ...(s.advertiseAddr ? { advertiseAddr: s.advertiseAddr } : {}), listenAddr, managers: s.managers, tokenFile };
}
