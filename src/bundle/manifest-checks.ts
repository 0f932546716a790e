/**
 * What a manifest must be beyond its schema: a format and requirements this
 * reader knows, blobs sorted and encoded in one spelling, a delta's base,
 * image variants a host can tell apart, sealed files and an engine in one spelling,
 * references to listed blobs of the right size, and paths that stay inside
 * their folder.
 */
import semver from 'semver';
import { integrityError, unsafeEntry } from '../errors/index.js';
import { isCanonicalPlatform } from '../images/platform.js';
import { carriedBlobs, FORMAT_V1, FORMAT_V2, FORMATS, isCarried, isReceiptBase, isRealTimestamp, MANIFEST_ENTRY, REQUIREMENTS, sealedFiles, type Format, type Manifest } from './manifest-format.js';

/**
 * The format the manifest claims, if this reader knows it and every
 * requirement it names; a manifest without a string format is checked
 * against v1, whose schema then says what is wrong.
 */
export function checkFormat(value: unknown): Format {
  const v = (value !== null && typeof value === 'object' ? value : {}) as { format?: unknown; requires?: unknown };
  if (typeof v.format !== 'string') return FORMAT_V1;
  if (!(FORMATS as readonly string[]).includes(v.format)) {
    throw integrityError(`${MANIFEST_ENTRY} is in format "${v.format}", which this airlock does not read (it reads ${FORMATS.join(' and ')})`, {
      reason: 'manifest-invalid',
      subject: MANIFEST_ENTRY,
      hint: 'a newer airlock made this bundle: upgrade airlock here, or ask the vendor for a bundle in a format this one reads',
    });
  }
  if (v.format === FORMAT_V2 && Array.isArray(v.requires)) {
    // Names only: anything else is left to the schema, which says what is wrong with it.
    const unknown = v.requires.filter((r): r is string => typeof r === 'string' && r.length <= 64 && !(REQUIREMENTS as readonly string[]).includes(r));
    if (unknown.length > 0) {
      throw integrityError(`${MANIFEST_ENTRY} requires ${unknown.map((r) => JSON.stringify(r)).join(', ')}, which this airlock does not support (it supports ${REQUIREMENTS.join(', ')})`, {
        reason: 'manifest-invalid',
        subject: MANIFEST_ENTRY,
        hint: 'a newer airlock made this bundle: upgrade airlock here, or ask the vendor for a bundle without that feature',
      });
    }
  }
  return v.format as Format;
}

/**
 * A delta names its base and may leave blobs out; nothing else may. Each
 * requirement is listed once, in order, so the manifest has one spelling.
 */
export function checkDelta(m: Manifest): void {
  const requires = m.requires ?? [];
  for (let i = 1; i < requires.length; i++) {
    if (requires[i - 1]! >= requires[i]!) throw integrityError(`${MANIFEST_ENTRY}: requires is not sorted and unique at "${requires[i]}"`, { reason: 'manifest-invalid' });
  }
  const delta = requires.includes('delta');
  if (delta !== (m.base !== undefined)) {
    throw integrityError(`${MANIFEST_ENTRY}: ${delta ? 'requires delta but names no base' : 'names a base but does not require delta'}`, { reason: 'manifest-invalid' });
  }
  // A receipt base is a new shape of base: only a reader that knows `receipt` may take it.
  const receipt = requires.includes('receipt');
  if (m.base && receipt !== isReceiptBase(m.base)) {
    throw integrityError(`${MANIFEST_ENTRY}: ${receipt ? 'requires receipt but its base is a bundle' : 'its base is a receipt, but it does not require receipt'}`, { reason: 'manifest-invalid' });
  }
  if (receipt && !delta) throw integrityError(`${MANIFEST_ENTRY}: requires receipt but not delta`, { reason: 'manifest-invalid' });
  if (m.base && !isReceiptBase(m.base) && !semver.valid(m.base.version)) {
    throw integrityError(`${MANIFEST_ENTRY}: base version "${m.base.version}" is not a semantic version`, { reason: 'manifest-invalid' });
  }
  if (m.base && isReceiptBase(m.base) && !isRealTimestamp(m.base.receipt.created)) {
    throw integrityError(`${MANIFEST_ENTRY}: base receipt created "${m.base.receipt.created}" is not a valid date`, { reason: 'manifest-invalid' });
  }
  const left = m.blobs.find((b) => !isCarried(b));
  if (left && !delta) {
    throw integrityError(`${MANIFEST_ENTRY}: blob ${left.digest} is not carried, but the bundle is not a delta`, { reason: 'manifest-invalid' });
  }
}

