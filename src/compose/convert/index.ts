/**
 * The compose-to-Swarm converter: a pure function from the loaded compose
 * model to the API objects `docker stack deploy` would create, one concern
 * per file (networks, mounts, secrets and configs, deploy settings,
 * container settings, the service itself, names and labels). It talks to no
 * engine; the deployer creates what it returns.
 *
 * Where airlock differs from docker on purpose:
 * - Secrets and configs are named by content (`<stack>_<name>-<10 hex>`,
 *   keyed on a host) and labelled `com.docker.stack.airlock.logical-name`, since
 *   Swarm cannot change them in place (see objects.ts).
 * - tmpfs `mode`, which docker's compose schema accepts but its converter
 *   drops, is carried to TmpfsOptions.Mode.
 * - Keys docker's compose schema refuses but the Engine API takes are
 *   carried: `dns_opt` (DNSConfig.Options), IPAM gateway, ip_range,
 *   aux_addresses and options.
 * - Fields the negotiated API version cannot carry are left out with a
 *   warning (see api-version.ts), where docker's daemon drops them silently.
 * - Settings docker ignores without a word (restart next to
 *   deploy.restart_policy, a service network's fixed address, an extra_hosts
 *   entry without a colon) get a warning.
 */
import type { ConfigSpec, NetworkCreateRequest, SecretSpec } from '../../docker/types.js';
import type { ComposeConfig, ComposeNotice } from '../model.js';
import type { ConvertContext } from './context.js';
import { convertNetworks } from './networks.js';
import { Notices } from './notices.js';
import { convertConfigs, convertSecrets, type FileObjectReader } from './objects.js';
import { type ConvertedService, convertService } from './service.js';

export interface ConvertInput extends FileObjectReader {
  /** The stack (namespace) name: objects are called `<stack>_<name>`. */
  stack: string;
  config: ComposeConfig;
  /** The Engine API version negotiated with the manager, e.g. `1.41`. */
  apiVersion: string;
}

export interface ConvertedStack {
  /** Networks to create, in name order. Each has Driver (default overlay) and the namespace label. */
  networks: NetworkCreateRequest[];
  /** Secrets to create (external ones are not here). */
  secrets: SecretSpec[];
  /** Configs to create (external ones are not here). */
  configs: ConfigSpec[];
  /** One spec per compose service, in the model's order. SecretID/ConfigID are empty: see bindObjectIds. */
  services: ConvertedService[];
  /** Warnings and errors by compose key path. Do not deploy when any has level `error`. */
  notices: ComposeNotice[];
  /** Engine name of each created secret and config → the file its data came from. */
  objectFiles: Map<string, string>;
  /** What the stack uses but does not create, by engine name: it must exist before deploy. */
  external: { networks: string[]; secrets: string[]; configs: string[] };
}

/** A stack name must make valid Swarm object names once prefixed; refused here rather than by the engine halfway through. */
const STACK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function convertStack(input: ConvertInput): ConvertedStack {
  const { stack, config, apiVersion } = input;
  const notices = new Notices(config.files.length === 1 ? config.files[0] : undefined);
  if (!STACK_NAME.test(stack)) notices.error('stack', `invalid stack name "${stack}": use letters, digits, _, . and -`);

  const networks = convertNetworks(stack, config, apiVersion);
  const secrets = convertSecrets(stack, config.secrets, input, notices);
  const configs = convertConfigs(stack, config.configs, input, notices);
  const ctx: ConvertContext = { stack, config, apiVersion, notices, secrets: secrets.names, configs: configs.names };
  const services = config.services.map((s) => convertService(ctx, s));

  const externalNames = (objects: ComposeConfig['secrets']) =>
    Object.entries(objects)
      .filter(([, o]) => o.external)
      .map(([key, o]) => o.name || key);
  return {
    networks: networks.create,
    secrets: secrets.specs,
    configs: configs.specs,
    services,
    notices: notices.list,
    objectFiles: new Map([...secrets.files, ...configs.files]),
    external: { networks: networks.external, secrets: externalNames(config.secrets), configs: externalNames(config.configs) },
  };
}

export { bindObjectIds, type ObjectIds } from './references.js';
export { contentName, unkeyedSuffix, type NameSuffix } from './objects.js';
export { serviceImage } from './image.js';
export { SERVICE_GATES, compareVersions } from './api-version.js';
export type { ConvertedService } from './service.js';
