/**
 * The Docker Engine of a bundle definition (`engine:`) as the manifest
 * records it: each file one blob of kind `engine-file`, and the record that
 * says what the host needs (platform, C library). The static form takes
 * exactly Docker's eight binaries and refuses anything else in the archive;
 * the package form takes .deb files and their own fields.
 */
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { AirlockError, configError, notFound } from '../errors/index.js';
import type { BlobCollector } from './blob-collector.js';
import { debFields } from './deb-fields.js';
import type { EngineSource } from './definition.js';
import { compareGlibc, ElfScanner, libcOf, NotElf, type ElfFacts } from './elf.js';
import { STATIC_ENGINE_FILES, type EngineFileRecord, type EngineLibc, type EngineRecord, type StaticEngineFile } from './manifest-format.js';
import { pipe } from './tar-entries.js';

/** Docker's static archive puts its binaries under this folder. */
const STATIC_FOLDER = 'docker';
const STATIC_FILES: readonly string[] = STATIC_ENGINE_FILES;
const BINARY_MODE = 0o755;
const PACKAGE_MODE = 0o644;

/** Gathers the engine's files into `work` and returns its record. */
export async function collectEngine(source: EngineSource, work: BlobCollector): Promise<EngineRecord> {
  return 'static' in source ? collectStatic(source.version, source.static, work) : collectPackages(source.version, source.packages, work);
}

interface Binary {
  record: EngineFileRecord;
  facts: ElfFacts;
}

/** What one entry of a static archive (or folder) is: one of the eight, the docker/ folder itself, or a refusal. */
function classify(where: string, name: string, type: 'file' | 'directory' | 'symlink' | 'link' | 'other'): StaticEngineFile | null {
  const path = name.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  if (type === 'directory' && (path === STATIC_FOLDER || path === '' || path === '.')) return null;
  const inside = path.startsWith(`${STATIC_FOLDER}/`) ? path.slice(STATIC_FOLDER.length + 1) : null;
  const known = inside !== null && STATIC_FILES.includes(inside);
  if (type === 'symlink' || type === 'link') {
    throw refusal('engine-link-entry', `${where}: ${name} is a ${type === 'symlink' ? 'symbolic' : 'hard'} link; an engine archive holds the binaries themselves`);
  }
  if (type === 'file' && known) return inside as StaticEngineFile;
  const what = type === 'directory' ? 'the folder' : type === 'file' ? 'the file' : 'the special file';
  const why = inside === null ? `is outside ${STATIC_FOLDER}/` : type === 'file' ? 'is not one of the engine\'s binaries' : `is not a regular file`;
  throw refusal('engine-unexpected-file', `${where}: ${what} ${name} ${why}; Docker's static archive holds exactly ${STATIC_FOLDER}/{${STATIC_FILES.join(',')}}`);
}

const refusal = (reason: string, message: string, subject?: string) =>
  configError(message, {
    reason,
    ...(subject ? { subject } : {}),
    hint: "take Docker's static archive as it comes (docker-X.Y.Z.tgz), or a folder holding only docker/ with its eight binaries",
  });

async function collectStatic(version: string, path: string, work: BlobCollector): Promise<EngineRecord> {
  const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw notFound(`engine static archive not found: ${path}`, { subject: path });
    throw e;
  });
  const binaries = info.isDirectory() ? await staticFromFolder(path, work) : await staticFromArchive(path, work);
  const missing = STATIC_FILES.filter((f) => !binaries.has(f));
  if (missing.length > 0) {
    throw refusal('engine-missing-file', `${path} lacks ${missing.map((f) => `${STATIC_FOLDER}/${f}`).join(', ')}: an engine needs all eight of Docker's binaries`, path);
  }
  const dockerd = binaries.get('dockerd')!;
  for (const [name, b] of binaries) {
    if (b.facts.architecture !== dockerd.facts.architecture) {
      throw refusal('engine-mixed-architectures', `${path}: ${STATIC_FOLDER}/${name} is for ${b.facts.architecture}, ${STATIC_FOLDER}/dockerd for ${dockerd.facts.architecture}`, path);
    }
  }
  return {
    version,
    form: 'static',
    platform: { os: 'linux', architecture: dockerd.facts.architecture },
    libc: libcOfBinaries(path, binaries),
    files: [...binaries.values()].map((b) => b.record).sort((a, b) => (a.path < b.path ? -1 : 1)),
  };
}

