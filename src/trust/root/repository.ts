/**
 * The vendor's TUF repository folder, as a host (or any TUF client, consistent_snapshot false)
 * takes it: N.root.json for every root version and root.json for the newest, targets.json,
 * snapshot.json, timestamp.json. Read newest; written next versions, each file whole or not at all.
 */
import { signersOf } from './accept.js';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Metadata, type Root, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import { writeWhole } from '../../store/durable.js';
import { readMetadataFile, malformed, ROOT_FILE, versionedRootFile, versionOfRootFileName, type MetadataFile, type MetadataKindName } from './metadata-file.js';

/** The TUF specification version written into every file. */
export const SPEC_VERSION = '1.0.31';

export { ROOT_FILE, versionedRootFile, versionOfRootFileName } from './metadata-file.js';

/** `expires` as TUF writes it: UTC, whole seconds. */
export const tufTime = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Metadata bytes as written: readers canonicalize `signed` themselves. */
export const metadataText = (md: Metadata<Root | Targets | Snapshot | Timestamp>): string => JSON.stringify(md.toJSON(), null, 2) + '\n';

type Typed<K extends MetadataKindName> = K extends 'root' ? Root : K extends 'targets' ? Targets : K extends 'snapshot' ? Snapshot : Timestamp;

export interface HeldMetadata<K extends MetadataKindName> {
  file: MetadataFile;
  md: Metadata<Typed<K>>;
}

/** Reads a file and insists on its kind. */
export function readKind<K extends MetadataKindName>(path: string, kind: K): HeldMetadata<K> {
  const file = readMetadataFile(path);
  if (file.meta.kind !== kind) throw malformed(path, `it is ${file.meta.kind} metadata, not ${kind}`);
  return { file, md: file.meta.md as Metadata<Typed<K>> };
}

export class VendorRepository {
  constructor(readonly dir: string) {}

  path(name: string): string {
    return join(this.dir, name);
  }

  /** The newest root: the highest N.root.json, else root.json; undefined for a new repository. */
  newestRoot(): HeldMetadata<'root'> | undefined {
    const versions = existsSync(this.dir) ? readdirSync(this.dir).flatMap((n) => versionOfRootFileName(n) ?? []) : [];
    if (versions.length > 0) return readKind(this.path(versionedRootFile(Math.max(...versions))), 'root');
    return this.read(ROOT_FILE, 'root');
  }

  /** Root version N, if the repository holds it. */
  rootVersion(version: number): HeldMetadata<'root'> | undefined {
    return this.read(versionedRootFile(version), 'root');
  }

  /** targets.json, snapshot.json, timestamp.json (or any name) if present. */
  read<K extends MetadataKindName>(name: string, kind: K): HeldMetadata<K> | undefined {
    const path = this.path(name);
    return existsSync(path) ? readKind(path, kind) : undefined;
  }

  /** Writes metadata under `names` (the same bytes in each), each by temp file, fsync and rename. */
  async write(md: Metadata<Root | Targets | Snapshot | Timestamp>, ...names: string[]): Promise<string[]> {
    await mkdir(this.dir, { recursive: true });
    const text = metadataText(md);
    const paths = names.map((n) => this.path(n));
    for (const p of paths) await writeWhole(p, text);
    return paths;
  }
}

export interface SignatureCount {
  /** Whose threshold: `root v2`. */
  by: string;
  role: string;
  have: number;
  need: number;
}

/** How many of `root`'s keys for `role` validly sign `md`, against the role's threshold. */
export function countSignatures(root: Metadata<Root>, role: string, md: Metadata<Root | Targets | Snapshot | Timestamp>): SignatureCount {
  return { by: `root v${root.signed.version}`, role, have: signersOf(root, role, md).valid.length, need: root.signed.roles[role]?.threshold ?? 1 };
}

export const countText = (c: SignatureCount): string => `${c.by} needs ${c.need} ${c.role} signature${c.need === 1 ? '' : 's'}: ${c.have} held${c.have >= c.need ? '' : ` (${c.need - c.have} short)`}`;
