/**
 * Which error answers of a Docker Engine mean "stopping, restarting or not
 * ready yet", so that the call is worth another try, and whether the daemon
 * may already have done what was asked (then a call that is not safe to
 * repeat, such as a service create, must not go again).
 *
 * What dockerd (20.10 to 28.x) answers while it stops or starts, read from
 * its source:
 * - 503 from its cluster layer, which refuses before it calls the swarm
 *   manager, so nothing was done: "This node is not a swarm manager. Manager
 *   is being prepared or has trouble connecting to the cluster." while a
 *   manager starts; "... Use "docker swarm init" or "docker swarm join" ..."
 *   and "This node is not part of a swarm" once the swarm component has
 *   stopped (20.10 keeps serving open connections while it stops the rest);
 *   "... Worker nodes can't be used ..." while a restarted manager comes up.
 *   The last three are also what a host that is not a manager says for good,
 *   so they count only for an engine seen serving as a manager before.
 * - 503 from gRPC (code Unavailable): "connection error: ... Error while
 *   dialing" when the daemon could not reach its manager's socket at all
 *   (nothing was sent); "transport is closing" or any other when the
 *   connection went during the call (the manager may have taken it).
 * - 500 from the swarm's raft store: "node is stopped" (refused before it
 *   proposed anything); "The swarm does not have a leader" (no leader to
 *   forward to: a restarted manager until it has elected itself); "node lost
 *   leader status" (proposed, and possibly committed).
 * - 500 "rpc error: code = Canceled desc = grpc: the client connection is
 *   closing": the daemon's gRPC client to its manager was closed before the
 *   call was picked a connection, so it never left (gRPC fails a unary call
 *   that was under way with code Unavailable instead, a 503 here). Other
 *   Canceled answers may come after the manager acted.
 *
 * Resending after `not-done` is safe by those readings, and safe even were
 * one wrong: every swarm write airlock makes is guarded by the engine itself,
 * a service or swarm update by its version index (a second one fails "update
 * out of sequence") and a create of a service, network, secret or config by
 * its unique name (a second one fails as a conflict). Nothing runs twice.
 */
export type Transience =
  /** The daemon refused before acting: any call may go again. */
  | 'not-done'
  /** The daemon may have acted: only a call safe to repeat may go again. */
  | 'maybe-done';

/** A 503 of the cluster layer that a host outside a swarm, or a worker, gives for good. */
const NOT_A_MANAGER = /This node is not a swarm manager\. (Use "docker swarm init"|Worker nodes can't be used)|This node is not part of a swarm/;
/** A 503 of the cluster layer while a manager starts. */
const MANAGER_STARTING = /This node is not a swarm manager\. Manager is being prepared/;
/** A 503 of gRPC that never connected to the manager. */
const NOT_CONNECTED = /connection error: desc = "transport: Error while dialing/;
/** 503s that waiting does not cure: a locked swarm, expired certificates, a join still going on, a node already in a swarm. */
const DURABLE_503 = /needs to be unlocked|certificates have expired|Timeout was reached before node joined|already part of a swarm/;
/** 500s of a swarm that stops, or that has no leader yet, before the call reached the manager or was proposed. */
const REFUSED_500 = /raft: failed to process the request: node is stopped|The swarm does not have a leader|code = Canceled desc = grpc: the client connection is closing/;
/** 500s of a swarm that stops while a call was under way. */
const INTERRUPTED_500 = /rpc error: code = Canceled|raft: failed to process the request: node lost leader status/;

/** What a dockerd that stops or restarts says to swarm calls: for error messages that explain it. */
export const isShutdownAnswer = (message: string): boolean => INTERRUPTED_500.test(message) || REFUSED_500.test(message);

/**
 * Classifies an HTTP error answer. `servedAsManager`: this engine answered a
 * manager-only call earlier, so "not a swarm manager" now means it restarts.
 */
export function transience(status: number, message: string, servedAsManager: boolean): Transience | undefined {
  if (status === 503) {
    if (DURABLE_503.test(message)) return undefined;
    if (MANAGER_STARTING.test(message) || NOT_CONNECTED.test(message)) return 'not-done';
    if (NOT_A_MANAGER.test(message)) return servedAsManager ? 'not-done' : undefined;
    return 'maybe-done';
  }
  if (status === 500) {
    if (REFUSED_500.test(message)) return 'not-done';
    if (INTERRUPTED_500.test(message)) return 'maybe-done';
  }
  return undefined;
}

/** Calls that only a swarm manager answers: one that succeeded shows the engine serves as a manager. */
const MANAGER_ONLY = /^\/(services|tasks|nodes|secrets|configs)(\/|$)|^\/swarm$|^\/swarm\/(init|update)$/;

/** Whether, after this call succeeded, the engine serves as a swarm manager (`undefined`: the call does not tell). */
export function managerAfter(method: string, path: string): boolean | undefined {
  if (method === 'POST' && path === '/swarm/leave') return false;
  return MANAGER_ONLY.test(path) ? true : undefined;
}
