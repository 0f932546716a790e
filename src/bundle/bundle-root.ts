/**
 * Where a bundle's files appear to the host's compose loader: its working
 * folder, so a relative `file:` or `env_file:` names a bundle file by its
 * path in the bundle. A view of the content store, never extracted.
 * Its own module, so that a build reads it without loading the apply side.
 */
export const BUNDLE_ROOT = '/airlock-bundle';
