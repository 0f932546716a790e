/** Engine API types of secrets and configs (and the bare id answer of a create). */
import type { DriverConfig, Labels, SwarmMeta } from './common.js';

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
