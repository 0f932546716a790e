/**
 * The bundle manifest: its records (manifest-format.ts, re-exported here as
 * the format's one entry point), and parsing signed manifest and signature
 * bytes into them.
 */
import semver from 'semver';
import { integrityError, signatureError } from '../errors/index.js';
import { canonicalBytes, canonicalJson } from './canonical-json.js';
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

/**
 * One signature record of manifest.sig (section 4 of docs/bundle-format.md): Ed25519 as 64
 * bytes in padded base64, or an SSHSIG blob in base64; the key id as `airlock key id` prints it.
 */
function isSignatureRecord(v: unknown): v is SignatureRecord {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const r = v as Partial<SignatureRecord>;
  if (typeof r.keyId !== 'string' || !/^[0-9a-f]{16}$/.test(r.keyId) || typeof r.signature !== 'string') return false;
  if (Object.keys(r).some((k) => k !== 'algorithm' && k !== 'keyId' && k !== 'signature')) return false;
  if (r.algorithm === 'ed25519') return /^[A-Za-z0-9+/]{86}==$/.test(r.signature);
  return r.algorithm === 'sshsig' && r.signature.length <= 8192 && /^[A-Za-z0-9+/]+={0,2}$/.test(r.signature);
}

function malformedSignature(detail: string) {
  return signatureError(`${SIGNATURE_ENTRY} is malformed: ${detail}`, { reason: 'malformed-signature', subject: SIGNATURE_ENTRY });
}

/**
 * The signature records of manifest.sig: one record (as every bundle before threshold signing
 * carried), or `{"signatures":[record, ...]}` when several keys signed. Order carries no meaning.
 */
export function parseSignatures(bytes: Buffer): SignatureRecord[] {
  let v: unknown = null;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    // reported below with the other malformed cases
  }
  if (isSignatureRecord(v)) return [v];
  const list = v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 ? (v as { signatures?: unknown }).signatures : undefined;
  if (!Array.isArray(list)) throw malformedSignature('expected {algorithm: "ed25519" | "sshsig", keyId, signature}, or {signatures: [...]} of them');
  if (list.length === 0) throw malformedSignature('its list of signatures is empty');
  if (list.length > 32) throw malformedSignature(`it lists ${list.length} signatures; at most 32 are read`);
  const bad = list.findIndex((r) => !isSignatureRecord(r));
  if (bad >= 0) throw malformedSignature(`signature ${bad + 1} is not {algorithm: "ed25519" | "sshsig", keyId, signature}`);
  return list as SignatureRecord[];
}

/** The single Ed25519 record a parts index or a receipt carries. */
export function parseSignature(bytes: Buffer): SignatureRecord {
  const [first, ...rest] = parseSignatures(bytes);
  if (rest.length > 0 || first!.algorithm !== 'ed25519') throw malformedSignature('expected one {algorithm: "ed25519", keyId, signature}');
  return first!;
}

/** manifest.sig's bytes for these records: one record alone, as before, or the list. */
export function signatureEntryBytes(records: SignatureRecord[]): Buffer {
  return canonicalBytes(records.length === 1 ? records[0] : { signatures: records });
}