/**
 * One image per ref, or, with `platforms`, one per ref and platform: the
 * host loads the variant for its own platform, so two that a host could
 * not tell apart are refused. Every image then names its platform, in the
 * one spelling (src/images/platform.ts); without `platforms`, none does.
 */
export function checkImageVariants(m: Manifest): void {
  const platforms = (m.requires ?? []).includes('platforms');
  if (platforms && m.images.length === 0) throw integrityError(`${MANIFEST_ENTRY}: requires platforms but has no images`, { reason: 'manifest-invalid', subject: MANIFEST_ENTRY });
  const seen = new Set<string>();
  const ids = new Set<string>();
  for (const img of m.images) {
    const label = `image ${img.refs[0] ?? img.id}`;
    if (platforms !== (img.platform !== undefined)) {
      throw integrityError(`${MANIFEST_ENTRY}: ${platforms ? `requires platforms, but ${label} names no platform` : `${label} names a platform, but the manifest does not require platforms`}`, {
        reason: 'manifest-invalid',
        subject: MANIFEST_ENTRY,
      });
    }
    if (img.platform !== undefined && !isCanonicalPlatform(img.platform)) {
      throw integrityError(`${MANIFEST_ENTRY}: ${label} has platform "${img.platform}", which is not a platform in its one spelling (os/architecture[/variant], e.g. linux/amd64, linux/arm/v7)`, {
        reason: 'manifest-invalid',
        subject: MANIFEST_ENTRY,
      });
    }
    if (ids.has(img.id)) throw integrityError(`${MANIFEST_ENTRY}: image ${img.id} is listed twice`, { reason: 'manifest-invalid', subject: MANIFEST_ENTRY });
    ids.add(img.id);
    for (const ref of img.refs) {
      const key = `${ref} ${img.platform ?? ''}`;
      if (seen.has(key)) {
        throw integrityError(
          platforms
            ? `${MANIFEST_ENTRY}: image ref ${ref} is listed twice for platform ${img.platform}`
            : `${MANIFEST_ENTRY}: image ref ${ref} is listed twice; only a manifest that requires platforms may carry several variants of one ref, one per platform`,
          { reason: 'manifest-invalid', subject: MANIFEST_ENTRY },
        );
      }
      seen.add(key);
    }
  }
}

/**
 * One spelling for sealed files: `requires` names `sealed` exactly when
 * `sealedTo` lists key ids (sorted, unique) and exactly when some env file
 * or extra file is marked sealed. A blob is either sealed or plain: one
 * named both ways would be handed to Swarm as ciphertext, or opened where
 * it is plain.
 */
