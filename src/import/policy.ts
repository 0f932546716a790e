import semver from 'semver';
import { policyError } from '../errors/index.js';
import type { VerifiedHead } from '../bundle/reader.js';
import type { BundleRecords } from '../journal/bundles.js';

/**
 * Anti-downgrade: a host never takes an older version of a bundle name than
 * one it already has, unless the operator says so explicitly. The same
 * version with different content is refused too: one of the two is not what
 * the vendor released under that number.
 */
export function checkVersionPolicy(head: VerifiedHead, bundles: BundleRecords, allowDowngrade: boolean): void {
  const m = head.manifest;
  if (bundles.byDigest(head.manifestDigest)) return;
  // semver.eq: build metadata (1.0.0+b2) does not make a new version.
  const same = bundles.byName(m.name).find((b) => semver.eq(b.version, m.version));
  if (same) {
    throw policyError(`${m.name} ${m.version} was already imported with different content (manifest ${same.manifest_digest})`, {
      reason: 'version-conflict',
      subject: `${m.name} ${m.version}`,
      hint: 'the vendor must release changed content under a new version',
    });
  }
  const highest = bundles.highest(m.name);
  if (highest && semver.lt(m.version, highest.version) && !allowDowngrade) {
    throw policyError(`${m.name} ${m.version} is older than ${highest.version}, which this host already has`, {
      reason: 'downgrade',
      subject: `${m.name} ${m.version}`,
      hint: "use 'airlock rollback' to go back, or --allow-downgrade if you really mean to import an older release",
    });
  }
}
