/**
 * The short volume syntax, `[source:]target[:options]`, read as docker/cli's
 * loader.ParseVolume reads it:
 *
 * - `/data` (or any spec without a source) is an anonymous volume;
 * - a source that starts with `.`, `/` or `~` (or a Windows drive/pipe) is a
 *   bind mount, anything else names a volume;
 * - options are comma-separated: `ro`, `rw`, `nocopy`, and a bind
 *   propagation (`private`, `rprivate`, `shared`, `rshared`, `slave`,
 *   `rslave`); docker ignores any other option, the loader reports them.
 */
import type { ServiceVolume } from '../model.js';

export class VolumeSpecError extends Error {}

const PROPAGATIONS = new Set(['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave']);

export interface ShortVolume {
  volume: ServiceVolume;
  /** Options docker ignores (`z`, `cached`, …). */
  ignoredOptions: string[];
}

function isLetter(c: string | undefined): boolean {
  return c !== undefined && /^\p{L}$/u.test(c);
}

function isFilePath(source: string): boolean {
  const first = source[0];
  if (first === '.' || first === '/' || first === '~') return true;
  const chars = [...source];
  if (chars.length === 1) return false;
  if (source.startsWith('\\\\')) return true; // Windows named pipe
  return isLetter(chars[0]) && chars[1] === ':';
}

export function parseShortVolume(spec: string): ShortVolume {
  const chars = [...spec];
  if (spec.length === 0) throw new VolumeSpecError('invalid empty volume spec');
  if (spec.length <= 2) {
    return { volume: { type: 'volume', target: spec, read_only: false }, ignoredOptions: [] };
  }
  let source = '';
  let target = '';
  let readOnly = false;
  let nocopy = false;
  let propagation: string | undefined;
  const ignored: string[] = [];
  let buffer: string[] = [];
  const END = '\u0000';
  const flush = (sep: string): void => {
    const text = buffer.join('');
    if (buffer.length === 0) throw new VolumeSpecError(`invalid spec: ${spec}: empty section between colons`);
    if (source === '' && sep === END) {
      target = text;
      return;
    }
    if (source === '') {
      source = text;
      return;
    }
    if (target === '') {
      target = text;
      return;
    }
    if (sep === ':') throw new VolumeSpecError(`invalid spec: ${spec}: too many colons`);
    for (const option of text.split(',')) {
      if (option === 'ro') readOnly = true;
      else if (option === 'rw') readOnly = false;
      else if (option === 'nocopy') nocopy = true;
      else if (PROPAGATIONS.has(option)) propagation = option;
      else ignored.push(option);
    }
  };
  for (const c of [...chars, END]) {
    if (c === ':' && buffer.length === 1 && isLetter(buffer[0])) {
      buffer.push(c); // Windows drive letter, `C:`
    } else if (c === ':' || c === END) {
      flush(c);
      buffer = [];
    } else {
      buffer.push(c);
    }
  }
  const type: ServiceVolume['type'] = source !== '' && isFilePath(source) ? 'bind' : 'volume';
  const volume: ServiceVolume = { type, target, read_only: readOnly };
  if (source !== '') volume.source = source;
  if (nocopy) volume.volume = { nocopy: true };
  if (propagation !== undefined) volume.bind = { propagation };
  return { volume, ignoredOptions: ignored };
}
