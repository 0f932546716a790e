/** One parsed, interpolated and validated compose file → the model. */
import type { ComposeConfig, ServiceConfig } from '../model.js';
import type { LoadContext } from './context.js';
import { isMapping } from './errors.js';
import { normalizeService } from './normalize-service.js';
import { normalizeFileObjects, normalizeNetworks, normalizeVolumes } from './normalize-top.js';

export async function normalizeFile(ctx: LoadContext, dict: Record<string, unknown>): Promise<ComposeConfig> {
  const services: ServiceConfig[] = [];
  const rawServices = dict['services'];
  if (isMapping(rawServices)) {
    for (const [name, raw] of Object.entries(rawServices)) {
      services.push(await normalizeService(ctx, name, isMapping(raw) ? raw : {}));
    }
  }
  const extensions: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(dict)) {
    if (k.startsWith('x-')) Object.defineProperty(extensions, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return {
    files: [ctx.file],
    services,
    networks: normalizeNetworks(ctx, dict['networks']),
    volumes: normalizeVolumes(ctx, dict['volumes']),
    secrets: normalizeFileObjects(ctx, 'secret', dict['secrets']),
    configs: normalizeFileObjects(ctx, 'config', dict['configs']),
    extensions,
  };
}
