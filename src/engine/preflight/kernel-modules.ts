/**
 * Whether the kernel has a module, from what the running system shows:
 * loaded now (/sys/module, /proc/filesystems, /proc/sys/net/bridge), built
 * in or loadable (/lib/modules/RELEASE/modules.{builtin,dep}, else the
 * kernel's config in /proc/config.gz or /boot/config-RELEASE).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { KERNEL_MODULES, type KernelModule, type ModuleState } from './facts.js';

const CONFIG_KEY: Record<KernelModule, string> = { overlay: 'CONFIG_OVERLAY_FS', br_netfilter: 'CONFIG_BRIDGE_NETFILTER', vxlan: 'CONFIG_VXLAN' };

/** What the host shows about its kernel's modules; `root` is `/` but for tests. */
export interface ModuleSources {
  filesystems: string;
  /** Modules with an entry in /sys/module, or a sign of being active (br_netfilter's sysctls). */
  present: ReadonlySet<KernelModule>;
  /** modules.builtin and modules.dep; undefined when /lib/modules/RELEASE is absent (a container). */
  builtinList: string | undefined;
  depList: string | undefined;
  /** The kernel's config, when it is readable. */
  config: string | undefined;
}

/** The state of one module, from the sources (pure). */
export function moduleState(mod: KernelModule, src: ModuleSources): ModuleState {
  if (src.present.has(mod)) return 'loaded';
  if (mod === 'overlay' && /^nodev\s+overlay$/m.test(src.filesystems)) return 'loaded';
  const file = new RegExp(`(^|/)${mod}\\.ko(\\.(xz|zst|gz))?(:|$)`, 'm');
  if (src.builtinList !== undefined && file.test(src.builtinList)) return 'builtin';
  if (src.depList !== undefined && file.test(src.depList)) return 'loadable';
  const configured = src.config === undefined ? undefined : new RegExp(`^${CONFIG_KEY[mod]}=([ym])$`, 'm').exec(src.config)?.[1];
  if (configured === 'y') return 'builtin';
  // Neither in the module tree nor in the config: missing. A module (=m) with no tree here (a container): cannot tell.
  if (src.depList !== undefined || (src.config !== undefined && configured === undefined)) return 'missing';
  return 'unknown';
}

export async function readModuleSources(release: string): Promise<ModuleSources> {
  const text = (path: string) => readFile(path, 'utf8').catch(() => undefined);
  const present = new Set(KERNEL_MODULES.filter((m) => existsSync(`/sys/module/${m}`)));
  if (existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')) present.add('br_netfilter');
  const config = await readFile('/proc/config.gz')
    .then((gz) => gunzipSync(gz).toString('utf8'))
    .catch(() => text(`/boot/config-${release}`));
  return {
    filesystems: (await text('/proc/filesystems')) ?? '',
    present,
    builtinList: await text(`/lib/modules/${release}/modules.builtin`),
    depList: await text(`/lib/modules/${release}/modules.dep`),
    config,
  };
}

/** The modules' states; with `load`, a loadable module not loaded yet is loaded with modprobe and looked at again. */
export async function readModules(release: string, load: boolean): Promise<Record<KernelModule, ModuleState>> {
  let src = await readModuleSources(release);
  const states = () => Object.fromEntries(KERNEL_MODULES.map((m) => [m, moduleState(m, src)])) as Record<KernelModule, ModuleState>;
  const loadable = KERNEL_MODULES.filter((m) => moduleState(m, src) === 'loadable');
  if (load && loadable.length > 0) {
    // A module that will not load stays `loadable`, and the check says how to load it.
    await Promise.all(loadable.map((m) => promisify(execFile)('modprobe', [m], { timeout: 30_000 }).catch(() => undefined)));
    src = await readModuleSources(release);
  }
  return states();
}
