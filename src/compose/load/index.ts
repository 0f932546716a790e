/**
 * The compose loader: compose files in, the loaded model and notices out,
 * the way `docker stack deploy` loads them (docker/cli cli/compose/loader).
 *
 * For each file, in order: parse the YAML; refuse forbidden keys; interpolate
 * variables (with docker's type casts); validate against the Compose
 * Specification schema; normalise into the model (short syntaxes, env files,
 * paths). Then merge the files in order, add the implicit `default` network,
 * check that every service's image is a valid reference (docker's order) and
 * that every network, volume, secret and config a service names is declared.
 *
 * Errors are AirlockError `config` with the file as subject; anything in a
 * file that the model does not carry comes back as a warning notice with its
 * key path (and in the service's `unsupported` list).
 */
import { readFile } from 'node:fs/promises';
import type { ComposeConfig, ComposeNotice } from '../model.js';
import type { LoadContext } from './context.js';
import { composeError } from './errors.js';
import { checkImageReferences, type ParsedFile } from './images.js';
import { interpolateConfig } from './interpolate.js';
import { checkForbidden } from './keys.js';
import { mergeConfigs } from './merge.js';
import { normalizeFile } from './normalize.js';
import { parseComposeYaml } from './parse.js';
import { attachDefaultNetwork, checkReferences } from './references.js';
import { validateCompose } from './validate.js';

export { interpolationEnv, type VariableLayer } from './interpolate.js';
export { parseEnvFile } from './env-file.js';

export interface ComposeFileInput {
  /** The file name used in messages (e.g. `stacks/web/compose.yml`). */
  name: string;
  content: string;
}

export interface LoadComposeInput {
  /** Compose files in merge order: later files override earlier ones. */
  files: ComposeFileInput[];
  /** Absolute folder that relative paths (env_file, bind mounts, secret files) resolve against. */
  workingDir: string;
  /** Variables for interpolation and for `environment` entries without a value (see interpolationEnv). */
  env: Record<string, string>;
  /** Reads an env file; defaults to the file system. */
  readEnvFile?: (absPath: string) => Promise<string>;
}

export interface LoadComposeResult {
  config: ComposeConfig;
  notices: ComposeNotice[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

async function readEnvFileFromDisk(absPath: string): Promise<string> {
  const bytes = await readFile(absPath);
  try {
    return utf8.decode(bytes);
  } catch (e) {
    throw composeError(absPath, null, 'is not valid UTF-8', { reason: 'compose-env-file', cause: e });
  }
}

export async function loadCompose(input: LoadComposeInput): Promise<LoadComposeResult> {
  if (input.files.length === 0) {
    throw composeError('(none)', null, 'no compose file given', {
      reason: 'compose-no-file',
      hint: 'Name at least one compose file.',
    });
  }
  const env = input.env;
  const lookup = (name: string): string | undefined => (Object.hasOwn(env, name) ? env[name] : undefined);
  const notices: ComposeNotice[] = [];
  const loaded: ComposeConfig[] = [];
  const parsed: ParsedFile[] = [];
  for (const f of input.files) {
    const raw = parseComposeYaml(f.name, f.content);
    parsed.push({ name: f.name, raw });
    checkForbidden(f.name, raw);
    const interpolated = interpolateConfig(f.name, raw, lookup);
    validateCompose(f.name, interpolated);
    const ctx: LoadContext = {
      file: f.name,
      workingDir: input.workingDir,
      lookup,
      readEnvFile: input.readEnvFile ?? readEnvFileFromDisk,
      notices,
    };
    loaded.push(await normalizeFile(ctx, interpolated));
  }
  const config = mergeConfigs(loaded);
  attachDefaultNetwork(config);
  checkImageReferences(config, parsed, lookup);
  checkReferences(config);
  return { config, notices };
}
