/** Engine API types of the system: GET /version and GET /info. */
import type { ObjectVersion } from './common.js';
import type { SwarmSpec } from './swarm.js';

export interface VersionInfo {
  Version: string;
  ApiVersion: string;
  MinAPIVersion?: string;
  Os: string;
  Arch: string;
  KernelVersion?: string;
  GitCommit?: string;
  GoVersion?: string;
  BuildTime?: string;
  Components?: { Name: string; Version: string; Details?: Record<string, string> }[];
}

export type LocalNodeState = 'inactive' | 'pending' | 'active' | 'error' | 'locked' | '';

export interface SystemInfo {
  ID: string;
  Name: string;
  ServerVersion: string;
  OperatingSystem: string;
  OSType: string;
  Architecture: string;
  NCPU: number;
  MemTotal: number;
  DockerRootDir: string;
  Driver: string;
  /** Pairs such as ["driver-type", "io.containerd.snapshotter.v1"] on the containerd image store. */
  DriverStatus?: [string, string][] | null;
  Images: number;
  Containers: number;
  Swarm: {
    NodeID: string;
    NodeAddr: string;
    LocalNodeState: LocalNodeState;
    ControlAvailable: boolean;
    Error: string;
    RemoteManagers: { NodeID: string; Addr: string }[] | null;
    Nodes?: number;
    Managers?: number;
    Cluster?: { ID: string; Version: ObjectVersion; Spec: SwarmSpec };
  };
}
