/**
 * An image as a bundle's manifest records it (docs/bundle-format.md): what
 * the image code loads, finds and matches to a host's platform. It lives with
 * the images so that they need nothing of the bundle format.
 */
export interface LayerRecord {
  digest: string;
  size: number;
  mediaType: string;
  diffId: string;
}

export interface ImageRecord {
  /** Repository tags, e.g. `demo/web:1.0`. */
  refs: string[];
  /** The image id Docker reports: the digest of the config blob. */
  id: string;
  config: { digest: string; size: number };
  /** An OCI image manifest blob, so a load archive carries an `index.json`. */
  manifest: { digest: string; size: number };
  layers: LayerRecord[];
  /**
   * v2 with `requires: ["platforms"]` only, and on every image there: the
   * platform this variant runs on, normalised (`linux/amd64`, `linux/arm/v7`).
   * A ref may then name one image per platform.
   */
  platform?: string;
}
