/** A file an inbox source offers: where it is, and what it looked like when seen. */
export interface InboxFile {
  source: string;
  path: string;
  name: string;
  size: number;
  mtimeMs: number;
  /** The marker that said it was complete, to move along with it. */
  marker?: string;
}

/** When a source takes a file as complete: unchanged for a while across scans, or a marker file beside it. */
export type Completeness = { mode: 'stable'; stableForMs: number } | { mode: 'marker'; suffix: string };
