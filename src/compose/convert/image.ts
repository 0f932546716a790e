/**
 * The image a service runs, as docker's client sends it: the compose value
 * parsed as a normalised reference, given the `latest` tag when it names
 * neither tag nor digest, and printed in its short ("familiar") form:
 * `docker.io/library/busybox` → `busybox:latest`. A value that is not a
 * named reference (a bare image id) is sent as written, as docker does;
 * the loader has already refused anything that is no reference at all. The
 * service label `com.docker.stack.image` keeps the value as written.
 */
import { familiarString, parseNamedRef } from '../../images/reference.js';

/** What docker's client puts in ContainerSpec.Image for `image`. */
export function serviceImage(image: string): string {
  const parsed = parseNamedRef(image);
  if ('problem' in parsed) return image;
  const { ref } = parsed;
  return familiarString(ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: 'latest' } : ref);
}
