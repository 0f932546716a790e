/** Engine API types of services and their tasks: the task template (container spec, mounts, secrets, configs, resources, networks), update and endpoint config. */
import type { DriverConfig, Labels, SwarmMeta } from './common.js';

export interface HealthConfig {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  Retries?: number;
  StartPeriod?: number;
  StartInterval?: number;
}

export interface Mount {
  Target?: string;
  Source?: string;
  Type?: 'bind' | 'volume' | 'tmpfs' | 'npipe' | 'cluster';
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: { Propagation?: string; NonRecursive?: boolean; CreateMountpoint?: boolean };
  VolumeOptions?: { NoCopy?: boolean; Labels?: Labels; DriverConfig?: { Name?: string; Options?: Record<string, string> } };
  TmpfsOptions?: { SizeBytes?: number; Mode?: number };
}

export interface FileTarget {
  Name: string;
  UID: string;
  GID: string;
  Mode: number;
}

export interface SecretReference {
  File?: FileTarget;
  SecretID: string;
  SecretName: string;
}

export interface ConfigReference {
  File?: FileTarget;
  Runtime?: Record<string, never>;
  ConfigID: string;
  ConfigName: string;
}

export interface ContainerSpec {
  Image?: string;
  Labels?: Labels;
  Command?: string[];
  Args?: string[];
  Hostname?: string;
  Env?: string[];
  Dir?: string;
  User?: string;
  Groups?: string[];
  Privileges?: Record<string, unknown>;
  TTY?: boolean;
  OpenStdin?: boolean;
  ReadOnly?: boolean;
  Mounts?: Mount[];
  StopSignal?: string;
  StopGracePeriod?: number;
  HealthCheck?: HealthConfig;
  /** The key the Engine API documents and returns on inspect; the daemon's JSON decoding also takes `HealthCheck`, case-insensitively. */
  Healthcheck?: HealthConfig;
  /** API 1.46+. */
  OomScoreAdj?: number;
  Hosts?: string[];
  DNSConfig?: { Nameservers?: string[]; Search?: string[]; Options?: string[] };
  Secrets?: SecretReference[];
  Configs?: ConfigReference[];
  Isolation?: string;
  Init?: boolean | null;
  Sysctls?: Record<string, string>;
  CapabilityAdd?: string[];
  CapabilityDrop?: string[];
  Ulimits?: { Name: string; Soft: number; Hard: number }[];
}

export interface NetworkAttachmentConfig {
  Target: string;
  Aliases?: string[];
  DriverOpts?: Record<string, string>;
}

export interface ResourceSpec {
  NanoCPUs?: number;
  MemoryBytes?: number;
  Pids?: number;
}

export interface TaskSpec {
  ContainerSpec?: ContainerSpec;
  Resources?: { Limits?: ResourceSpec; Reservations?: ResourceSpec & { GenericResources?: unknown[] } };
  RestartPolicy?: { Condition?: 'none' | 'on-failure' | 'any'; Delay?: number; MaxAttempts?: number; Window?: number };
  Placement?: {
    Constraints?: string[];
    Preferences?: { Spread?: { SpreadDescriptor: string } }[];
    MaxReplicas?: number;
    Platforms?: { Architecture?: string; OS?: string }[];
  };
  ForceUpdate?: number;
  Runtime?: string;
  Networks?: NetworkAttachmentConfig[];
  LogDriver?: DriverConfig;
}

export interface UpdateConfig {
  Parallelism?: number;
  Delay?: number;
  FailureAction?: 'continue' | 'pause' | 'rollback';
  Monitor?: number;
  MaxFailureRatio?: number;
  Order?: 'stop-first' | 'start-first';
}

export interface PortConfig {
  Name?: string;
  Protocol?: 'tcp' | 'udp' | 'sctp';
  TargetPort?: number;
  PublishedPort?: number;
  PublishMode?: 'ingress' | 'host';
}

export interface EndpointSpec {
  Mode?: 'vip' | 'dnsrr';
  Ports?: PortConfig[];
}

export interface ServiceSpec {
  Name?: string;
  Labels?: Labels;
  TaskTemplate?: TaskSpec;
  Mode?: {
    Replicated?: { Replicas?: number };
    Global?: Record<string, never>;
    ReplicatedJob?: { MaxConcurrent?: number; TotalCompletions?: number };
    GlobalJob?: Record<string, never>;
  };
  UpdateConfig?: UpdateConfig;
  RollbackConfig?: UpdateConfig;
  /** Deprecated by the API in favour of TaskTemplate.Networks; still read. */
  Networks?: NetworkAttachmentConfig[];
  EndpointSpec?: EndpointSpec;
}

/** A service spec with its name: what a stack's services, and what airlock records of them, always have. */
export type NamedServiceSpec = ServiceSpec & { Name: string };

export interface Service extends SwarmMeta {
  /** The engine names every service (it makes a name up for one created without). */
  Spec: NamedServiceSpec;
  PreviousSpec?: ServiceSpec;
  Endpoint?: {
    Spec?: EndpointSpec;
    Ports?: PortConfig[];
    VirtualIPs?: { NetworkID: string; Addr: string }[];
  };
  UpdateStatus?: {
    State?: 'updating' | 'paused' | 'completed' | 'rollback_started' | 'rollback_paused' | 'rollback_completed';
    StartedAt?: string;
    CompletedAt?: string;
    Message?: string;
  };
  /** Only when listed with `status: true`. */
  ServiceStatus?: { RunningTasks: number; DesiredTasks: number; CompletedTasks?: number };
}

export interface ServiceCreateResponse {
  ID: string;
  Warnings?: string[] | null;
}

export interface ServiceUpdateResponse {
  Warnings?: string[] | null;
}

export type TaskState =
  | 'new'
  | 'allocated'
  | 'pending'
  | 'assigned'
  | 'accepted'
  | 'preparing'
  | 'ready'
  | 'starting'
  | 'running'
  | 'complete'
  | 'shutdown'
  | 'failed'
  | 'rejected'
  | 'remove'
  | 'orphaned';

export interface Task extends SwarmMeta {
  Name?: string;
  Labels?: Labels;
  Spec: TaskSpec;
  ServiceID: string;
  Slot?: number;
  NodeID?: string;
  Status: {
    Timestamp?: string;
    State: TaskState;
    Message?: string;
    Err?: string;
    ContainerStatus?: { ContainerID?: string; PID?: number; ExitCode?: number };
  };
  DesiredState: TaskState;
}
