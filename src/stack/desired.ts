import { readFileSync } from 'node:fs';
import { AirlockError } from '../errors/index.js';
import { convertStack, type NameSuffix } from '../compose/convert/index.js';
import { loadCompose, type ComposeFileInput } from '../compose/load/index.js';
import type { ComposeNotice } from '../compose/model.js';
import type { DesiredStack } from './types.js';

export interface DesiredInput {
  stack: string;
  files: ComposeFileInput[];
  workingDir: string;
  env: Record<string, string>;
  apiVersion: string;
  /** Reads env files, secret and config files; defaults to the file system. */
  readFile?: (absPath: string) => Buffer;
  /**
   * The content suffix of secret and config names, keyed by the site
   * (src/seal/host-keys.ts); asked only when the stack creates a secret or
   * config, with the files they come from.
   */
  nameSuffix: (objectFiles: string[]) => Promise<NameSuffix>;
  /** For a file that arrived sealed: the digest of its sealed blob, which the journal keeps instead of the value. */
  sealedBlobOf?: (absPath: string) => string | undefined;
}

/** Compose files to the stack's desired Swarm objects, with the warnings to show. Errors stop here. */
export async function desiredStack(input: DesiredInput): Promise<{ desired: DesiredStack; warnings: ComposeNotice[] }> {
  const read = input.readFile ?? ((p: string) => readFileSync(p));
  const loaded = await loadCompose({
    files: input.files,
    workingDir: input.workingDir,
    env: input.env,
    readEnvFile: async (p) => read(p).toString('utf8'),
  });
  const objectFiles = [...Object.values(loaded.config.secrets), ...Object.values(loaded.config.configs)].flatMap((o) => (!o.external && o.file ? [o.file] : []));
  const nameSuffix = objectFiles.length > 0 ? await input.nameSuffix(objectFiles) : undefined;
  const converted = convertStack({ stack: input.stack, config: loaded.config, apiVersion: input.apiVersion, fileData: read, ...(nameSuffix ? { nameSuffix } : {}) });
  const notices = [...loaded.notices, ...converted.notices];
  const errors = notices.filter((n) => n.level === 'error');
  if (errors.length > 0) {
    throw new AirlockError('config', `stack ${input.stack}: ${errors.map((e) => `${e.file ? `${e.file}: ` : ''}${e.path}: ${e.message}`).join('; ')}`, {
      reason: 'compose-invalid',
      subject: input.stack,
    });
  }
  const sealedData: Record<string, string> = {};
  for (const [name, file] of converted.objectFiles) {
    const digest = input.sealedBlobOf?.(file);
    if (digest !== undefined) sealedData[name] = digest;
  }
  return {
    desired: {
      stack: input.stack,
      networks: converted.networks,
      secrets: converted.secrets,
      configs: converted.configs,
      services: converted.services,
      ...(Object.keys(sealedData).length > 0 ? { sealedData } : {}),
    },
    warnings: notices.filter((n) => n.level === 'warning'),
  };
}
