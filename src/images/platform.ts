/**
 * Image platforms, written `os/architecture[/variant]` (`linux/amd64`,
 * `linux/arm/v7`). Docker, containerd, image configs and `uname` spell the
 * same platform in several ways (`x86_64`, `aarch64`, `arm64/v8`, `armhf`);
 * everything here works on one normalised form, the one containerd's
 * `platforms.Normalize` gives, and a bundle manifest holds only that form.
 */
import type { ImageEngine } from '../docker/engine.js';
import type { CallOptions } from '../docker/index.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** What a bundle manifest's `platform` must match; it must also be normalised (isCanonicalPlatform). */
export const PLATFORM_PATTERN = '^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$';

/** `linux/arm/v7`. */
export const formatPlatform = (p: Platform): string => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;

/**
 * The one spelling of a platform: lower case, Go's architecture names
 * (`x86_64` → `amd64`, `aarch64` → `arm64`), and the variant only where it
 * tells platforms apart (`arm64/v8` is `arm64`, `arm` is `arm/v7`).
 */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() || undefined;
  switch (architecture) {
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      architecture = 'amd64';
      if (variant === 'v1') variant = undefined;
      break;
    case 'aarch64':
    case 'arm64':
      architecture = 'arm64';
      if (variant === '8' || variant === 'v8' || variant === 'v8.0') variant = undefined;
      break;
    case 'armhf':
      architecture = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      architecture = 'arm';
      variant = 'v6';
      break;
    case 'arm':
      if (variant === undefined || variant === '7') variant = 'v7';
      else if (/^[5-8]$/.test(variant)) variant = `v${variant}`;
      break;
    case 'i386':
    case 'i486':
    case 'i586':
    case 'i686':
      architecture = '386';
      break;
  }
  return { os, architecture, ...(variant ? { variant } : {}) };
}

/** Parses `os/architecture[/variant]` into its normalised form; null when it is not that shape. */
export function parsePlatform(text: string): Platform | null {
  const parts = text.trim().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((s) => !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(s))) return null;
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  if (os.toLowerCase() === 'unknown' || architecture.toLowerCase() === 'unknown') return null;
  return normalizePlatform({ os, architecture, ...(variant ? { variant } : {}) });
}

/**
 * Platforms as a definition or `--platform` lists them, normalised, sorted
 * and without repeats; `refuse` is told the index and what is wrong.
 */
export function platformList(texts: readonly string[], refuse: (index: number, why: string) => never): Platform[] {
  const byName = new Map<string, Platform>();
  for (const [i, text] of texts.entries()) {
    const p = parsePlatform(text);
    if (!p) refuse(i, `"${text}" is not a platform: write os/architecture[/variant], e.g. linux/amd64, linux/arm64, linux/arm/v7`);
    byName.set(formatPlatform(p), p);
  }
  return [...byName.keys()].sort().map((k) => byName.get(k)!);
}

/** True when `text` is a platform in its one spelling, as a manifest must hold it. */
export function isCanonicalPlatform(text: string): boolean {
  if (!new RegExp(PLATFORM_PATTERN).test(text)) return false;
  const p = parsePlatform(text);
  return p !== null && formatPlatform(p) === text;
}

/** The platform an image config names (`os`, `architecture`, `variant`), normalised; null when it names none. */
export function platformOfConfig(configBytes: Buffer): Platform | null {
  let c: { os?: unknown; architecture?: unknown; variant?: unknown };
  try {
    c = JSON.parse(configBytes.toString('utf8')) as typeof c;
  } catch {
    return null;
  }
  if (typeof c.os !== 'string' || typeof c.architecture !== 'string' || c.os === '' || c.architecture === '') return null;
  if (c.os === 'unknown' || c.architecture === 'unknown') return null;
  return normalizePlatform({ os: c.os, architecture: c.architecture, ...(typeof c.variant === 'string' && c.variant ? { variant: c.variant } : {}) });
}

/** True when both name the same os and architecture: what an image must share with its config. */
export const sameOsArch = (a: Platform, b: Platform): boolean => a.os === b.os && a.architecture === b.architecture;

const variantNumber = (v: string): number | null => (/^v\d+$/.test(v) ? Number(v.slice(1)) : null);

/**
 * How well an image of platform `image` fits a host of platform `host`: 0
 * for the same platform, higher for a looser fit, null when it does not run
 * there. The os and architecture must be the same (an amd64 host is not
 * given 386 images); an image without a variant runs on every variant; an
 * older variant runs on a newer CPU (arm/v6 on arm/v7), never the reverse;
 * a host that names no variant takes any, after an exact match.
 */
export function platformFit(host: Platform, image: Platform): number | null {
  if (!sameOsArch(host, image)) return null;
  if (host.variant === image.variant) return 0;
  if (image.variant === undefined) return 1;
  if (host.variant === undefined) return 2;
  const h = variantNumber(host.variant);
  const i = variantNumber(image.variant);
  return h !== null && i !== null && i <= h ? 1 + (h - i) : null;
}

/**
 * The platform of the engine's host, from `/version` (Os, Arch as Go names
 * them) and `/info` (Architecture as `uname -m` prints it, the only place an
 * ARM variant shows: `armv7l`).
 */
export function enginePlatform(version: { Os?: string; Arch?: string }, info: { OSType?: string; Architecture?: string }): Platform {
  const os = version.Os || info.OSType || 'linux';
  const machine = (info.Architecture ?? '').toLowerCase();
  const arm = /^armv(\d)/.exec(machine);
  const architecture = version.Arch || machine;
  const base = normalizePlatform({ os, architecture });
  if (base.architecture === 'arm' && arm) return { ...base, variant: `v${arm[1]}` };
  return base;
}

/** The platform of the host `docker` runs on: what this host can run. */
export async function hostPlatform(docker: Pick<ImageEngine, 'system'>, call: CallOptions = {}): Promise<Platform> {
  const [version, info] = await Promise.all([docker.system.version(call), docker.system.info(call)]);
  return enginePlatform(version, info);
}
