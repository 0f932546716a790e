import semver from 'semver';
import type { Manifest } from '../bundle/manifest.js';
import type { VerifiedHead } from '../bundle/reader.js';
import type { Journal } from './journal.js';

export interface BundleRow {
  id: number;
  name: string;
  version: string;
  manifest_digest: string;
  key_id: string;
  created: string;
  expires: string | null;
  imported_at: string;
}

const COLUMNS = 'id, name, version, manifest_digest, key_id, created, expires, imported_at';

/** The bundles a host has imported, and the blobs each one uses. */
export class BundleRecords {
  constructor(private readonly journal: Journal) {}

  /**
   * What a receipt lists, in one read transaction: the bundles not pruned (a
   * pruned bundle keeps its row but loses its blob links; one with no blobs
   * is held all the same), and every blob some bundle brought, by digest.
   * Secret and config data in the store are no bundle's blobs.
   */
  held(): { bundles: { name: string; version: string; manifestDigest: string }[]; blobs: { digest: string; size: number }[] } {
    const db = this.journal.db;
    return db.transaction(() => ({
      bundles: db
        .prepare<[], { name: string; version: string; manifestDigest: string }>(
          `SELECT name, version, manifest_digest AS manifestDigest FROM bundles b
           WHERE EXISTS (SELECT 1 FROM bundle_blobs l WHERE l.bundle_id = b.id) OR json_array_length(json_extract(CAST(b.manifest AS TEXT), '$.blobs')) = 0`,
        )
        .all(),
      blobs: db.prepare<[], { digest: string; size: number }>(`SELECT digest, size FROM blobs WHERE digest IN (SELECT digest FROM bundle_blobs) ORDER BY digest`).all(),
    }))();
  }

  byDigest(manifestDigest: string): BundleRow | undefined {
    return this.journal.db.prepare<[string], BundleRow>(`SELECT ${COLUMNS} FROM bundles WHERE manifest_digest = ?`).get(manifestDigest);
  }

  byName(name: string): BundleRow[] {
    const rows = this.journal.db.prepare<[string], BundleRow>(`SELECT ${COLUMNS} FROM bundles WHERE name = ?`).all(name);
    return rows.sort((a, b) => semver.rcompare(a.version, b.version));
  }

  all(): BundleRow[] {
    return this.journal.db.prepare<[], BundleRow>(`SELECT ${COLUMNS} FROM bundles ORDER BY id`).all();
  }

  /** The signed manifest of an imported bundle, as it was verified. */
  manifest(id: number): Manifest {
    const row = this.journal.db.prepare<[number], { manifest: Buffer }>('SELECT manifest FROM bundles WHERE id = ?').get(id);
    if (!row) throw new Error(`no bundle ${id} in the journal`);
    return JSON.parse(row.manifest.toString('utf8')) as Manifest;
  }

  /** The manifest and signature bytes as imported, to check the signature again. */
  signedHead(id: number): { manifestBytes: Buffer; signatureBytes: Buffer } {
    const row = this.journal.db.prepare<[number], { manifest: Buffer; signature: Buffer }>('SELECT manifest, signature FROM bundles WHERE id = ?').get(id);
    if (!row) throw new Error(`no bundle ${id} in the journal`);
    return { manifestBytes: row.manifest, signatureBytes: row.signature };
  }

  /** The highest version imported under `name`, if any. */
  highest(name: string): BundleRow | undefined {
    return this.byName(name)[0];
  }

  /** Records an import and its blobs in one transaction; returns the bundle id. */
  recordImport(head: VerifiedHead, at: Date): number {
    const db = this.journal.db;
    const now = at.toISOString();
    return db.transaction(() => {
      const m = head.manifest;
      const existing = this.byDigest(head.manifestDigest);
      if (existing) {
        // Imported again (after a prune, say): its blobs are in the store once more.
        this.linkBlobs(existing.id, m.blobs, now);
        return existing.id;
      }
      const r = db
        .prepare(
          `INSERT INTO bundles (name, version, manifest_digest, key_id, created, expires, imported_at, manifest, signature)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(m.name, m.version, head.manifestDigest, head.keyId, m.created, m.expires, now, head.manifestBytes, head.signatureBytes);
      const id = Number(r.lastInsertRowid);
      this.linkBlobs(id, m.blobs, now);
      return id;
    }).immediate();
  }

  /** Records `blobs` in the store and links them to bundle `id`; the caller holds the write transaction. */
  linkBlobs(id: number, blobs: readonly { digest: string; size: number; kind: string }[], now: string): void {
    const addBlob = this.journal.db.prepare<[string, number, string, string]>(`INSERT OR IGNORE INTO blobs (digest, size, kind, stored_at) VALUES (?, ?, ?, ?)`);
    const link = this.journal.db.prepare<[number, string]>(`INSERT OR IGNORE INTO bundle_blobs (bundle_id, digest) VALUES (?, ?)`);
    for (const b of blobs) {
      addBlob.run(b.digest, b.size, b.kind, now);
      link.run(id, b.digest);
    }
  }
}
