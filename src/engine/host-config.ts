import { existsSync } from 'node:fs';
import { DEFAULT_CONFIG_FILE } from '../agent/config-file.js';
import type { EngineHostConfig } from './daemon-config.js';
import { DEFAULT_DATA_ROOT } from './host-paths.js';

/**
 * The host's engine settings: the agent config's `engine:` section (data
 * root, the site's own daemon.json keys), so that the agent and an
 * operator's `engine install` configure the engine alike. No agent config:
 * the defaults.
 */
export async function hostEngineConfig(file = process.env.AIRLOCK_AGENT_CONFIG ?? DEFAULT_CONFIG_FILE): Promise<EngineHostConfig> {
  if (!existsSync(file)) return { dataRoot: DEFAULT_DATA_ROOT, daemon: {} };
  const { loadAgentConfig } = await import('../agent/config.js');
  return (await loadAgentConfig(file)).engine;
}
