/**
 * A service's `volumes`: the short syntax expanded as ParseVolume does, the
 * long syntax checked, and a bind source resolved against the working
 * folder (and `~` against HOME), as docker/cli's loader does.
 */
import { posix } from 'node:path';
import type { ServiceVolume } from '../model.js';
import { absPath, fail, type LoadContext, optionalString, warn, warnLeftovers } from './context.js';
import type { KeyPath } from '../../config/key-path.js';
import { isMapping } from './errors.js';
import { ramInBytes } from './units.js';
import { parseShortVolume, VolumeSpecError } from './volumes.js';

/** docker/cli windows_path.go: `C:\…`, `C:/…` or `\\server\…` count as absolute too. */
function isWindowsAbs(p: string): boolean {
  return /^[a-zA-Z]:[\\/]/.test(p) || p.startsWith('\\\\');
}

export function volumes(ctx: LoadContext, path: KeyPath, value: unknown, unsupported: string[]): ServiceVolume[] {
  if (!Array.isArray(value)) return [];
  return value.map((entry, i) => {
    const at: KeyPath = [...path, i];
    let volume: ServiceVolume;
    if (typeof entry === 'string') {
      try {
        const parsed = parseShortVolume(entry);
        for (const option of parsed.ignoredOptions) {
          warn(ctx, at, `volume option "${option}" ignored: docker stack deploy does not use it`, unsupported);
        }
        volume = parsed.volume;
      } catch (e) {
        if (e instanceof VolumeSpecError) throw fail(ctx, at, e.message, 'The short syntax is [source:]target[:ro|rw], e.g. "./data:/data:ro".');
        throw e;
      }
    } else if (isMapping(entry)) {
      volume = longVolume(ctx, at, entry, unsupported);
    } else {
      throw fail(ctx, at, 'must be a string or a mapping');
    }
    if (volume.type === 'bind') {
      if (volume.source === undefined || volume.source === '') {
        throw fail(ctx, at, 'invalid mount config for type "bind": field Source must not be empty');
      }
      let src = volume.source;
      if (src.startsWith('~')) {
        const home = ctx.lookup('HOME');
        if (home === undefined) warn(ctx, at, "cannot expand '~', because the environment lacks HOME");
        else src = home + src.slice(1);
      }
      if (!posix.isAbsolute(src) && !isWindowsAbs(src)) src = absPath(ctx.workingDir, src);
      volume.source = src;
    }
    return volume;
  });
}

function longVolume(ctx: LoadContext, at: KeyPath, entry: Record<string, unknown>, unsupported: string[]): ServiceVolume {
  const type = String(entry['type']);
  if (type !== 'volume' && type !== 'bind' && type !== 'tmpfs') {
    throw fail(ctx, [...at, 'type'], `type "${type}" is not supported here`, 'Use volume, bind or tmpfs.');
  }
  const target = optionalString(entry['target']);
  if (target === undefined || target === '') throw fail(ctx, [...at, 'target'], 'is required');
  const volume: ServiceVolume = { type, target, read_only: entry['read_only'] === true };
  const source = optionalString(entry['source']);
  if (source !== undefined && source !== '') volume.source = source;
  const consistency = optionalString(entry['consistency']);
  if (consistency !== undefined) volume.consistency = consistency;
  const bind = entry['bind'];
  if (isMapping(bind)) {
    const propagation = optionalString(bind['propagation']);
    volume.bind = propagation === undefined ? {} : { propagation };
    if (bind['create_host_path'] !== undefined) {
      warn(ctx, [...at, 'bind', 'create_host_path'], 'ignored: swarm never creates the host path; it must exist on every node', unsupported);
    }
    warnLeftovers(ctx, bind, ['propagation', 'create_host_path'], [...at, 'bind'], unsupported);
  }
  const vol = entry['volume'];
  if (isMapping(vol)) {
    volume.volume = typeof vol['nocopy'] === 'boolean' ? { nocopy: vol['nocopy'] } : {};
    warnLeftovers(ctx, vol, ['nocopy'], [...at, 'volume'], unsupported);
  }
  const tmpfs = entry['tmpfs'];
  if (isMapping(tmpfs)) {
    volume.tmpfs = {};
    const size = tmpfs['size'];
    if (typeof size === 'number') volume.tmpfs.size = size;
    else if (typeof size === 'string') {
      const bytes = ramInBytes(size);
      if (bytes === undefined) throw fail(ctx, [...at, 'tmpfs', 'size'], `invalid size: '${size}'`, 'Write a size such as 64m or 1g.');
      volume.tmpfs.size = bytes;
    }
    if (typeof tmpfs['mode'] === 'number') volume.tmpfs.mode = tmpfs['mode'];
    warnLeftovers(ctx, tmpfs, ['size', 'mode'], [...at, 'tmpfs'], unsupported);
  }
  warnLeftovers(ctx, entry, ['type', 'source', 'target', 'read_only', 'consistency', 'bind', 'volume', 'tmpfs'], at, unsupported);
  return volume;
}
