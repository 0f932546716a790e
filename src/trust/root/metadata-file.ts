/**
 * One TUF metadata file (root, targets, snapshot or timestamp), read with the TUF project's own
 * models (@tufjs/models): the formats and signature checks standard TUF tooling writes and reads.
 * Anything that does not parse as one is refused by name, before any of it is trusted.
 */
import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { Metadata, MetadataKind, type Root, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import { trustError } from '../../errors/index.js';

/** The newest root, as TUF names it; every root also as N.root.json. */
export const ROOT_FILE = 'root.json';
export const versionedRootFile = (version: number): string => `${version}.root.json`;

/** The version N of a file named N.root.json, else undefined. */
export function versionOfRootFileName(name: string): number | undefined {
  const m = /^([1-9][0-9]*)\.root\.json$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Larger than any metadata a vendor writes (TUF clients cap root at 512 KB too). */
const MAX_METADATA_BYTES = 1024 * 1024;

export type AnyMetadata =
  | { kind: 'root'; md: Metadata<Root> }
  | { kind: 'targets'; md: Metadata<Targets> }
  | { kind: 'snapshot'; md: Metadata<Snapshot> }
  | { kind: 'timestamp'; md: Metadata<Timestamp> };

export type MetadataKindName = AnyMetadata['kind'];

export interface MetadataFile<M extends AnyMetadata = AnyMetadata> {
  /** Where it came from, for messages. */
  source: string;
  bytes: Buffer;
  meta: M;
}

const KINDS: Record<string, MetadataKind> = { root: MetadataKind.Root, targets: MetadataKind.Targets, snapshot: MetadataKind.Snapshot, timestamp: MetadataKind.Timestamp };

export function malformed(source: string, detail: string) {
  return trustError(`${basename(source)} is not TUF metadata airlock can read: ${detail}`, {
    reason: 'metadata-malformed',
    subject: source,
    hint: 'write trust metadata with airlock trust (or a TUF tool): root.json, targets.json, snapshot.json, timestamp.json',
  });
}

/** Parses metadata bytes; the kind comes from `signed._type`. */
export function parseMetadata(bytes: Buffer, source: string): MetadataFile {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw malformed(source, `not JSON (${(e as Error).message})`);
  }
  const type = (json as { signed?: { _type?: unknown } } | null)?.signed?._type;
  const kind = typeof type === 'string' ? KINDS[type] : undefined;
  if (kind === undefined) throw malformed(source, `signed._type is ${JSON.stringify(type)}, not root, targets, snapshot or timestamp`);
  try {
    // The overloads of fromJSON are per kind; one call serves all four.
    const md = (Metadata.fromJSON as (k: MetadataKind, d: object) => Metadata<Root | Targets | Snapshot | Timestamp>)(kind, json as object);
    if (md.signed.version < 1 || !Number.isSafeInteger(md.signed.version)) throw new Error(`version ${md.signed.version} is not a positive integer`);
    if (!Number.isFinite(Date.parse(md.signed.expires))) throw new Error(`expires ${JSON.stringify(md.signed.expires)} is not a time`);
    return { source, bytes, meta: { kind: type as MetadataKindName, md } as AnyMetadata };
  } catch (e) {
    throw malformed(source, (e as Error).message);
  }
}

export function readMetadataFile(path: string): MetadataFile {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw trustError(`trust metadata not found: ${path}`, { reason: 'metadata-malformed', subject: path });
  }
  if (size > MAX_METADATA_BYTES) throw malformed(path, `${size} bytes; at most ${MAX_METADATA_BYTES} are read`);
  return parseMetadata(readFileSync(path), path);
}

/** `targets v4`, for messages. */
export const labelOf = (f: { meta: AnyMetadata }): string => `${f.meta.kind} v${f.meta.md.signed.version}`;
