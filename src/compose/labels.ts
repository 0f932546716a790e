/**
 * The labels a stack's objects carry, as `docker stack deploy` sets them:
 * the converter writes them, the planner and the commands find a stack's
 * objects by them. One home, below both.
 */

/** The label `docker stack` commands select a stack's objects by. */
export const NAMESPACE_LABEL = 'com.docker.stack.namespace';
/** The image as the compose file wrote it, on the service (not the container). */
export const IMAGE_LABEL = 'com.docker.stack.image';
/** airlock's own: the compose name of a secret or config whose engine name carries a content hash. */
export const LOGICAL_NAME_LABEL = 'com.docker.stack.airlock.logical-name';
