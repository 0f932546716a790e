export { DEFAULT_KEEP, checkKeep, pendingBundles, planPrune, type BundleFact, type DeploymentFact, type JournalFacts, type KeepReason, type PrunePlan } from './plan.js';
export { readJournalFacts, imageBlobDigests } from './facts.js';
export { prune, type PruneOptions, type PruneReport } from './prune.js';
export { missingImageBlobs, prunedImageError } from './restorable.js';
