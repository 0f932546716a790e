/**
 * The parts of the Engine API's objects that airlock reads or writes, one
 * module per API area under types/, named as the API names them
 * (PascalCase) so specs round-trip unchanged. Objects read from the daemon
 * may carry more fields than typed here; they survive a read-modify-write
 * because nothing copies field by field.
 */
export type * from './types/common.js';
export type * from './types/system.js';
export type * from './types/images.js';
export type * from './types/swarm.js';
export type * from './types/services.js';
export type * from './types/networks.js';
export type * from './types/objects.js';
