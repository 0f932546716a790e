/**
 * systemd units for the engine. The static form gets the three units Docker
 * and Debian ship (containerd.service, docker.service, docker.socket), their
 * binaries taken from the `current` link; the package form keeps its own
 * units and gets a drop-in with what airlock adds to them.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeWhole } from '../store/durable.js';
import type { EngineForm } from '../bundle/manifest-format.js';
import type { EngineHostPaths } from './host-paths.js';

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Swarm tasks never pull: their images come in bundles (docs/engine-install.md). */
export const PREFER_OFFLINE = 'DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1';
export const DROP_IN = 'docker.service.d/airlock.conf';

/** /var/run is a link to /run on every systemd host; systemd warns about sockets named below /var/run. */
const runPath = (p: string) => p.replace(/^\/var\/run\//, '/run/');

const header = '# Written by airlock (docs/engine-install.md); airlock rewrites it when it installs the engine.\n';

export function staticUnits(paths: EngineHostPaths): Record<string, string> {
  const env = `Environment=PATH=${paths.currentLink}:${SYSTEM_PATH}\nEnvironment=${PREFER_OFFLINE}\n`;
  return {
    'containerd.service': `${header}[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target dbus.service

[Service]
${env}ExecStartPre=-/sbin/modprobe overlay
ExecStart=${paths.currentLink}/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
LimitNOFILE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
`,
    'docker.service': `${header}[Unit]
Description=Docker Application Container Engine
Documentation=https://docs.docker.com
After=network-online.target docker.socket firewalld.service containerd.service time-set.target
Wants=network-online.target containerd.service
Requires=docker.socket
StartLimitBurst=3
StartLimitIntervalSec=60s

[Service]
Type=notify
${env}ExecStart=${paths.currentLink}/dockerd -H fd:// --containerd=${runPath(paths.containerdSocket)} --config-file=${paths.daemonJson}
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutStartSec=0
RestartSec=2
Restart=always
LimitNPROC=infinity
LimitCORE=infinity
LimitNOFILE=infinity
TasksMax=infinity
Delegate=yes
KillMode=process
OOMScoreAdjust=-500

[Install]
WantedBy=multi-user.target
`,
    'docker.socket': `${header}[Unit]
Description=Docker Socket for the API

[Socket]
ListenStream=${runPath(paths.socket)}
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
`,
  };
}

export function packageDropIn(): Record<string, string> {
  return { [DROP_IN]: `${header}[Service]\nEnvironment=${PREFER_OFFLINE}\n` };
}

async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Writes the form's units (only those whose bytes differ); true when any
 * changed, so `systemctl daemon-reload` is due. A package form keeps its own
 * units and gets the drop-in.
 */
export async function writeUnits(form: EngineForm, paths: EngineHostPaths): Promise<boolean> {
  const units = form === 'static' ? staticUnits(paths) : packageDropIn();
  let changed = false;
  for (const [name, text] of Object.entries(units)) {
    const path = join(paths.unitDir, name);
    if ((await readOrUndefined(path)) === text) continue;
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    await writeWhole(path, text);
    changed = true;
  }
  return changed;
}
