import { readFile } from 'node:fs/promises';
import { parseComposeYaml } from '../compose/load/parse.js';
import { configError } from '../errors/index.js';
import { imageRefProblem, REFERENCE_FORM } from '../images/reference.js';
import type { BundleDefinition } from './definition.js';

/**
 * The images a bundle's stacks reference (`services.*.image`), in first-seen
 * order. A reference that needs interpolation cannot be resolved at build
 * time without the host's variables, so it must be listed under `images:`;
 * one that is no image reference at all is refused here, as the host's
 * loader would refuse it.
 */
export async function imagesReferencedByStacks(def: BundleDefinition): Promise<string[]> {
  const refs = new Set<string>();
  for (const stack of def.stacks) {
    for (const f of stack.compose) {
      // The host's own compose parser: the same YAML rules, and an alias bomb refused as there.
      const doc = parseComposeYaml(f.name, await readFile(f.path, 'utf8')) as { services?: Record<string, { image?: unknown }> };
      for (const [service, spec] of Object.entries(doc.services ?? {})) {
        const image = spec?.image;
        if (image === undefined) continue;
        if (typeof image !== 'string' || image.includes('$')) {
          throw configError(`${f.name}: services.${service}.image "${String(image)}" is not a plain reference`, {
            subject: f.name,
            hint: `list the image under images: in ${def.file}`,
          });
        }
        const problem = imageRefProblem(image);
        if (problem !== undefined) {
          // docker stack deploy (and airlock's loader on the host) refuses it: no point shipping it.
          throw configError(`${f.name}: services.${service}.image: "${image}" is not a valid image reference (${problem})`, {
            subject: f.name,
            reason: 'compose-image-reference',
            hint: `Write the image as ${REFERENCE_FORM}.`,
          });
        }
        refs.add(image);
      }
    }
  }
  return [...refs];
}
