/**
 * The checks the agent makes before it starts, beyond agent.yaml's own:
 * its folders usable and its trust store loadable. `agent --check-config`
 * and a SIGHUP reload run the same checks.
 */
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { AirlockError, configError, isAirlockError } from '../errors/index.js';
import { TrustStore } from '../trust/trust-store.js';
import { loadAgentConfig, type AgentConfig } from './config.js';

/**
 * Reads agent.yaml and makes every check the agent makes before it starts:
 * `agent --check-config` calls this very function, so what it accepts the
 * agent starts with. Beyond agent.yaml's own checks (which include each FTP
 * source's settings): a state or inbox folder that cannot be one, and a trust
 * store that is missing, unsafe to trust or unreadable (an agent that could
 * import nothing, or whatever a local user signs, does not start).
 */
export async function loadStartableConfig(file: string): Promise<AgentConfig> {
  const config = await loadAgentConfig(file);
  await checkFolder(config, 'stateDir', config.stateDir);
  await checkFolder(config, 'inbox.dir', config.inbox.dir);
  await checkTrustStore(config);
  return config;
}

/** The trust store loads as an import would load it: present, safe (src/trust/permissions.ts), its keys and revocation list readable. */
async function checkTrustStore(config: AgentConfig): Promise<void> {
  try {
    await TrustStore.load(config.trustDir, { stateDir: config.stateDir });
  } catch (e) {
    const at = `${config.file}: trustDir: `;
    if (isAirlockError(e)) {
      // The agent's trust dir is named in agent.yaml, not by --trust.
      const hints: Record<string, string> = {
        'no-trust-store': 'put the vendor public keys (*.pub) there, or point trustDir at the folder that has them',
        'not-a-folder': 'point trustDir at the folder of vendor keys',
      };
      const hint = hints[e.reason] ?? e.hint;
      throw new AirlockError(e.kind, at + e.message, { reason: e.reason, cause: e, ...(e.subject === undefined ? {} : { subject: e.subject }), ...(hint === undefined ? {} : { hint }) });
    }
    const code = (e as NodeJS.ErrnoException).code;
    throw configError(`${at}cannot read ${config.trustDir}: ${code ?? (e as Error).message}`, {
      subject: config.trustDir,
      reason: 'bad-config',
      hint: code === 'ENOTDIR' ? 'point trustDir at the folder of vendor keys' : 'the agent runs as its own user (airlock); it must be able to read the trust dir and its keys',
    });
  }
}

/** The folder exists and is writable, or the nearest part of its path that exists is one (the agent makes the rest). */
async function checkFolder(config: AgentConfig, key: string, path: string): Promise<void> {
  for (let p = resolve(path); ; p = dirname(p)) {
    let isDir: boolean;
    try {
      isDir = (await stat(p)).isDirectory();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        if (dirname(p) === p) return;
        continue;
      }
      throw configError(`${config.file}: ${key}: cannot reach ${path}: ${code ?? (e as Error).message}`, { subject: path, reason: 'bad-config', hint: 'the agent runs as its own user (airlock); check the folder and its parents' });
    }
    if (!isDir) {
      throw configError(`${config.file}: ${key}: ${p} is not a folder${p === resolve(path) ? '' : ` (on the way to ${path})`}`, { subject: path, reason: 'bad-config', hint: 'point it at a folder, or remove the file in its way' });
    }
    try {
      await access(p, fsConstants.W_OK);
    } catch {
      throw configError(`${config.file}: ${key}: cannot write in ${p}${p === resolve(path) ? '' : ` (to make ${path})`}`, {
        subject: path,
        reason: 'bad-config',
        hint: 'run --check-config as the agent user (runuser -u airlock --); under systemd a folder outside /var/lib/airlock needs a ReadWritePaths= drop-in (docs/systemd.md)',
      });
    }
    return;
  }
}
