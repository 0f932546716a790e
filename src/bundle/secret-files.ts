/**
 * Which bundle files are a stack's secrets: the `file:` of every top-level
 * `secrets.<key>` in its compose files, as the host resolves it. The host's
 * loader reads a stack with the bundle root as its working folder
 * (src/bundle/bundle-root.ts), so `file: ./db.password` is the bundle file
 * `db.password` whichever folder the compose file is in. A pure function of
 * the texts: the builder uses it to choose what to seal, a host to check that
 * what should be sealed is.
 */
import { posix } from 'node:path';
import { BUNDLE_ROOT } from './bundle-root.js';
import { absPath } from '../compose/load/context.js';
import { isMapping } from '../compose/load/errors.js';
import { parseComposeYaml } from '../compose/load/parse.js';

export interface ComposeText {
  name: string;
  text: string;
}

/** One `secrets.<key>.file` of a compose file. */
export interface SecretFile {
  /** The compose file that declares it. */
  compose: string;
  secret: string;
  /** `file:` as written. */
  file: string;
  /**
   * The bundle-relative path it names (posix, normalized, as a `files:` dest
   * is written); null when it cannot be known at build time (it holds `$`,
   * so the host's variables choose it) or lies outside the bundle root.
   */
  path: string | null;
}

/** The bundle path a secret's `file:` names on the host, or null (see SecretFile.path). */
function bundlePath(file: string): string | null {
  if (file.includes('$')) return null;
  const abs = posix.normalize(absPath(BUNDLE_ROOT, file));
  return abs.startsWith(`${BUNDLE_ROOT}/`) ? abs.slice(BUNDLE_ROOT.length + 1) : null;
}

/**
 * Every file-backed secret the compose files declare, in file order. External
 * secrets and secrets from a driver have no file. Each file is read on its
 * own: a secret a later file overrides still counts, which can only seal
 * more than needed.
 */
export function secretFiles(composeFiles: readonly ComposeText[]): SecretFile[] {
  const out: SecretFile[] = [];
  for (const { name, text } of composeFiles) {
    const secrets = parseComposeYaml(name, text)['secrets'];
    if (!isMapping(secrets)) continue;
    for (const [secret, spec] of Object.entries(secrets)) {
      if (!isMapping(spec)) continue;
      const { external, driver, file } = spec;
      if (external === true || isMapping(external)) continue;
      if (driver !== undefined && driver !== null && driver !== '') continue;
      if (file === undefined || file === null || file === '') continue;
      out.push({ compose: name, secret, file: String(file), path: bundlePath(String(file)) });
    }
  }
  return out;
}

/**
 * The bundle-relative paths of every secret file of a stack, each once. A
 * `file:` that cannot be resolved at build time is returned as written: it
 * names no bundle file, so a caller that looks it up finds none and refuses.
 */
export function secretFilePaths(composeFiles: readonly ComposeText[]): string[] {
  return [...new Set(secretFiles(composeFiles).map((s) => s.path ?? s.file))];
}
