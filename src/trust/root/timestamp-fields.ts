/**
 * What airlock adds to TUF's timestamp, in the `x-airlock` field of its signed part (TUF keeps
 * fields it does not know, and they are signed like the rest): when it was issued, and the newest
 * version of each bundle name. A vendor can sign a new one as often as it likes; a host that
 * holds it refuses any older release of those names, and sees a freeze by its age.
 */
import semver from 'semver';
import type { Metadata, Timestamp } from '@tufjs/models';
import { malformed } from './metadata-file.js';

export const TIMESTAMP_FIELD = 'x-airlock';

export interface AirlockTimestampFields {
  /** UTC, whole seconds. */
  issued: string;
  /** Bundle name → its current version. */
  bundles: Record<string, string>;
}

export function airlockTimestampFields(f: { source: string; meta: { md: Metadata<Timestamp> } }): AirlockTimestampFields {
  const raw = f.meta.md.signed.unrecognizedFields[TIMESTAMP_FIELD] as Partial<AirlockTimestampFields> | undefined;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw malformed(f.source, `the timestamp has no ${TIMESTAMP_FIELD} object {issued, bundles}`);
  if (typeof raw.issued !== 'string' || !Number.isFinite(Date.parse(raw.issued))) throw malformed(f.source, `${TIMESTAMP_FIELD}.issued is not a time`);
  const bundles = raw.bundles;
  if (bundles === null || typeof bundles !== 'object' || Array.isArray(bundles)) throw malformed(f.source, `${TIMESTAMP_FIELD}.bundles is not an object of name: version`);
  for (const [name, version] of Object.entries(bundles)) {
    if (typeof version !== 'string' || semver.valid(version) === null) throw malformed(f.source, `${TIMESTAMP_FIELD}.bundles.${name} is not a version`);
  }
  return { issued: raw.issued, bundles: bundles as Record<string, string> };
}
