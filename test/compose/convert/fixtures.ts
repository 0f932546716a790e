/** Compose models for converter tests: every required field filled with its empty value, overridable. */
import type { ComposeConfig, DeployConfig, ServiceConfig } from '../../../src/compose/model.js';
import { convertStack, type ConvertedStack } from '../../../src/compose/convert/index.js';

export function service(name: string, over: Partial<Omit<ServiceConfig, 'deploy'>> & { deploy?: Partial<DeployConfig> } = {}): ServiceConfig {
  const { deploy, ...rest } = over;
  return {
    name,
    image: 'busybox:1.36',
    environment: {},
    labels: {},
    deploy: { labels: {}, ...deploy },
    ports: [],
    networks: {},
    volumes: [],
    secrets: [],
    configs: [],
    extra_hosts: [],
    dns: [],
    dns_search: [],
    dns_opt: [],
    ulimits: {},
    sysctls: {},
    cap_add: [],
    cap_drop: [],
    unsupported: [],
    extensions: {},
    ...rest,
  };
}

export function compose(over: Partial<ComposeConfig> = {}): ComposeConfig {
  return {
    files: ['/srv/app/compose.yml'],
    services: [],
    networks: {},
    volumes: {},
    secrets: {},
    configs: {},
    extensions: {},
    ...over,
  };
}

export const FILES: Record<string, string> = {
  '/srv/app/db_password.txt': 'hunter2\n',
  '/srv/app/nginx.conf': 'worker_processes 1;\n',
};

export function readFixture(path: string): Buffer {
  const text = FILES[path];
  if (text === undefined) throw Object.assign(new Error(`ENOENT: no such file, open '${path}'`), { code: 'ENOENT' });
  return Buffer.from(text);
}

export function convert(config: ComposeConfig, apiVersion = '1.41', stack = 'shop'): ConvertedStack {
  return convertStack({ stack, config, apiVersion, fileData: readFixture });
}

/** The one service of a one-service stack. */
export function convertOne(s: ServiceConfig, over: Partial<ComposeConfig> = {}, apiVersion = '1.41') {
  const out = convert(compose({ services: [s], ...over }), apiVersion);
  return { spec: out.services[0]!, notices: out.notices, out };
}
