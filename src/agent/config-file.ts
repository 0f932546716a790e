/** Where the agent's config lives: also the host's sealed-secret policy, which commands read (src/cli/sealing-inputs.ts) without loading the config's schema. */
export const DEFAULT_CONFIG_FILE = '/etc/airlock/agent.yaml';
