/**
 * Where an engine airlock installs lives on the host (docs/engine-install.md).
 * Every engine primitive takes these paths instead of naming them, so the
 * unit tests point them all under a temporary root.
 */
import { join } from 'node:path';

export interface EngineHostPaths {
  /** The static form's versioned folders: `<engineDir>/<version>/<the 8 binaries>`. */
  engineDir: string;
  /** The stable link to the running version's folder: `<engineDir>/current`. */
  currentLink: string;
  /** Where the static form's units (and the package form's drop-in) go. */
  unitDir: string;
  daemonJson: string;
  /** The engine's API socket. */
  socket: string;
  /** The direct supervisor's pid files. */
  runDir: string;
  /** The direct supervisor's logs of containerd and dockerd. */
  logDir: string;
  /** `docker` on the PATH, a link to `<currentLink>/docker`. */
  cliLink: string;
  /** Debian's hook that tells a package's maintainer scripts whether they may start a service. */
  policyRcD: string;
  /** containerd's socket (dockerd's `--containerd`). */
  containerdSocket: string;
  /** Where systemd, when it is PID 1, says so. */
  systemdRunDir: string;
  /** dpkg's database (`dpkg-query --admindir`). */
  dpkgAdminDir: string;
}

/** Where the static form's versions live on a host. */
export const ENGINE_HOME = '/opt/airlock/engine';
/** The engine's data root unless the host config names another (dockerd's own default). */
export const DEFAULT_DATA_ROOT = '/var/lib/docker';

/** The paths on a real host. */
export const defaultEngineHostPaths = (): EngineHostPaths => engineHostPathsUnder('/');

/** The same layout under `root` (a test's temporary folder, or `/` for the host). */
export function engineHostPathsUnder(root: string): EngineHostPaths {
  const at = (p: string) => join(root, p);
  const engineDir = at(ENGINE_HOME);
  return {
    engineDir,
    currentLink: join(engineDir, 'current'),
    unitDir: at('/etc/systemd/system'),
    daemonJson: at('/etc/docker/daemon.json'),
    socket: at('/var/run/docker.sock'),
    runDir: at('/run/airlock/engine'),
    logDir: at('/var/log/airlock/engine'),
    cliLink: at('/usr/local/bin/docker'),
    policyRcD: at('/usr/sbin/policy-rc.d'),
    containerdSocket: at('/run/containerd/containerd.sock'),
    systemdRunDir: at('/run/systemd/system'),
    dpkgAdminDir: at('/var/lib/dpkg'),
  };
}