/** One libc for the whole set: none (all static), glibc at the newest version any binary names, or musl. */
function libcOfBinaries(where: string, binaries: Map<string, Binary>): EngineLibc {
  const kinds = new Map<string, string>();
  let minimum = '2.0';
  for (const [name, b] of binaries) {
    const kind = libcOf(b.facts.interpreter);
    if (kind === 'unknown') throw refusal('engine-unknown-libc', `${where}: ${STATIC_FOLDER}/${name} asks for the program interpreter ${b.facts.interpreter}, which is neither glibc's nor musl's`, where);
    if (kind === 'static') continue;
    kinds.set(kind, name);
    if (kind === 'glibc' && b.facts.glibc !== null && compareGlibc(b.facts.glibc, minimum) > 0) minimum = b.facts.glibc;
  }
  if (kinds.size > 1) throw refusal('engine-mixed-libc', `${where}: ${STATIC_FOLDER}/${kinds.get('glibc')} is linked against glibc, ${STATIC_FOLDER}/${kinds.get('musl')} against musl`, where);
  if (kinds.has('glibc')) return { kind: 'glibc', minimum };
  if (kinds.has('musl')) return { kind: 'musl' };
  return { kind: 'static' };
}

/** Adds one binary's bytes to `work` while its ELF facts are read from them: one pass, nothing held whole. */
async function addBinary(where: string, name: StaticEngineFile, source: AsyncIterable<Buffer>, work: BlobCollector): Promise<Binary> {
  const scanner = new ElfScanner();
  const { digest, size } = await work.add(
    'engine-file',
    Readable.from(
      (async function* () {
        for await (const chunk of source) {
          scanner.update(chunk);
          yield chunk;
        }
      })(),
    ),
  );
  try {
    return { record: { path: name, digest, size, mode: BINARY_MODE }, facts: scanner.finish() };
  } catch (e) {
    if (e instanceof NotElf) throw refusal('engine-not-elf', `${where}: ${STATIC_FOLDER}/${name} ${e.message}`, where);
    throw e;
  }
}

function noteOnce(where: string, seen: Map<string, Binary>, name: StaticEngineFile): void {
  if (seen.has(name)) throw refusal('engine-unexpected-file', `${where}: ${STATIC_FOLDER}/${name} is in the archive twice`, where);
}

async function staticFromArchive(path: string, work: BlobCollector): Promise<Map<string, Binary>> {
  const binaries = new Map<string, Binary>();
  const extract = tar.extract();
  const feeding = pipe(createReadStream(path, { highWaterMark: 1024 * 1024 }), createGunzip(), extract);
  feeding.catch(() => undefined);
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const type = h.type === 'file' || h.type === 'contiguous-file' ? 'file' : h.type === 'directory' || h.type === 'symlink' || h.type === 'link' ? h.type : 'other';
      const name = classify(path, h.name, type);
      if (name === null) {
        entry.resume();
        continue;
      }
      noteOnce(path, binaries, name);
      binaries.set(name, await addBinary(path, name, entry as AsyncIterable<Buffer>, work));
    }
    await feeding;
  } catch (e) {
    extract.destroy();
    if (e instanceof AirlockError) throw e;
    throw configError(`${path} is not a gzip-compressed tar archive it can read: ${(e as Error).message}`, {
      reason: 'engine-bad-archive',
      subject: path,
      hint: "static: takes Docker's static archive (docker-X.Y.Z.tgz) as downloaded, or a folder holding docker/",
    });
  }
  return binaries;
}

