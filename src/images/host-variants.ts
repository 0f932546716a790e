/**
 * Which of a bundle's images a host loads: for every ref, the variant for
 * the host's platform. A bundle built for several platforms carries one
 * image per ref and platform (its manifest says which); an older bundle
 * carries one per ref, whose config says which platform it is for. Import,
 * apply, the agent and rollback's pins all go through this one choice.
 */
import { integrityError, policyError } from '../errors/index.js';
import type { ImageRecord } from './image-record.js';
import { formatPlatform, parsePlatform, platformFit, platformOfConfig, sameOsArch, type Platform } from './platform.js';

/** Reads an image config blob by digest (from the content store, or an import's staging). */
export type ConfigReader = (digest: string) => Promise<Buffer>;

/**
 * The images `host` loads, in manifest order: for each ref (an untagged
 * image on its own), the variant that fits the host best. Refused, before
 * anything is loaded, when an image has no variant for the host (policy,
 * `platform-unavailable`: it would load and then fail with "exec format
 * error"), or when a variant's config names another platform than the
 * manifest (integrity, `platform-mismatch`). `bundle` names the bundle in
 * messages (`demo 1.0.0`).
 */
export async function variantsForHost(images: readonly ImageRecord[], host: Platform, readConfig: ConfigReader, bundle: string): Promise<ImageRecord[]> {
  const platformOf = new Map<ImageRecord, Platform | null>();
  for (const img of images) platformOf.set(img, await platformOfImage(img, readConfig));
  const groups = new Map<string, ImageRecord[]>();
  for (const img of images) {
    for (const key of img.refs.length > 0 ? img.refs : [img.id]) groups.set(key, [...(groups.get(key) ?? []), img]);
  }
  const chosen = new Set<ImageRecord>();
  const unavailable: { image: string; platforms: string[] }[] = [];
  for (const [image, variants] of groups) {
    let best: { img: ImageRecord; fit: number } | undefined;
    for (const img of variants) {
      const p = platformOf.get(img)!;
      // A config that names no platform: nothing says it will not run here.
      const fit = p === null ? 3 : platformFit(host, p);
      if (fit !== null && (best === undefined || fit < best.fit)) best = { img, fit };
    }
    if (best) chosen.add(best.img);
    else unavailable.push({ image, platforms: variants.map((v) => formatPlatform(platformOf.get(v)!)).sort() });
  }
  if (unavailable.length > 0) throw platformUnavailable(unavailable, host, bundle);
  return images.filter((img) => chosen.has(img));
}

/** The manifest's platform for a variant, checked against its config; the config's alone for an image without one. */
async function platformOfImage(img: ImageRecord, readConfig: ConfigReader): Promise<Platform | null> {
  const config = platformOfConfig(await readConfig(img.config.digest));
  const declared = img.platform === undefined ? null : parsePlatform(img.platform);
  if (declared && config && !sameOsArch(declared, config)) {
    const label = img.refs[0] ?? img.id;
    throw integrityError(`image ${label}: the manifest says it is for ${formatPlatform(declared)}, its config says ${formatPlatform(config)}`, {
      reason: 'platform-mismatch',
      subject: label,
      hint: 'the vendor built an inconsistent bundle; nothing was loaded',
    });
  }
  return declared ?? config;
}

function platformUnavailable(missing: readonly { image: string; platforms: string[] }[], host: Platform, bundle: string) {
  const here = formatPlatform(host);
  const list = missing.map((m) => `${m.image} (the bundle has ${m.platforms.join(', ')})`).join('; ');
  const what = missing.length === 1 ? `image ${list}` : `${missing.length} images: ${list}`;
  return policyError(`${bundle} has no ${here} variant of ${what}; this host's engine runs ${here}`, {
    reason: 'platform-unavailable',
    subject: missing[0]!.image,
    hint: `nothing was loaded and no service was touched. Ask the vendor for a bundle built with --platform ${here} (a bundle may carry several platforms)`,
  });
}
