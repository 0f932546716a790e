/**
 * First boot: make this engine the first manager of a new swarm, or join an
 * existing one, as the config says. Safe to run at every start: an engine
 * already in a swarm is left as it is. The join token is read from a file
 * only root (or systemd's credential store) can read, and never logged.
 */
import { readFile, stat } from 'node:fs/promises';
import { configError, notFound } from '../errors/index.js';
import type { Docker } from '../docker/index.js';
import type { Journal } from '../journal/journal.js';
import type { SwarmSettings } from './config.js';
import type { Logger } from './log.js';

export type SwarmOutcome = 'not-configured' | 'already-member' | 'initialised' | 'joined';

export async function ensureSwarmMembership(docker: Docker, settings: SwarmSettings, journal: Journal, log: Logger): Promise<SwarmOutcome> {
  if (settings.mode === 'none') return 'not-configured';
  const info = await docker.system.info();
  const swarm = info.Swarm;
  if (swarm.LocalNodeState === 'active' || swarm.LocalNodeState === 'pending' || swarm.LocalNodeState === 'locked') {
    const role = swarm.ControlAvailable ? 'manager' : 'worker';
    log.info('engine is already in a swarm; leaving it as it is', { node: swarm.NodeID, state: swarm.LocalNodeState, role });
    if (settings.mode === 'join' && settings.role !== role) log.warn('swarm role differs from the config', { configured: settings.role, actual: role });
    return 'already-member';
  }
  if (settings.mode === 'init') {
    const nodeId = await docker.swarm.init({ ListenAddr: settings.listenAddr, AdvertiseAddr: settings.advertiseAddr });
    journal.record({ kind: 'swarm.init', outcome: 'ok', subject: nodeId, message: `initialised a swarm advertising ${settings.advertiseAddr}` });
    log.info('initialised a new swarm as its first manager', { node: nodeId, advertise: settings.advertiseAddr });
    return 'initialised';
  }
  const token = await readJoinToken(settings.tokenFile);
  try {
    await docker.swarm.join({
      ListenAddr: settings.listenAddr,
      ...(settings.advertiseAddr ? { AdvertiseAddr: settings.advertiseAddr } : {}),
      RemoteAddrs: settings.managers,
      JoinToken: token,
    });
  } catch (e) {
    // The engine's message could echo what it was sent; the token must not reach a log.
    if (e instanceof Error) e.message = e.message.replaceAll(token, '<token>');
    throw e;
  }
  const after = (await docker.system.info()).Swarm;
  journal.record({ kind: 'swarm.join', outcome: 'ok', subject: after.NodeID, message: `joined the swarm of ${settings.managers.join(', ')} as a ${after.ControlAvailable ? 'manager' : 'worker'}` });
  log.info('joined the swarm', { node: after.NodeID, managers: settings.managers.join(','), role: after.ControlAvailable ? 'manager' : 'worker' });
  return 'joined';
}

const TOKEN = /^SWMTKN-1-[0-9a-z]+-[0-9a-z]+$/;

/** The join token, from a file nobody but its owner may read. */
export async function readJoinToken(file: string): Promise<string> {
  let st;
  try {
    st = await stat(file);
  } catch {
    throw notFound(`swarm join token file ${file} is missing`, {
      reason: 'no-join-token',
      subject: file,
      hint: "write the token from 'docker swarm join-token -q worker' on a manager into it, owned by root, mode 0600",
    });
  }
  if ((st.mode & 0o077) !== 0) {
    throw configError(`swarm join token file ${file} is readable by others (mode ${(st.mode & 0o777).toString(8)})`, {
      reason: 'token-file-mode',
      subject: file,
      hint: `chmod 600 ${file}`,
    });
  }
  const token = (await readFile(file, 'utf8')).trim();
  // Under systemd an absent token file arrives as an empty credential.
  if (token === '') throw notFound(`swarm join token file ${file} is empty`, { reason: 'no-join-token', subject: file, hint: "write the token from 'docker swarm join-token -q worker' on a manager into /etc/airlock/swarm-join-token, owned by root, mode 0600" });
  if (!TOKEN.test(token)) {
    throw configError(`swarm join token file ${file} does not hold a swarm join token (SWMTKN-1-…)`, { reason: 'bad-join-token', subject: file });
  }
  return token;
}
