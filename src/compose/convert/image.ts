/**
 * The image a service runs, as docker's client sends it: the compose value
 * parsed as a normalised reference, given the `latest` tag when it names
 * neither tag nor digest, and printed in its short ("familiar") form:
 * `docker.io/library/busybox` → `busybox:latest`. A value that does not
 * parse is sent as written, as docker does. The service label
 * `com.docker.stack.image` keeps the value as written.
 */

const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])`;
const DOMAIN = `${HOST}(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const REFERENCE = new RegExp(`^((?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
const NAME_MAX = 255;

export interface ImageRef {
  domain: string;
  path: string;
  tag?: string;
  digest?: string;
}

/** docker's ParseNormalizedNamed; undefined when docker would refuse the reference. */
export function parseImageRef(image: string): ImageRef | undefined {
  if (/^[a-f0-9]{64}$/.test(image)) return undefined; // a bare image id is ambiguous
  const slash = image.indexOf('/');
  let domain = 'docker.io';
  let remainder = image;
  if (slash !== -1) {
    const first = image.slice(0, slash);
    if (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first) {
      domain = first;
      remainder = image.slice(slash + 1);
    }
  }
  if (domain === 'index.docker.io') domain = 'docker.io';
  if (domain === 'docker.io' && !remainder.includes('/')) remainder = `library/${remainder}`;
  const nameEnd = remainder.search(/[:@]/);
  const repo = nameEnd === -1 ? remainder : remainder.slice(0, nameEnd);
  if (repo.toLowerCase() !== repo) return undefined;
  const m = REFERENCE.exec(`${domain}/${remainder}`);
  if (!m) return undefined;
  const name = m[1]!;
  if (name.length > NAME_MAX) return undefined;
  const digest = m[3];
  if (digest !== undefined) {
    const [algorithm, hex] = digest.split(':') as [string, string];
    if (DIGEST_HEX_LENGTH[algorithm] !== hex.length || !/^[a-f0-9]+$/.test(hex)) return undefined;
  }
  return { domain, path: name.slice(domain.length + 1), ...(m[2] !== undefined && { tag: m[2] }), ...(digest !== undefined && { digest }) };
}

/** The short form docker prints: no `docker.io/`, no `library/` for official images. */
export function familiarString(ref: ImageRef): string {
  let name = `${ref.domain}/${ref.path}`;
  if (ref.domain === 'docker.io') {
    name = ref.path.startsWith('library/') && !ref.path.slice('library/'.length).includes('/') ? ref.path.slice('library/'.length) : ref.path;
  }
  return name + (ref.tag !== undefined ? `:${ref.tag}` : '') + (ref.digest !== undefined ? `@${ref.digest}` : '');
}

/** What docker's client puts in ContainerSpec.Image for `image`. */
export function serviceImage(image: string): string {
  const ref = parseImageRef(image);
  if (!ref) return image;
  return familiarString(ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: 'latest' } : ref);
}
