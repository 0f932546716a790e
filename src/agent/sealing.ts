import { credentialIdentities } from '../seal/host-keys.js';
import type { SealingOptions } from '../seal/sealing-options.js';
import type { AgentConfig } from './config.js';

/**
 * The agent's sealed-secret options: the identities systemd hands it through
 * LoadCredential= (it runs as user airlock and cannot read the root-only
 * files themselves) and any the config names, and the config's policy.
 */
export const agentSealing = (config: AgentConfig, env: NodeJS.ProcessEnv = process.env): SealingOptions => ({
  identities: [...config.secrets.identities, ...credentialIdentities(env)],
  requireSealed: config.secrets.requireSealed,
});
