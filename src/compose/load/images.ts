/**
 * The check `docker stack deploy` makes once the files are loaded and
 * merged, before it touches the engine: every service's image must be an
 * image reference (docker's ParseAnyReference). Interpolation is the usual
 * way to break one (`example/app:${TAG-:latest}` with TAG unset gives
 * `example/app::latest`), so the error names the file that set the image,
 * the value, what was written and each variable in it.
 */
import { imageRefProblem, REFERENCE_FORM } from '../../images/reference.js';
import type { ComposeConfig } from '../model.js';
import { composeError, isMapping } from './errors.js';
import { templateVariables, type Lookup } from './template.js';

/** One compose file as parsed, before interpolation. */
export interface ParsedFile {
  name: string;
  raw: Record<string, unknown>;
}

function writtenImage(file: ParsedFile, service: string): string | undefined {
  const services = file.raw['services'];
  const spec = isMapping(services) ? services[service] : undefined;
  const image = isMapping(spec) ? spec['image'] : undefined;
  return typeof image === 'string' ? image : undefined;
}

function describeVariable(name: string, lookup: Lookup): string {
  const value = lookup(name);
  if (value === undefined) return `${name} unset`;
  return value === '' ? `${name} empty` : `${name}=${JSON.stringify(value)}`;
}

/** `files` in merge order; the last one that sets a service's image is where its value came from. */
export function checkImageReferences(config: ComposeConfig, files: ParsedFile[], lookup: Lookup): void {
  for (const service of config.services) {
    if (service.image === undefined) continue; // no image at all: the converter says a Swarm service needs one
    const problem = service.image === '' ? 'no image specified' : imageRefProblem(service.image);
    if (problem === undefined) continue;
    const file = files.findLast((f) => writtenImage(f, service.name) !== undefined) ?? files[files.length - 1]!;
    const written = writtenImage(file, service.name) ?? service.image;
    const variables = templateVariables(written);
    const origin = written === service.image ? '' : `; it is written "${written}"${variables.length ? `, with ${variables.map((v) => describeVariable(v, lookup)).join(', ')}` : ''}`;
    throw composeError(file.name, ['services', service.name, 'image'], `"${service.image}" is not a valid image reference (${problem})${origin}`, {
      reason: 'compose-image-reference',
      hint: variables.length
        ? `Set ${variables.join(', ')} (or fix the default in the file) so that the image reads ${REFERENCE_FORM}.`
        : `Write the image as ${REFERENCE_FORM}.`,
    });
  }
}
