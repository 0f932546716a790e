/**
 * Service volumes to mounts, as `docker stack deploy` converts them: a named
 * volume becomes `<stack>_<name>` (or its `name:`) with the stack label and
 * its driver, an external one keeps its name and gets no labels, a bind
 * keeps its host path, tmpfs takes its size.
 */
import type { Mount } from '../../docker/types.js';
import type { ServiceConfig, ServiceVolume } from '../model.js';
import type { ConvertContext } from './context.js';
import { compact, nonEmpty, nonEmptyMap, scoped, withStackLabel } from './names.js';

export function convertMounts(ctx: ConvertContext, service: ServiceConfig, path: string): Mount[] | undefined {
  const mounts: Mount[] = [];
  service.volumes.forEach((v, i) => {
    const m = convertMount(ctx, v, `${path}.volumes[${i}]`);
    if (m) mounts.push(m);
  });
  return nonEmpty(mounts);
}

function base(v: ServiceVolume): Mount {
  return compact<Mount>({
    Type: v.type,
    Source: nonEmpty(v.source),
    Target: v.target,
    ReadOnly: v.read_only ? true : undefined,
    Consistency: nonEmpty(v.consistency),
  });
}

/** Options of another mount type on this one: docker refuses the file. */
function incompatible(ctx: ConvertContext, v: ServiceVolume, path: string): boolean {
  const others = (['bind', 'volume', 'tmpfs'] as const).filter((t) => t !== v.type && v[t] !== undefined);
  for (const t of others) ctx.notices.error(`${path}.${t}`, `${t} options are incompatible with type ${v.type}`);
  return others.length > 0;
}

function convertMount(ctx: ConvertContext, v: ServiceVolume, path: string): Mount | undefined {
  if (incompatible(ctx, v, path)) return undefined;
  switch (v.type) {
    case 'volume':
      return volumeMount(ctx, v, path);
    case 'bind':
      if (!v.source) {
        ctx.notices.error(`${path}.source`, 'a bind mount needs a source path on the host');
        return undefined;
      }
      return compact<Mount>({ ...base(v), BindOptions: v.bind ? compact({ Propagation: nonEmpty(v.bind.propagation) }) : undefined });
    case 'tmpfs':
      if (v.source) {
        ctx.notices.error(`${path}.source`, 'a tmpfs mount takes no source');
        return undefined;
      }
      return compact<Mount>({
        ...base(v),
        // Docker converts only the size; airlock also carries the mode the file asks for (a deliberate difference, listed in index.ts).
        TmpfsOptions: v.tmpfs ? compact({ SizeBytes: v.tmpfs.size || undefined, Mode: v.tmpfs.mode || undefined }) : undefined,
      });
    default: {
      const type: string = v.type;
      ctx.notices.error(`${path}.type`, `volume type "${type}" is not supported by Swarm services: use volume, bind or tmpfs`);
      return undefined;
    }
  }
}

function volumeMount(ctx: ConvertContext, v: ServiceVolume, path: string): Mount | undefined {
  const mount = base(v);
  if (!v.source) return mount; // anonymous: a fresh volume per task, no options
  const declared = ctx.config.volumes[v.source];
  if (declared === undefined) {
    ctx.notices.error(`${path}.source`, `undefined volume "${v.source}": declare it under the top-level volumes key`);
    return undefined;
  }
  mount.Source = declared.name || scoped(ctx.stack, v.source);
  mount.VolumeOptions = compact({ NoCopy: v.volume?.nocopy ? true : undefined });
  if (declared.external) return mount;
  mount.VolumeOptions.Labels = withStackLabel(ctx.stack, declared.labels);
  const options = nonEmptyMap(declared.driver_opts);
  if (declared.driver || options) {
    mount.VolumeOptions.DriverConfig = compact({ Name: nonEmpty(declared.driver), Options: options });
  }
  return mount;
}
