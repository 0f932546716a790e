/**
 * The kinds of events the journal records, one name each: what `airlock
 * events` filters on, what tests and audits query. A new kind is added here
 * first, so a typo in a `record` call does not build.
 */
export const EVENT_KINDS = [
  'agent.deploy',
  'bundle.apply',
  'bundle.import',
  'deployment.cleanup',
  'deployment.recover',
  'deployment.restore',
  'deployment.rollback',
  'drift',
  'engine.install',
  'engine.recover',
  'engine.rollback',
  'engine.upgrade',
  'images.load',
  'inbox.folder',
  'inbox.quarantine',
  'lock.takeover',
  'node.activate',
  'node.drain',
  'node.pause',
  'node.recover',
  'prune',
  'revocation',
  'swarm.certs',
  'swarm.init',
  'swarm.join',
  'swarm.tokens',
  'trust.freshness',
  'trust.update',
] as const;

export type EventKind = (typeof EVENT_KINDS)[number];
