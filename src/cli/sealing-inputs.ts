/**
 * The sealed-secret options every command that imports, plans or deploys
 * takes: the site identities (`--identity`, repeatable) and the policy
 * (`--require-sealed`, `--allow-unsealed`). Without a flag, the policy is the
 * host's, from the agent config (`secrets.requireSealed`), so that an
 * operator's command refuses what the agent would.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { DEFAULT_CONFIG_FILE } from '../agent/config-file.js';
import { configError, usageError } from '../errors/index.js';
import { identityPathsFrom } from '../seal/host-keys.js';
import type { SealingOptions } from '../seal/sealing-options.js';
import { boolOpt, type CommandContext } from './command.js';

export const identityOpt = { identity: { type: 'string' as const, multiple: true } };

export const sealingOpts = {
  ...identityOpt,
  'require-sealed': boolOpt(),
  'allow-unsealed': boolOpt(),
};

/** The host's policy: the agent config's `secrets.requireSealed`; false when there is no agent config. */
export function hostRequiresSealed(file = process.env.AIRLOCK_AGENT_CONFIG ?? DEFAULT_CONFIG_FILE): boolean {
  if (!existsSync(file)) return false;
  let doc: unknown;
  try {
    doc = parse(readFileSync(file, 'utf8'));
  } catch (e) {
    // A policy that cannot be read is not taken as "allow".
    throw configError(`cannot read the host's sealed-secret policy from ${file}: ${(e as Error).message}`, {
      reason: 'bad-config',
      subject: file,
      hint: 'fix the agent config (airlock agent --check-config), or say --require-sealed or --allow-unsealed',
    });
  }
  const secrets = (doc as { secrets?: { requireSealed?: unknown } } | null)?.secrets;
  return secrets?.requireSealed === true;
}

/** The identities of `--identity` (else AIRLOCK_SITE_KEYS): what rollback and recover need to open what they recreate. */
export function identityOnly(values: CommandContext['values']): SealingOptions {
  const flags = Array.isArray(values.identity) ? values.identity.filter((v): v is string => typeof v === 'string') : [];
  return { identities: identityPathsFrom(flags) };
}

/** What the policy flags say: require (true), allow (false), or nothing (undefined). */
export function policyFlag(values: CommandContext['values']): boolean | undefined {
  if (values['require-sealed'] === true && values['allow-unsealed'] === true) throw usageError('--require-sealed and --allow-unsealed contradict each other: give one');
  return values['require-sealed'] === true ? true : values['allow-unsealed'] === true ? false : undefined;
}

export function sealingOption(values: CommandContext['values']): SealingOptions {
  return { ...identityOnly(values), requireSealed: policyFlag(values) ?? hostRequiresSealed() };
}
