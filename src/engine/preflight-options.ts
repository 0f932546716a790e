import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { EngineRecord } from '../bundle/manifest-format.js';
import type { EngineHostConfig } from './daemon-config.js';
import type { EngineHostPaths } from './host-paths.js';
import type { InstalledEngine } from './installed.js';
import type { PreflightOptions } from './preflight.js';

/** The running dockerd's pid, from the pid file it writes beside its socket; its ports are the engine's own. */
function dockerdPid(paths: EngineHostPaths): number | undefined {
  try {
    const pid = Number(readFileSync(join(dirname(paths.socket), 'docker.pid'), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The preflight for this host: the engine to install (if any), the one airlock manages now, and the host config's settings that change what is needed. */
export function preflightOptions(engine: EngineRecord | undefined, installed: InstalledEngine | undefined, o: { paths: EngineHostPaths; config: EngineHostConfig }): PreflightOptions {
  const pid = installed ? dockerdPid(o.paths) : undefined;
  return {
    ...(engine ? { engine } : {}),
    ...(installed ? { installed: { version: installed.version, form: installed.form, ...(pid ? { pid } : {}) } } : {}),
    dataRoot: o.config.dataRoot,
    iptables: o.config.daemon?.iptables !== false,
  };
}
