import { hostname, userInfo } from 'node:os';

/** Who deploys, as the journal records it: `user@host`. */
export const appliedBy = (): string => `${userInfo().username}@${hostname()}`;
