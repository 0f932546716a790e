/**
 * The bundle manifest: its records (manifest-format.ts, re-exported here as
 * the format's one entry point), and parsing signed manifest and signature
 * bytes into them.
 */
import semver from 'semver';
import { integrityError, signatureError } from '../errors/index.js';
import { canonicalJson } from './canonical-json.js';
import { checkBlobList, checkDelta, checkEngine, checkFilePaths, checkFormat, checkImageVariants, checkReferences, checkSealed } from './manifest-checks.js';
import { isRealTimestamp, MANIFEST_ENTRY, SIGNATURE_ENTRY, type Manifest, type SignatureRecord } from './manifest-format.js';
import { manifestValidators } from './manifest-schema.js';

export * from './manifest-format.js';

/**
 * Parses signed manifest bytes and checks everything a reader relies on
 * before it touches a payload: canonical form, schema, blob order and the
 * references between sections.
 */
export function parseManifest(bytes: Buffer): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw integrityError(`${MANIFEST_ENTRY} is not valid JSON: ${(e as Error).message}`, { reason: 'manifest-malformed', subject: MANIFEST_ENTRY });
  }
  const format = checkFormat(value);
  const validateSchema = manifestValidators[format];
  if (!validateSchema(value)) {
    const err = validateSchema.errors?.[0];
    throw integrityError(`${MANIFEST_ENTRY} does not match format ${format}: ${err?.instancePath || '/'} ${err?.message ?? ''}`.trim(), {
      reason: 'manifest-invalid',
      subject: MANIFEST_ENTRY,
      hint: 'the bundle was made by an incompatible or broken builder',
    });
  }
  let canonical: string;
  try {
    canonical = canonicalJson(value);
  } catch (e) {
    // a number JSON allows but canonical form does not, e.g. a size of 1e300
    throw integrityError(`${MANIFEST_ENTRY} holds a number that is not a safe integer: ${(e as Error).message}`, { reason: 'manifest-invalid', subject: MANIFEST_ENTRY });
  }
  if (canonical !== bytes.toString('utf8')) {
    throw integrityError(`${MANIFEST_ENTRY} is not in canonical form`, { reason: 'manifest-not-canonical', subject: MANIFEST_ENTRY });
  }
  const manifest = value as unknown as Manifest;
  if (!semver.valid(manifest.version)) {
    throw integrityError(`${MANIFEST_ENTRY}: version "${manifest.version}" is not a semantic version`, { reason: 'manifest-invalid' });
  }
  for (const [field, ts] of [['created', manifest.created], ['expires', manifest.expires]] as const) {
    // The pattern admits 2024-13-45T25:61:61Z; an expiry that does not parse would never expire.
    if (ts !== null && !isRealTimestamp(ts)) {
      throw integrityError(`${MANIFEST_ENTRY}: ${field} "${ts}" is not a valid date`, { reason: 'manifest-invalid', subject: MANIFEST_ENTRY });
    }
  }
  checkBlobList(manifest);
  checkDelta(manifest);
  checkImageVariants(manifest);
  checkSealed(manifest);
  checkEngine(manifest);
  checkReferences(manifest);
  checkFilePaths(manifest);
  return manifest;
}

export function parseSignature(bytes: Buffer): SignatureRecord {
  let v: Partial<SignatureRecord> | null = null;
  try {
    v = JSON.parse(bytes.toString('utf8')) as Partial<SignatureRecord>;
  } catch {
    // reported below with the other malformed cases
  }
  const ok =
    v !== null &&
    typeof v === 'object' &&
    v.algorithm === 'ed25519' &&
    typeof v.keyId === 'string' &&
    /^[0-9a-f]{16}$/.test(v.keyId) &&
    typeof v.signature === 'string' &&
    /^[A-Za-z0-9+/]{86}==$/.test(v.signature);
  if (!ok) {
    throw signatureError(`${SIGNATURE_ENTRY} is malformed: expected {algorithm: "ed25519", keyId, signature}`, {
      reason: 'malformed-signature',
      subject: SIGNATURE_ENTRY,
    });
  }
  return v as SignatureRecord;
}