export function checkSealed(m: Manifest): void {
  const fail = (why: string) => integrityError(`${MANIFEST_ENTRY}: ${why}`, { reason: 'manifest-invalid', subject: MANIFEST_ENTRY, hint: 'the bundle was made by an incompatible or broken builder' });
  const requires = (m.requires ?? []).includes('sealed');
  const to = m.sealedTo ?? [];
  const sealed = sealedFiles(m);
  if (requires !== to.length > 0) throw fail(requires ? 'requires sealed but names no key ids in sealedTo' : 'names key ids in sealedTo but does not require sealed');
  if (requires !== sealed.length > 0) throw fail(requires ? 'requires sealed but marks no file sealed' : `marks ${sealed[0]!.label} sealed but does not require sealed`);
  for (let i = 1; i < to.length; i++) {
    if (to[i - 1]! >= to[i]!) throw fail(`sealedTo is not sorted and unique at "${to[i]}"`);
  }
  const sealedDigests = new Map(sealed.map((f) => [f.digest, f.label]));
  const plain = [
    ...m.stacks.flatMap((s) => [...s.composeFiles.map((f) => ({ label: `stack ${s.name} compose file ${f.name}`, ...f })), ...s.envFiles.map((f) => ({ label: `stack ${s.name} env file ${f.name}`, ...f }))]),
    ...m.files.map((f) => ({ label: `file ${f.path}`, ...f })),
  ].filter((f) => !f.sealed);
  for (const f of plain) {
    const other = sealedDigests.get(f.digest);
    if (other) throw fail(`blob ${f.digest} is sealed as ${other} but plain as ${f.label}`);
  }
}

export function checkBlobList(m: Manifest): void {
  for (let i = 1; i < m.blobs.length; i++) {
    const prev = m.blobs[i - 1]!.digest;
    const cur = m.blobs[i]!.digest;
    if (prev >= cur) {
      throw integrityError(`${MANIFEST_ENTRY}: blob list is not sorted and unique at ${cur}`, { reason: 'manifest-invalid' });
    }
  }
  for (const b of carriedBlobs(m)) {
    if ((b.encoding === 'identity') !== (b.stored === undefined)) {
      throw integrityError(`${MANIFEST_ENTRY}: blob ${b.digest} must give "stored" exactly when it is encoded`, { reason: 'manifest-invalid' });
    }
  }
  // One spelling: `requires` names zstd exactly when a carried blob is zstd-encoded.
  const zstd = carriedBlobs(m).some((b) => b.encoding === 'zstd');
  if (zstd !== (m.requires ?? []).includes('zstd')) {
    throw integrityError(`${MANIFEST_ENTRY}: ${zstd ? 'has zstd-encoded blobs but does not require zstd' : 'requires zstd but has no zstd-encoded blob'}`, { reason: 'manifest-invalid' });
  }
}

/**
 * An engine in one spelling: `requires` names `engine` exactly when the
 * manifest carries one; each file once, each a listed blob of kind
 * `engine-file` of its size, and every such blob one of its files; a static
 * engine needs a C library of its own (or none), a package set leaves it to
 * the distribution, whose packages end in their form's suffix.
 */
export function checkEngine(m: Manifest): void {
  const fail = (why: string) => integrityError(`${MANIFEST_ENTRY}: ${why}`, { reason: 'manifest-invalid', subject: MANIFEST_ENTRY, hint: 'the bundle was made by an incompatible or broken builder' });
  const requires = (m.requires ?? []).includes('engine');
  const e = m.engine;
  if (requires !== (e !== undefined)) throw fail(requires ? 'requires engine but carries none' : 'carries an engine but does not require engine');
  const engineBlobs = new Set(m.blobs.filter((b) => b.kind === 'engine-file').map((b) => b.digest));
  if (!e) {
    const stray = [...engineBlobs][0];
    if (stray) throw fail(`blob ${stray} is of kind engine-file, but the bundle carries no engine`);
    return;
  }
  const packaged = e.form !== 'static';
  if (packaged !== (e.libc.kind === 'distribution')) {
    throw fail(packaged ? `a ${e.form} engine leaves the C library to the distribution (libc kind distribution), not ${e.libc.kind}` : 'a static engine names its own C library (static, glibc or musl), not distribution');
  }
  const listed = new Map(m.blobs.map((b) => [b.digest, b]));
  const paths = new Set<string>();
  const used = new Set<string>();
  for (const f of e.files) {
    if (paths.has(f.path)) throw fail(`engine file ${f.path} is listed twice`);
    paths.add(f.path);
    if (packaged && !f.path.endsWith(`.${e.form}`)) throw fail(`engine file ${f.path} is not a .${e.form} package, and the engine's form is ${e.form}`);
    const blob = listed.get(f.digest);
    if (!blob) throw fail(`engine file ${f.path} names blob ${f.digest}, which the bundle does not list`);
    if (blob.kind !== 'engine-file') throw fail(`engine file ${f.path} names blob ${f.digest}, which is of kind ${blob.kind}, not engine-file`);
    if (blob.size !== f.size) throw fail(`engine file ${f.path} gives size ${f.size} for ${f.digest}, the blob list ${blob.size}`);
    used.add(f.digest);
  }
  for (let i = 1; i < e.files.length; i++) {
    if (e.files[i - 1]!.path >= e.files[i]!.path) throw fail(`engine files are not sorted by path at ${e.files[i]!.path}`);
  }
  const stray = [...engineBlobs].find((d) => !used.has(d));
  if (stray) throw fail(`blob ${stray} is of kind engine-file, but no engine file names it`);
}

