/**
 * Where a bundle's files appear to the host's compose loader: its working
 * folder, so a relative `file:` or `env_file:` names a bundle file by its
 * path in the bundle. A view of the content store, never extracted.
 * src/apply/bundle-files.ts exports the same constant; the builder reads it
 * from here so that a build does not load the whole compose loader.
 */
export const BUNDLE_ROOT = '/airlock-bundle';
