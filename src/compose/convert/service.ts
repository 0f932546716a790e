/** One compose service to one Swarm service spec, as `docker stack deploy` builds it. */
import type { ContainerSpec, ServiceSpec, TaskSpec } from '../../docker/types.js';
import type { ServiceConfig } from '../model.js';
import { SERVICE_GATES } from './api-version.js';
import { type ConvertContext, allowed, durationAt } from './context.js';
import {
  convertDnsConfig,
  convertEnvironment,
  convertExtraHosts,
  convertHealthcheck,
  convertLogDriver,
  convertUlimits,
  effectiveCapabilities,
} from './container.js';
import {
  convertEndpointSpec,
  convertMode,
  convertPlacement,
  convertResources,
  convertRestartPolicy,
  convertUpdateConfig,
} from './deploy.js';
import { serviceImage } from './image.js';
import { convertMounts } from './mounts.js';
import { IMAGE_LABEL } from '../labels.js';
import { compact, nonEmpty, nonEmptyMap, scoped, withStackLabel } from './names.js';
import { convertServiceNetworks } from './networks.js';
import { convertConfigRefs, convertSecretRefs } from './objects.js';

export type ConvertedService = ServiceSpec & { Name: string };

export function convertService(ctx: ConvertContext, service: ServiceConfig): ConvertedService {
  const path = `services.${service.name}`;
  if (!service.image) ctx.notices.error(`${path}.image`, 'a service deployed to Swarm needs an image');
  const caps = effectiveCapabilities(
    service.cap_add.length > 0 && allowed(ctx, path, SERVICE_GATES.capAdd) ? service.cap_add : [],
    service.cap_drop.length > 0 && allowed(ctx, path, SERVICE_GATES.capDrop) ? service.cap_drop : [],
  );
  const ulimits = Object.keys(service.ulimits).length > 0 && allowed(ctx, path, SERVICE_GATES.ulimits) ? service.ulimits : {};
  const sysctls = Object.keys(service.sysctls).length > 0 && allowed(ctx, path, SERVICE_GATES.sysctls) ? service.sysctls : {};
  const init = service.init !== undefined && allowed(ctx, path, SERVICE_GATES.init) ? service.init : undefined;
  const oomScoreAdj =
    service.oom_score_adj !== undefined && allowed(ctx, path, SERVICE_GATES.oomScoreAdj) ? service.oom_score_adj : undefined;

  const container = compact<ContainerSpec>({
    Image: service.image ? serviceImage(service.image) : undefined,
    Labels: withStackLabel(ctx.stack, service.labels),
    Command: nonEmpty(service.entrypoint),
    Args: nonEmpty(service.command),
    Hostname: nonEmpty(service.hostname),
    Env: convertEnvironment(service.environment),
    Dir: nonEmpty(service.working_dir),
    User: nonEmpty(service.user),
    // Docker always sends an empty Privileges; the engine reads it back in this shape.
    Privileges: { CredentialSpec: null, SELinuxContext: null },
    Init: init,
    StopSignal: nonEmpty(service.stop_signal),
    TTY: service.tty ? true : undefined,
    OpenStdin: service.stdin_open ? true : undefined,
    ReadOnly: service.read_only ? true : undefined,
    Mounts: convertMounts(ctx, service, path),
    StopGracePeriod: durationAt(ctx, `${path}.stop_grace_period`, service.stop_grace_period),
    Healthcheck: convertHealthcheck(ctx, service.healthcheck, path),
    Hosts: convertExtraHosts(ctx, service.extra_hosts, path),
    DNSConfig: convertDnsConfig(service),
    Secrets: nonEmpty(convertSecretRefs(ctx, service.secrets, path)),
    Configs: nonEmpty(convertConfigRefs(ctx, service.configs, path)),
    Sysctls: nonEmptyMap(sysctls),
    CapabilityAdd: nonEmpty(caps.add),
    CapabilityDrop: nonEmpty(caps.drop),
    Ulimits: convertUlimits(ulimits),
    OomScoreAdj: oomScoreAdj || undefined,
  });

  const task = compact<TaskSpec>({
    ContainerSpec: container,
    Resources: convertResources(ctx, service.deploy, path),
    RestartPolicy: convertRestartPolicy(ctx, service, path),
    Placement: convertPlacement(ctx, service.deploy, path),
    Networks: convertServiceNetworks(ctx, service, path),
    LogDriver: convertLogDriver(service.logging),
    ForceUpdate: 0,
  });

  return compact<ConvertedService>({
    Name: scoped(ctx.stack, service.name),
    // The image label is set last: it wins over a deploy label of the same key, as in docker.
    Labels: { ...withStackLabel(ctx.stack, service.deploy.labels), [IMAGE_LABEL]: service.image ?? '' },
    TaskTemplate: task,
    Mode: convertMode(ctx, service.deploy, path),
    UpdateConfig: convertUpdateConfig(ctx, service.deploy.update_config, `${path}.deploy.update_config`),
    RollbackConfig: convertUpdateConfig(ctx, service.deploy.rollback_config, `${path}.deploy.rollback_config`),
    EndpointSpec: convertEndpointSpec(service.deploy, service.ports),
  });
}