/** Every digest the sections name must be a listed blob of the right size. */
export function checkReferences(m: Manifest): void {
  const listed = new Map(m.blobs.map((b) => [b.digest, b]));
  const need = (d: string, where: string, bytes?: number) => {
    const blob = listed.get(d);
    if (!blob) throw integrityError(`${MANIFEST_ENTRY}: ${where} names blob ${d}, which the bundle does not list`, { reason: 'manifest-invalid' });
    if (bytes !== undefined && blob.size !== bytes) {
      throw integrityError(`${MANIFEST_ENTRY}: ${where} gives size ${bytes} for ${d}, the blob list ${blob.size}`, { reason: 'manifest-invalid' });
    }
  };
  for (const s of m.stacks) {
    for (const f of [...s.composeFiles, ...s.envFiles]) need(f.digest, `stack ${s.name} file ${f.name}`);
  }
  for (const img of m.images) {
    const label = `image ${img.refs[0] ?? img.id}`;
    if (img.id !== img.config.digest) throw integrityError(`${MANIFEST_ENTRY}: ${label} id differs from its config digest`, { reason: 'manifest-invalid' });
    need(img.config.digest, label, img.config.size);
    need(img.manifest.digest, label, img.manifest.size);
    for (const l of img.layers) {
      need(l.digest, label, l.size);
      // An uncompressed layer is its own diff: the two hashes must agree before Docker sees it.
      if (l.mediaType.endsWith('.tar') && l.digest !== l.diffId) {
        throw integrityError(`${MANIFEST_ENTRY}: ${label} layer ${l.digest} is an uncompressed tar, but its diff id is ${l.diffId}`, {
          reason: 'layer-mismatch',
          subject: label,
        });
      }
    }
  }
  for (const f of m.files) need(f.digest, `file ${f.path}`, f.size);
}

/**
 * Extra files are placed on the host by path, and stack files are resolved
 * by name (env_file paths are relative to them): every such path must stay
 * inside its folder.
 */
export function checkFilePaths(m: Manifest): void {
  const paths = [...m.files.map((f) => ['file', f.path]), ...m.stacks.flatMap((s) => [...s.composeFiles, ...s.envFiles].map((f) => [`stack ${s.name} file`, f.name]))];
  for (const [what, path] of paths as [string, string][]) {
    const reason = unsafePathReason(path);
    if (reason) {
      throw unsafeEntry(`${MANIFEST_ENTRY}: ${what} path "${path}" ${reason}`, { reason: 'path-traversal', subject: path });
    }
  }
}

/** Why a relative path would escape its folder, or null when it is safe. */
export function unsafePathReason(path: string): string | null {
  if (path.startsWith('/')) return 'is absolute';
  if (path.includes('\\') || path.includes('\0')) return 'has a backslash or NUL byte';
  if (path.split('/').some((seg) => seg === '..')) return 'climbs out of its folder with ".."';
  if (path.split('/').some((seg) => seg === '' || seg === '.')) return 'has an empty or "." segment';
  return null;
}
