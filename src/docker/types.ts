/**
 * The parts of the Engine API's objects that airlock reads or writes, named
 * as the API names them (PascalCase) so specs round-trip unchanged. Objects
 * read from the daemon may carry more fields than typed here; they survive a
 * read-modify-write because nothing copies field by field.
 */

export type Labels = Record<string, string>;
export type DriverConfig = { Name: string; Options?: Record<string, string> };

export interface ObjectVersion {
  Index: number;
}

/** Common to swarm objects (nodes, services, tasks, secrets, configs). */
export interface SwarmMeta {
  ID: string;
  Version: ObjectVersion;
  CreatedAt: string;
  UpdatedAt: string;
}

// ---- system

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

// ---- images

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

// ---- swarm and nodes

export interface SwarmSpec {
  Name?: string;
  Labels?: Labels;
  Orchestration?: { TaskHistoryRetentionLimit?: number };
  Raft?: {
    SnapshotInterval?: number;
    KeepOldSnapshots?: number;
    LogEntriesForSlowFollowers?: number;
    ElectionTick?: number;
    HeartbeatTick?: number;
  };
  Dispatcher?: { HeartbeatPeriod?: number };
  CAConfig?: Record<string, unknown>;
  EncryptionConfig?: { AutoLockManagers?: boolean };
  TaskDefaults?: { LogDriver?: DriverConfig };
}

export interface JoinTokens {
  Worker: string;
  Manager: string;
}

export interface SwarmInspect extends SwarmMeta {
  Spec: SwarmSpec;
  JoinTokens: JoinTokens;
  RootRotationInProgress?: boolean;
  DataPathPort?: number;
  DefaultAddrPool?: string[];
  SubnetSize?: number;
}

export interface SwarmInitRequest {
  ListenAddr?: string;
  AdvertiseAddr?: string;
  DataPathAddr?: string;
  DataPathPort?: number;
  DefaultAddrPool?: string[];
  SubnetSize?: number;
  ForceNewCluster?: boolean;
  Spec?: SwarmSpec;
}

export interface SwarmJoinRequest {
  ListenAddr?: string;
  AdvertiseAddr?: string;
  DataPathAddr?: string;
  RemoteAddrs: string[];
  JoinToken: string;
}

export interface NodeSpec {
  Name?: string;
  Labels?: Labels;
  Role?: 'worker' | 'manager';
  Availability?: 'active' | 'pause' | 'drain';
}

export interface SwarmNode extends SwarmMeta {
  Spec: NodeSpec;
  Description?: {
    Hostname?: string;
    Platform?: { Architecture?: string; OS?: string };
    Resources?: { NanoCPUs?: number; MemoryBytes?: number };
    Engine?: { EngineVersion?: string; Labels?: Labels };
  };
  Status: { State: 'unknown' | 'down' | 'ready' | 'disconnected'; Message?: string; Addr?: string };
  ManagerStatus?: { Leader?: boolean; Reachability: 'unknown' | 'unreachable' | 'reachable'; Addr: string };
}

// ---- services and tasks

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

export interface Service extends SwarmMeta {
  Spec: ServiceSpec;
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

// ---- networks

export interface IpamConfig {
  Subnet?: string;
  IPRange?: string;
  Gateway?: string;
  AuxiliaryAddresses?: Record<string, string>;
}

export interface NetworkCreateRequest {
  Name: string;
  CheckDuplicate?: boolean;
  Driver?: string;
  Scope?: 'swarm' | 'global' | 'local';
  Internal?: boolean;
  Attachable?: boolean;
  Ingress?: boolean;
  EnableIPv6?: boolean;
  IPAM?: { Driver?: string; Config?: IpamConfig[]; Options?: Record<string, string> };
  Options?: Record<string, string>;
  Labels?: Labels;
}

export interface Network {
  Name: string;
  Id: string;
  Created: string;
  Scope: string;
  Driver: string;
  EnableIPv6: boolean;
  IPAM: { Driver: string; Config: IpamConfig[] | null; Options: Record<string, string> | null };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  Options: Record<string, string> | null;
  Labels: Labels | null;
}

export interface NetworkCreateResponse {
  Id: string;
  Warning?: string;
}

// ---- secrets and configs

export interface SecretSpec {
  Name: string;
  Labels?: Labels;
  /** Base64 in the API; a Uint8Array is encoded for you on create. */
  Data?: string;
  Driver?: DriverConfig;
  Templating?: DriverConfig;
}

export interface Secret extends SwarmMeta {
  Spec: Omit<SecretSpec, 'Data'>;
}

export interface ConfigSpec {
  Name: string;
  Labels?: Labels;
  /** Base64; returned on inspect (configs are not secret). */
  Data?: string;
  Templating?: DriverConfig;
}

export interface Config extends SwarmMeta {
  Spec: ConfigSpec;
}

export interface IdResponse {
  ID: string;
}
