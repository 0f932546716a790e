/**
 * Writes a `docker save` style tar from code, because tests have no registry:
 * one layer holding the given files, a config whose rootfs.diff_ids is the
 * layer's sha256, and manifest.json. The image ID the daemon assigns is the
 * sha256 of the config bytes, so tests can predict it.
 */
import { createHash } from 'node:crypto';
import tar from 'tar-stream';

export interface SaveTar {
  tar: Buffer;
  /** `sha256:<hex>` of the config JSON = the image ID. */
  imageId: string;
  /** `sha256:<hex>` of the uncompressed layer tar. */
  diffId: string;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const MTIME = new Date('2024-01-01T00:00:00Z'); // fixed, so the layer is reproducible

export async function packTar(entries: { name: string; data?: Buffer; mode?: number }[]): Promise<Buffer> {
  const pack = tar.pack();
  const done = (async () => {
    const chunks: Buffer[] = [];
    for await (const c of pack) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  })();
  for (const e of entries) {
    if (e.data === undefined) {
      pack.entry({ name: e.name, type: 'directory', mode: e.mode ?? 0o755, mtime: MTIME });
    } else {
      pack.entry({ name: e.name, mode: e.mode ?? 0o644, mtime: MTIME, size: e.data.length }, e.data);
    }
  }
  pack.finalize();
  return done;
}

export function dockerArch(arch: string = process.arch): string {
  return ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' } as Record<string, string>)[arch] ?? arch;
}

export async function buildSaveTar(opts: {
  repoTags: string[];
  files: { name: string; data?: Buffer; mode?: number }[];
  labels?: Record<string, string>;
  cmd?: string[];
}): Promise<SaveTar> {
  const layer = await packTar(opts.files);
  const layerHex = sha256(layer);
  const config = Buffer.from(
    JSON.stringify({
      architecture: dockerArch(),
      os: 'linux',
      created: MTIME.toISOString(),
      config: { Cmd: opts.cmd ?? ['/bin/busybox', 'sh'], Labels: opts.labels ?? {} },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerHex}`] },
      history: [{ created: MTIME.toISOString(), created_by: 'airlock test' }],
    }),
  );
  const configHex = sha256(config);
  const manifest = Buffer.from(
    JSON.stringify([{ Config: `${configHex}.json`, RepoTags: opts.repoTags, Layers: [`${layerHex}/layer.tar`] }]),
  );
  const outer = await packTar([
    { name: `${layerHex}/` },
    { name: `${layerHex}/layer.tar`, data: layer },
    { name: `${configHex}.json`, data: config },
    { name: 'manifest.json', data: manifest },
  ]);
  return { tar: outer, imageId: `sha256:${configHex}`, diffId: `sha256:${layerHex}` };
}
