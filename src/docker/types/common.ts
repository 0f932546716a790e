/** Engine API types that every area shares: labels, driver configs, swarm object metadata. */
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
