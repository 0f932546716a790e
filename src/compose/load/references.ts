/**
 * After merging: the implicit `default` network, and the references docker's
 * converter would refuse later ("undefined network", "undefined volume",
 * "undefined secret", "undefined config"), reported while the key path is
 * still at hand.
 */
import type { ComposeConfig } from '../model.js';
import { composeError } from './errors.js';

export const DEFAULT_NETWORK = 'default';

export function attachDefaultNetwork(config: ComposeConfig): void {
  for (const service of config.services) {
    if (Object.keys(service.networks).length === 0) service.networks = { [DEFAULT_NETWORK]: null };
  }
}

export function checkReferences(config: ComposeConfig): void {
  const files = config.files.join(' + ');
  const undefinedRef = (path: string, kind: string, name: string, section: string) =>
    composeError(files, path, `undefined ${kind} "${name}"`, {
      reason: 'compose-undefined-reference',
      hint: `Declare it under the top-level \`${section}:\` key, or fix the name.`,
    });
  for (const s of config.services) {
    const base = `services.${s.name}`;
    for (const net of Object.keys(s.networks)) {
      if (net !== DEFAULT_NETWORK && !Object.hasOwn(config.networks, net)) {
        throw undefinedRef(`${base}.networks.${net}`, 'network', net, 'networks');
      }
    }
    s.volumes.forEach((v, i) => {
      if (v.type === 'volume' && v.source !== undefined && !Object.hasOwn(config.volumes, v.source)) {
        throw undefinedRef(`${base}.volumes[${i}]`, 'volume', v.source, 'volumes');
      }
    });
    s.secrets.forEach((r, i) => {
      if (!Object.hasOwn(config.secrets, r.source)) throw undefinedRef(`${base}.secrets[${i}]`, 'secret', r.source, 'secrets');
    });
    s.configs.forEach((r, i) => {
      if (!Object.hasOwn(config.configs, r.source)) throw undefinedRef(`${base}.configs[${i}]`, 'config', r.source, 'configs');
    });
    const credConfig = s.credential_spec?.config;
    if (credConfig !== undefined && credConfig !== '' && !Object.hasOwn(config.configs, credConfig)) {
      throw undefinedRef(`${base}.credential_spec.config`, 'config', credConfig, 'configs');
    }
  }
}
