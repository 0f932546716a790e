/** Engine API types of the swarm and its nodes. */
import type { DriverConfig, Labels, SwarmMeta } from './common.js';

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
  CAConfig?: CAConfig;
  EncryptionConfig?: { AutoLockManagers?: boolean };
  TaskDefaults?: { LogDriver?: DriverConfig };
}

/** The swarm's certificate authority settings; other keys (external CAs, a given signing key) are kept as read. */
export interface CAConfig {
  /** Lifetime of the node certificates the CA issues, in nanoseconds (the engine refuses less than 1h). */
  NodeCertExpiry?: number;
  /** Raising it makes the swarm rotate its root CA. */
  ForceRotate?: number;
  [key: string]: unknown;
}

/** The root a node trusts and the issuer of its certificate (ClusterInfo.TLSInfo, Node.Description.TLSInfo). */
export interface TLSInfo {
  /** PEM of the root CA certificate. */
  TrustRoot?: string;
  /** Base64 of the DER subject of the node certificate's issuer. */
  CertIssuerSubject?: string;
  /** Base64 of the DER public key of the node certificate's issuer. */
  CertIssuerPublicKey?: string;
}

export interface JoinTokens {
  Worker: string;
  Manager: string;
}

export interface SwarmInspect extends SwarmMeta {
  Spec: SwarmSpec;
  JoinTokens: JoinTokens;
  TLSInfo?: TLSInfo;
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
  /** The node's availability from the moment it joins (API 1.31+): `pause` keeps tasks off it. */
  Availability?: 'active' | 'pause' | 'drain';
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
    TLSInfo?: TLSInfo;
  };
  Status: { State: 'unknown' | 'down' | 'ready' | 'disconnected'; Message?: string; Addr?: string };
  ManagerStatus?: { Leader?: boolean; Reachability: 'unknown' | 'unreachable' | 'reachable'; Addr: string };
}
