/** Engine API types of images: inspect, list, delete. */
import type { Labels } from './common.js';
import type { HealthConfig } from './services.js';

export interface ImageInspect {
  Id: string;
  /** The containerd image store's descriptor of the image (its manifest or index); API 1.46+. */
  Descriptor?: { mediaType: string; digest: string; size: number };
  RepoTags: string[];
  RepoDigests: string[];
  Parent?: string;
  Created: string;
  Size: number;
  Architecture: string;
  Variant?: string;
  Os: string;
  Config?: {
    Cmd?: string[] | null;
    Entrypoint?: string[] | null;
    Env?: string[] | null;
    Labels?: Labels | null;
    WorkingDir?: string;
    User?: string;
    ExposedPorts?: Record<string, object> | null;
    Volumes?: Record<string, object> | null;
    Healthcheck?: HealthConfig;
  };
  RootFS: { Type: string; Layers?: string[] };
}

export interface ImageSummary {
  Id: string;
  ParentId: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  Created: number;
  Size: number;
  SharedSize: number;
  Labels: Labels | null;
  Containers: number;
}

export interface ImageDeleteItem {
  Untagged?: string;
  Deleted?: string;
}
