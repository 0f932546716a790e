/**
 * Image references, read with the grammar docker uses (its
 * distribution/reference and go-digest packages): optional domain (with a
 * port), lowercase path components, a tag `[\w][\w.-]{0,127}`, a digest
 * `algorithm:hex`. `docker stack deploy` refuses a service whose image does
 * not parse, before it creates anything; the compose loader and the bundle
 * builder refuse it the same way, with docker's reason.
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
/** go-digest's DigestRegexp: tells an unknown algorithm from a malformed digest. */
const DIGEST_LIKE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
/** The algorithms docker's client links in, and their hex lengths. */
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
const IMAGE_ID = /^[a-f0-9]{64}$/;
const PATH_MAX = 255;
const INVALID_FORMAT = 'invalid reference format';

/** How to write a reference, for hints. */
export const REFERENCE_FORM = 'name:tag or name@sha256:<digest>, with a lowercase repository name';

export interface ImageRef {
  domain: string;
  path: string;
  tag?: string;
  digest?: string;
}

/** A parse: the reference, or docker's words for why it is refused. */
export type ParsedRef = { ref: ImageRef } | { problem: string };

/** go-digest's Digest.Validate: undefined when `s` is a digest docker accepts. */
function digestProblem(s: string): string | undefined {
  const colon = s.indexOf(':');
  if (colon <= 0 || colon === s.length - 1) return 'invalid checksum digest format';
  const length = DIGEST_HEX_LENGTH[s.slice(0, colon)];
  if (length === undefined) return DIGEST_LIKE.test(s) ? 'unsupported digest algorithm' : 'invalid checksum digest format';
  const hex = s.slice(colon + 1);
  if (hex.length !== length) return 'invalid checksum digest length';
  return /^[a-f0-9]+$/.test(hex) ? undefined : 'invalid checksum digest format';
}

/** docker's splitDockerDomain: `busybox` is docker.io/library/busybox; a first part with `.`, `:` or uppercase is a domain. */
function splitDomain(s: string): [string, string] {
  const slash = s.indexOf('/');
  if (slash === -1) return ['docker.io', `library/${s}`];
  const first = s.slice(0, slash);
  const rest = s.slice(slash + 1);
  let domain = 'docker.io';
  let remainder = s;
  if (first === 'index.docker.io') remainder = rest;
  else if (first === 'localhost' || /[.:]/.test(first) || first.toLowerCase() !== first) [domain, remainder] = [first, rest];
  if (domain === 'docker.io' && !remainder.includes('/')) remainder = `library/${remainder}`;
  return [domain, remainder];
}

/** docker's ParseNormalizedNamed: a named reference (`name[:tag][@digest]`), normalised onto docker.io. */
export function parseNamedRef(s: string): ParsedRef {
  if (IMAGE_ID.test(s)) return { problem: `invalid repository name (${s}), cannot specify 64-byte hexadecimal strings` };
  const [domain, remainder] = splitDomain(s);
  const colon = remainder.indexOf(':');
  const repo = colon === -1 ? remainder : remainder.slice(0, colon);
  if (repo.toLowerCase() !== repo) return { problem: `${INVALID_FORMAT}: repository name (${repo}) must be lowercase` };
  const full = `${domain}/${remainder}`;
  const m = REFERENCE.exec(full);
  if (!m) return { problem: REFERENCE.test(full.toLowerCase()) ? 'repository name must be lowercase' : INVALID_FORMAT };
  const path = m[1]!.slice(domain.length + 1);
  if (path.length > PATH_MAX) return { problem: `repository name must not be more than ${PATH_MAX} characters` };
  const [tag, digest] = [m[2], m[3]];
  if (digest !== undefined) {
    const problem = digestProblem(digest);
    if (problem !== undefined) return { problem };
  }
  return { ref: { domain, path, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) } };
}

/**
 * docker's ParseAnyReference, what `docker stack deploy` checks every
 * service's image with: a named reference, a bare image id (64 hex) or a
 * bare digest. Undefined when the image is valid, else why it is not.
 */
export function imageRefProblem(image: string): string | undefined {
  if (IMAGE_ID.test(image) || digestProblem(image) === undefined) return undefined;
  const parsed = parseNamedRef(image);
  return 'problem' in parsed ? parsed.problem : undefined;
}

/** The short form docker prints: no `docker.io/`, no `library/` for official images. */
export function familiarString(ref: ImageRef): string {
  let name = `${ref.domain}/${ref.path}`;
  if (ref.domain === 'docker.io') {
    name = ref.path.startsWith('library/') && !ref.path.slice('library/'.length).includes('/') ? ref.path.slice('library/'.length) : ref.path;
  }
  return name + (ref.tag !== undefined ? `:${ref.tag}` : '') + (ref.digest !== undefined ? `@${ref.digest}` : '');
}

/**
 * Image references in the short form `docker images` and `docker save`
 * print: `busybox:latest`, `demo/web:1.0`, `registry.local:5000/app:2`.
 * Compose files and RepoTags spell the same image in several ways; matching
 * is done on this form.
 */
export function familiarRef(ref: string): string {
  let r = ref.trim();
  if (r.startsWith('docker.io/')) r = r.slice('docker.io/'.length);
  if (r.startsWith('index.docker.io/')) r = r.slice('index.docker.io/'.length);
  if (r.startsWith('library/') && r.split('/').length === 2) r = r.slice('library/'.length);
  if (r.includes('@')) return r;
  const lastSlash = r.lastIndexOf('/');
  const hasTag = r.slice(lastSlash + 1).includes(':');
  return hasTag ? r : `${r}:latest`;
}