async function staticFromFolder(dir: string, work: BlobCollector): Promise<Map<string, Binary>> {
  const folder = join(dir, STATIC_FOLDER);
  const entries = await readdir(folder, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') throw refusal('engine-missing-file', `${dir} holds no ${STATIC_FOLDER}/ folder: give Docker's static archive, or a folder holding ${STATIC_FOLDER}/`, dir);
    throw e;
  });
  const binaries = new Map<string, Binary>();
  for (const d of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const type = d.isFile() ? 'file' : d.isDirectory() ? 'directory' : d.isSymbolicLink() ? 'symlink' : 'other';
    const name = classify(dir, `${STATIC_FOLDER}/${d.name}`, type);
    if (name === null) continue;
    binaries.set(name, await addBinary(dir, name, createReadStream(join(folder, d.name), { highWaterMark: 1024 * 1024 }), work));
  }
  return binaries;
}

/** Debian's architecture names → Docker's (GOARCH). */
const DEB_ARCHITECTURES: Record<string, string> = { amd64: 'amd64', arm64: 'arm64', armhf: 'arm', armel: 'arm', i386: '386', ppc64el: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' };

const packageRefusal = (reason: string, message: string, subject: string) =>
  configError(message, { reason, subject, hint: 'packages: takes the .deb files of one architecture (and arch all), each package once: what apt-get install --download-only fetches' });

async function collectPackages(version: string, sources: string[], work: BlobCollector): Promise<EngineRecord> {
  const files: string[] = [];
  for (const src of sources) {
    const info = await stat(src).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw notFound(`engine package not found: ${src}`, { subject: src });
      throw e;
    });
    if (!info.isDirectory()) files.push(src);
    else for (const name of (await readdir(src)).sort()) files.push(join(src, name));
  }
  if (files.length === 0) throw packageRefusal('engine-missing-file', `${sources.join(', ')} holds no .deb file`, sources[0]!);
  const records: EngineFileRecord[] = [];
  for (const file of files) {
    const path = basename(file);
    if (!path.endsWith('.deb') || !(await stat(file)).isFile()) {
      throw packageRefusal('engine-not-a-package', `${file} is not a .deb file; packages: takes Debian packages only`, file);
    }
    const other = records.find((r) => r.path === path);
    if (other) throw packageRefusal('engine-unexpected-file', `${file}: a package file named ${path} is given twice`, file);
    const pkg = await debFields(file);
    const same = records.find((r) => r.package!.name === pkg.name);
    if (same) throw packageRefusal('engine-unexpected-file', `${file}: package ${pkg.name} is given twice (${same.package!.version} in ${same.path}, ${pkg.version} here)`, file);
    const { digest, size } = await work.add('engine-file', createReadStream(file, { highWaterMark: 1024 * 1024 }));
    records.push({ path, digest, size, mode: PACKAGE_MODE, package: pkg });
  }
  const native = records.filter((r) => r.package!.architecture !== 'all');
  const architectures = [...new Set(native.map((r) => r.package!.architecture))];
  if (architectures.length !== 1) {
    const message =
      architectures.length === 0
        ? `${sources.join(', ')}: every package is for architecture all, so none carries the engine's binaries`
        : `${sources.join(', ')}: the packages are for several architectures: ${architectures.map((a) => `${a} (${native.find((r) => r.package!.architecture === a)!.path})`).join(', ')}`;
    throw packageRefusal('engine-mixed-architectures', message, sources[0]!);
  }
  const deb = architectures[0]!;
  return {
    version,
    form: 'deb',
    platform: { os: 'linux', architecture: DEB_ARCHITECTURES[deb] ?? deb },
    libc: { kind: 'distribution' },
    files: records.sort((a, b) => (a.path < b.path ? -1 : 1)),
  };
}
